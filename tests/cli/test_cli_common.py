"""Habits every command shares: --version, -v/--verbose and -q/--quiet with one meaning,
and progress lines (not a bar, not silence) when stderr is a file."""

from __future__ import annotations

import re
import subprocess

import click
import pytest
from click.testing import CliRunner

from conftest import probe_env, probe_process, run_probe
from probe import __version__
from probe.cli.main import main
from probe.progress import Progress


def _leaf_commands(group: click.Group, prefix: str = ""):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_version():
    run = CliRunner().invoke(main, ["--version"])
    assert run.exit_code == 0 and __version__ in run.output


EXPECTED = {"extract", "fit", "sweep", "predict", "finetune", "compare", "export"}


def test_every_command_has_verbose_and_quiet():
    commands = dict(_leaf_commands(main))
    assert EXPECTED <= set(commands), sorted(commands)
    assert any(name.startswith("cache ") for name in commands)
    for name, command in commands.items():
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert {"-v", "--verbose", "-q", "--quiet"} <= options, name


def test_verbose_and_quiet_exclude_each_other():
    run = CliRunner().invoke(main, ["cache", "ls", "-v", "-q"])
    assert run.exit_code == 2 and "exclude each other" in run.output


@pytest.fixture
def sms32(sms_rows) -> dict:
    """``sms_rows`` at 32 tokens: the rows ``labelled_cache`` holds."""
    return {**sms_rows, "max_length": 32}


@pytest.fixture
def labelled_cache(sms32, isolated_cache):
    """An extracted cache of the 90 labelled SMS texts, layers 0-3 of the tiny GPT-2."""
    run = run_probe("extract", **sms32, q=True, env=probe_env(isolated_cache))
    assert run.exit_code == 0, run.output
    return run.stdout.strip().splitlines()[-1]


def test_quiet_prints_only_the_result_and_verbose_adds_detail(
    sms32, labelled_cache, tmp_path, isolated_cache
):
    fit = {**sms32, "layer": 2, "json": True, "env": probe_env(isolated_cache)}
    quiet = run_probe("fit", **fit, q=True, out=tmp_path / "q.json")
    normal = run_probe("fit", **fit, out=tmp_path / "n.json")
    verbose = run_probe("fit", **fit, v=True, out=tmp_path / "v.json")
    for run in (quiet, normal, verbose):
        assert run.exit_code == 0, run.output
        assert run.stdout.lstrip().startswith("{")  # the result, on stdout, every time
    assert quiet.stderr == ""
    assert "finished in" not in normal.stderr
    detail = verbose.stderr.splitlines()
    assert any(line.startswith("fit: ") and "layer=2" in line for line in detail)
    assert any(re.search(r"fit: finished in \d+\.\d s", line) for line in detail)
    assert set(normal.stderr.splitlines()) <= set(detail)  # verbose adds, never removes


def test_sweep_writes_progress_lines_when_stderr_is_a_file(
    labelled_cache, sms32, tmp_path, isolated_cache
):
    env = {**probe_env(isolated_cache), "PROBE_PROGRESS_INTERVAL": "0"}
    log = tmp_path / "stderr.log"
    sweep = probe_process("sweep", **sms32, jobs=2, out_dir=tmp_path / "sweep")
    with open(log, "w") as stderr:
        run = subprocess.run(
            sweep,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            timeout=300,
        )
    text = log.read_text()
    assert run.returncode == 0, text[-2000:]
    lines = [line for line in text.splitlines() if line.startswith("sweep: ")]
    total = 4 * 2  # layers 0-3 x two pools
    assert len(lines) >= total  # one line per finished head (interval 0), then the last
    # no ETA yet: one head in a second or two says little of the rest (ETA_MIN_SECONDS)
    assert re.fullmatch(rf"sweep: 1/{total} heads \(\d+%\), [\d.,]+ heads/s", lines[0])
    assert re.search(rf"sweep: {total}/{total} heads \(100%\), .* done in", lines[-1])
    assert "\r" not in text  # a file gets lines, not a redrawn bar


def test_progress_interval_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PROBE_PROGRESS_INTERVAL", "3600")
    with open(tmp_path / "err", "w") as stream, Progress(10, "job", stream=stream) as progress:
        for _ in range(10):
            progress.update()
            progress.set_postfix(loss="0.5")
    lines = (tmp_path / "err").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("job: 10/10 it (100%)")
    assert "loss 0.5" in lines[0]
    monkeypatch.setenv("PROBE_PROGRESS_INTERVAL", "0")
    with open(tmp_path / "err", "w") as stream, Progress(3, "job", stream=stream) as progress:
        progress.update(3)
    assert len((tmp_path / "err").read_text().splitlines()) == 2


def test_extract_writes_progress_lines_while_it_runs(
    tiny_gpt2_dir, sms_labelled, tmp_path, isolated_cache
):
    env = {**probe_env(isolated_cache), "PROBE_PROGRESS_INTERVAL": "0"}
    log = tmp_path / "stderr.log"
    with open(log, "w") as stderr:
        run = subprocess.run(
            probe_process(
                "extract", model=tiny_gpt2_dir, data=sms_labelled, max_length=32, batch_tokens=256
            ),
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            timeout=300,
        )
    text = log.read_text()
    assert run.returncode == 0, text[-2000:]
    lines = [line for line in text.splitlines() if line.startswith("extract: ")]
    assert len(lines) >= 3, text  # several batches, each a line, then the final line
    first = re.fullmatch(
        r"extract: ([\d,]+)/([\d,]+) tok \(\d+%\), [\d.,]+ tok/s(, ETA \d+ s)?", lines[0]
    )
    assert first and int(first[1].replace(",", "")) < int(first[2].replace(",", ""))
    assert "(100%)" in lines[-1] and "done in" in lines[-1]
    assert "\r" not in text
    quiet_log = tmp_path / "quiet.log"
    with open(quiet_log, "w") as stderr:
        subprocess.run(
            probe_process(
                "extract", model=tiny_gpt2_dir, data=sms_labelled, max_length=32, force=True, q=True
            ),
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            timeout=300,
            check=True,
        )
    assert "extract: " not in quiet_log.read_text()


@pytest.mark.parametrize("depth", [1, 3, 8])
def test_one_line_keeps_the_advice_when_paths_are_deep(depth):
    """Paths lose folders, then everything but their names, before the advice is cut."""
    from probe.errors import MAX_LINE, one_line

    folder = "/tmp" + "/pytest-of-root/test_a_long_test_function_name_with_parameters_0" * depth
    message = (
        f"{folder}/h/sms.json was fitted on model '{folder}/tiny-gpt2' (fingerprint "
        f"0cf3a9ef7685), not on '{folder}/other-gpt2' (fingerprint 81740984e2c9); "
        "fit a head for this model"
    )
    line = one_line(message)
    assert line.endswith("fit a head for this model") and len(line) <= MAX_LINE
    assert "sms.json" in line and "other-gpt2" in line


def test_a_long_line_loses_its_middle_never_its_remedy():
    """The remedy after the last "; " (or a library's last sentence) survives the cut; the
    quoted examples in the middle go."""
    from probe.errors import MAX_LINE, one_line, short_reason

    examples = ", ".join(repr(f"a long example text number {i} " * 3) for i in range(5))
    message = (
        f"5 of 90 labelled texts are not in the cache (e.g. {examples}); "
        "extract them first: probe extract --data labels.csv"
    )
    line = one_line(message)
    assert len(message) > MAX_LINE and len(line) <= MAX_LINE - len("Error: ")
    assert line.startswith("5 of 90 labelled texts are not in the cache (e.g. 'a long example")
    assert line.endswith("…; extract them first: probe extract --data labels.csv")
    library = ValueError("bad header " + "x" * 200 + ". Re-save the file with pandas.\nmore")
    reason = short_reason(library, 80)
    assert len(reason) == 80 and reason.startswith("bad header xxx")
    assert reason.endswith("… Re-save the file with pandas.")
    plain = one_line("word " * 100, 60)  # no remedy marked: head and tail, from a word
    assert len(plain) <= 60 and plain.startswith("word word") and plain.endswith("word")
    assert "…" in plain and one_line("short; fine") == "short; fine"
