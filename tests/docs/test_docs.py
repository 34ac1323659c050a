"""The documentation site builds strictly, and every command its tutorials show runs.

Which commands run: every fenced ```bash and ```python block of the pages in ``RUN_PAGES``
(``docs/getting-started.md``, ``docs/tutorials/*.md`` and the front door,
``README.md``), in page order, unless the line just before the block is an
HTML comment starting ``<!-- not run:`` that says why (the install; the full demo). Other
pages (concepts, how-to, reference) show commands that need what a test cannot have (a Ray
cluster, a GPU, a hub model) and are not run. A page runs in a folder of its own holding a
``data/`` like the checkout's, so it may use the shipped data and what its own earlier
commands wrote, nothing from another page; every page shares one feature store
(``PROBE_CACHE``), as a user's commands do.

How a bash block runs: a block whose commands are all plain ``probe ...`` lines (no pipe,
redirection, ``$``, ``;`` or ``&&``; lines joined at trailing backslashes) runs them one by one
in-process through click's ``CliRunner``, as ``tests/cli`` does (a new process per command
would spend most of the test importing torch); any other block runs as one script in
``bash -euo pipefail``, so a shell variable lives within its block. The first command that
exits non-zero fails the page, with its output. A python block runs with ``exec``, the blocks
of one page in one namespace, as one notebook session.

What is substituted, so that a page's commands take seconds on tiny inputs and are otherwise
run exactly as written:

- ``smollm2-135m`` (``MODEL``) -> a random GPT-2 with 30 blocks and hidden size 32, saved to
  disk. SmolLM2-135M has 30 blocks too, so every layer a page names exists.
- ``data/sms_slice.csv`` and ``data/sms_spam.csv`` (``DATA``) -> the slice's first 90 messages,
  under the same names in the page's ``data/``.
- ``data/ud_ewt/en_ewt-ud-dev-first400.conllu`` -> its first 40 sentences, likewise.
- ``data/world_places/places_slice.csv``, ``city_statements_slice.csv`` and
  ``data/ewt_properties.csv`` -> their first 90 rows, likewise (the numbers, label sets and city
  statements of ``tutorials/regression.md``, ``multi-label.md`` and ``instruments.md``).

The tiny model's predictions are random, so these tests check that the commands run, not what
they print; ``test_the_quick_start_predicts_on_unseen_texts_of_the_datas_kind`` checks the
quick start's messages against the data. The module takes about a minute on 2 busy cores.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO

DOCS = REPO / "docs"
FRONT_DOOR = DOCS.parent / "README.md"  # the front door
RUN_PAGES = [DOCS / "getting-started.md", *sorted((DOCS / "tutorials").glob("*.md")), FRONT_DOOR]
MODEL = "smollm2-135m"
CONLLU = Path("ud_ewt") / "en_ewt-ud-dev-first400.conllu"
DATA = {  # name under data/ -> how many rows (sentences) of the shipped file stand in for it
    "sms_slice.csv": ("sms_slice.csv", 90),
    "sms_spam.csv": ("sms_slice.csv", 90),
    str(CONLLU): (str(CONLLU), 40),
    "world_places/places_slice.csv": ("world_places/places_slice.csv", 90),
    "ewt_properties.csv": ("ewt_properties.csv", 90),
    "world_places/city_statements_slice.csv": ("world_places/city_statements_slice.csv", 90),
}
HANG_SECONDS = 600  # a bash block still running then is stuck, not slow (no timing assert)
FENCE = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>bash|python)\n(?P<body>.*?)\n```", re.DOTALL)
SKIP = "<!-- not run:"
SHELL_ONLY = re.compile(r"[|<>$;`]|&&")


def blocks(page: Path) -> list[tuple[str, str]]:
    """(language, code) of the page's blocks that run, in order."""
    text = "\n" + page.read_text(encoding="utf-8")
    return [
        (m["lang"], m["body"]) for m in FENCE.finditer(text) if not m["before"].startswith(SKIP)
    ]


def bash_commands(code: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(line)
    return commands


@pytest.fixture(scope="module")
def tiny_smollm_dir(tmp_path_factory):
    """A random 30-block GPT-2 (SmolLM2-135M's depth), hidden size 32, saved to disk."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=30, n_embd=32, n_head=2, vocab_size=50257, n_positions=512)
    folder = tmp_path_factory.mktemp("tiny-smollm")
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    return tmp_path_factory.mktemp("docs-store")


def small_data(folder: Path) -> Path:
    """``folder/data``: the shipped data's names, small stand-ins (``DATA``)."""
    data = folder / "data"
    for name, (source, rows) in DATA.items():
        target = data / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".csv"):
            pd.read_csv(REPO / "data" / source).head(rows).to_csv(target, index=False)
        else:
            sentences = (REPO / "data" / source).read_text(encoding="utf-8").split("\n\n")
            target.write_text("\n\n".join(sentences[:rows]) + "\n\n", encoding="utf-8")
    return data


def run_bash_block(code: str, env: dict, cwd: Path) -> None:
    from click.testing import CliRunner

    from probe.cli.main import main

    commands = bash_commands(code)
    if all(c.lstrip().startswith("probe ") and not SHELL_ONLY.search(c) for c in commands):
        for command in commands:
            words = shlex.split(command, comments=True)
            result = CliRunner().invoke(main, words[1:], env=env, catch_exceptions=False)
            assert result.exit_code == 0, f"{command}\n-> exit {result.exit_code}\n{result.output}"
        return
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    assert done.returncode == 0, f"{code}\n-> exit {done.returncode}\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("page", RUN_PAGES, ids=[p.stem for p in RUN_PAGES])
def test_every_command_on_the_page_runs(page, tiny_smollm_dir, shared_store, tmp_path, monkeypatch):
    code_blocks = blocks(page)
    assert code_blocks, f"{page.name} shows no command that runs"
    small_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROBE_CACHE", str(shared_store))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # `probe` and the python of a bash command are this interpreter's, importing this checkout
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    namespace: dict = {"__name__": "__docs__"}
    for language, code in code_blocks:
        code = code.replace(MODEL, str(tiny_smollm_dir))
        if language == "python":
            exec(compile(code, f"{page.name} python block", "exec"), namespace)
            continue
        run_bash_block(code, dict(os.environ), tmp_path)


def test_the_site_builds_strictly(tmp_path):
    """A broken link, an unreadable docstring or a figure block without its results file
    fails ``mkdocs build --strict``, here and in CI."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    benchmarks = (tmp_path / "site" / "benchmarks" / "index.html").read_text(encoding="utf-8")
    assert "bench_lookup.py" in benchmarks  # the table block was filled from the results
    assert (tmp_path / "site" / "results" / "demo_sms" / "sweep.png").is_file()


def test_the_quick_start_predicts_on_unseen_texts_of_the_datas_kind():
    """The messages the quick start classifies are verbatim from the shipped data, with the
    labels the page shows, and are not in the slice the head is trained on; the slice is
    what its script draws."""
    sys.path.insert(0, str(REPO / "data"))
    try:
        import make_sms_slice
    finally:
        sys.path.remove(str(REPO / "data"))
    assert make_sms_slice.main(["--check"]) == 0
    full = pd.read_csv(REPO / "data" / "sms_spam.csv")
    sliced = set(pd.read_csv(REPO / "data" / "sms_slice.csv").text)
    for page in (DOCS / "getting-started.md", FRONT_DOOR):
        text_of_page = page.read_text(encoding="utf-8")
        for text, label in make_sms_slice.HELD_OUT.items():
            assert text in text_of_page and text not in sliced
            assert set(full[full.text == text].label) == {label}
            row = rf"\| {re.escape(text[:60])}.*\| {label} \| `{label}` \|"
            assert re.search(row, text_of_page), f"{page.name}: no row for the {label} message"


def test_the_front_door_is_short_and_its_figures_are_the_results(monkeypatch, capsys):
    proposal = FRONT_DOOR
    assert len(proposal.read_text(encoding="utf-8").splitlines()) < 150
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import render_readme

    assert render_readme.main(["--check", "--readme", str(proposal)]) == 0, capsys.readouterr()


def test_no_page_is_left_out_of_the_navigation():
    """mkdocs only says INFO for a page missing from nav; a docs page nobody can reach is a
    page nobody reads."""
    import yaml

    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav):
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from pages(value) if isinstance(value, list) else [value]

    listed = set(pages(config["nav"]))
    found = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_hooks" not in p.parts}
    assert found == listed
