"""scripts/install.sh installs where the README says: the active virtual environment, else a
``.venv`` it creates with ``python3`` (stock Debian has no ``python``), and says to activate
it. Checked with ``PROBE_INSTALL_DRY_RUN=1``, which prints the commands instead of running
them: no network, no pip, seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import REPO


def dry_install(folder: Path, env: dict, **extra) -> subprocess.CompletedProcess:
    """scripts/install.sh copied into ``folder`` (it works in its checkout: the script's
    parent's parent), run dry."""
    (folder / "scripts").mkdir(exist_ok=True)
    shutil.copy(REPO / "scripts" / "install.sh", folder / "scripts" / "install.sh")
    run_env = {**env, "PROBE_INSTALL_DRY_RUN": "1", "PROBE_TORCH": "cpu", **extra}
    return subprocess.run(
        [shutil.which("bash"), str(folder / "scripts" / "install.sh")],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def outside_a_venv() -> dict:
    return {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}


def test_outside_a_venv_it_creates_dot_venv_with_python3_and_says_to_activate_it(tmp_path):
    done = dry_install(tmp_path, outside_a_venv())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "+ python3 -m venv .venv"
    commands = [line for line in lines if line.startswith("+ ")]
    assert all(line.startswith("+ .venv/bin/python ") for line in commands[1:])
    extras = "dev,export,distributed,docs,erasure"
    assert any(f"pip install -q -e .[{extras}]" in line for line in commands)
    assert lines[-1] == "install.sh: done; now run: . .venv/bin/activate"
    assert not (tmp_path / ".venv").exists()  # a dry run creates nothing


def test_an_existing_dot_venv_is_filled_not_made_again(tmp_path):
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(shutil.which("python3"))
    done = dry_install(tmp_path, outside_a_venv(), PROBE_EXTRAS="dev")
    assert done.returncode == 0, done.stderr
    assert "venv .venv" not in done.stdout
    assert "+ .venv/bin/python -m pip install -q -e .[dev]" in done.stdout


def test_an_active_venv_is_installed_into_and_no_dot_venv_is_made(tmp_path):
    active = tmp_path / "elsewhere"
    done = dry_install(tmp_path, {**os.environ, "VIRTUAL_ENV": str(active)})
    assert done.returncode == 0, done.stderr
    assert "venv" not in done.stdout.replace(str(active), "")
    assert f"+ {active}/bin/python -m pip install -q --upgrade pip" in done.stdout
    assert "activate" not in done.stdout


def test_without_python3_it_says_what_to_install(tmp_path):
    tools = tmp_path / "bin"  # a PATH with the tools the script needs, and no python at all
    tools.mkdir()
    for tool in ("dirname", "uname"):
        (tools / tool).symlink_to(shutil.which(tool))
    done = dry_install(tmp_path, {**outside_a_venv(), "PATH": str(tools)})
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "install.sh: no python3 on PATH; install Python 3.10 or newer first"
    )
