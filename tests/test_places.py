"""Where probe keeps things (``probe.files``): the store by its rule, one models folder shared by
every store, results under one folder; and ``probe cache ls``/``info`` saying which store."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_probe
from probe.errors import ProbeError
from probe.files import models_root, output_root, store_location, user_cache_dir

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the XDG rule is Linux's")


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """An empty working folder, no PROBE_CACHE/PROBE_MODELS/PROBE_OUT, the user cache in
    tmp_path/xdg: what a user who set nothing has."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in ("PROBE_CACHE", "PROBE_MODELS", "PROBE_OUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return work


@linux_only
def test_nothing_set_means_the_user_cache_and_no_cache_folder_here(bare, tmp_path):
    assert store_location() == (tmp_path / "xdg" / "probe", "user cache")
    (bare / "cache").mkdir()  # an empty ./cache is not a store...
    (bare / "cache" / "notes.txt").write_text("mine")
    (bare / "pyproject.toml").write_text('[project]\nname = "x"\n')  # ...nor a pyproject
    assert store_location().source == "user cache"
    assert models_root() == tmp_path / "xdg" / "probe" / "models"
    assert output_root() == Path("results")


@linux_only
def test_a_relative_xdg_cache_home_is_ignored_as_the_spec_says(bare, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert user_cache_dir() == Path.home() / ".cache" / "probe"


def test_a_cache_folder_holding_a_store_stays_the_store(bare):
    (bare / "cache" / "rows").mkdir(parents=True)  # what an earlier probe left here
    assert store_location() == (bare / "cache", "project: ./cache holds a store")


@pytest.mark.parametrize(
    ("filename", "text", "source"),
    [
        ("probe.toml", 'cache = "stores/mine"\n', "project: probe.toml"),
        (
            "pyproject.toml",
            '[project]\nname = "x"\n\n[tool.probe]\ncache = "stores/mine"\n',
            "project: pyproject.toml [tool.probe]",
        ),
    ],
)
def test_a_project_names_its_store(bare, filename, text, source, monkeypatch):
    (bare / filename).write_text(text)
    (bare / "cache" / "rows").mkdir(parents=True)  # the project's setting wins over ./cache
    assert store_location() == (bare / "stores" / "mine", source)
    monkeypatch.setenv("PROBE_CACHE", "/somewhere/else")  # and PROBE_CACHE over both
    assert store_location() == (Path("/somewhere/else"), "PROBE_CACHE")


def test_a_broken_project_setting_is_one_line(bare):
    (bare / "probe.toml").write_text("cache = [1, 2]\n")
    with pytest.raises(ProbeError, match="cache must be a folder name"):
        store_location()
    (bare / "probe.toml").write_text("cache = \n")
    with pytest.raises(ProbeError, match="not valid TOML"):
        store_location()
    (bare / "probe.toml").unlink()
    (bare / "pyproject.toml").write_text("[tool.probe\n")  # another tool's file: not ours
    assert store_location().source == "user cache"


def test_this_checkout_keeps_its_store_in_its_cache_folder(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("PROBE_CACHE")
    assert store_location() == (REPO / "cache", "project: pyproject.toml [tool.probe]")


@linux_only
@pytest.mark.parametrize("command", ["ls", "info"])
def test_cache_ls_and_info_say_which_store_first(bare, tmp_path, command, monkeypatch):
    shown = run_probe(f"cache {command}")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0] == f"store: {tmp_path / 'xdg' / 'probe'} (from user cache)"
    (bare / "probe.toml").write_text('cache = "here"\n')
    shown = run_probe(f"cache {command}")
    assert shown.stdout.splitlines()[0] == f"store: {bare / 'here'} (from project: probe.toml)"
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "named"))
    shown = run_probe(f"cache {command}")
    assert shown.stdout.splitlines()[0] == f"store: {tmp_path / 'named'} (from PROBE_CACHE)"
    assert not (bare / "here").exists() and not (tmp_path / "named").exists()  # looked, no more


def test_a_new_store_gets_its_readme_and_the_checkouts_is_the_same(isolated_cache):
    from probe.features.store.rowstore import Setting, commit_block

    asset = (REPO / "probe" / "assets" / "store-README.md").read_text()
    assert (REPO / "cache" / "README.md").read_text() == asset
    setting = Setting("fp", "tok", 8, "right", "float32")
    block = {pool: np.zeros((1, 1, 2), np.float16) for pool in setting.pools}
    commit_block(setting, np.zeros((1, 20), np.uint8), [1], block, [0])
    assert (isolated_cache / "README.md").read_text() == asset
    for part in ("rows/", "features/", "models/", "prefix/", "probe cache gc --views"):
        assert part in asset
    (isolated_cache / "README.md").write_text("the user's own notes")
    commit_block(setting, np.ones((1, 20), np.uint8), [1], block, [0])
    assert (isolated_cache / "README.md").read_text() == "the user's own notes"  # not replaced


def test_converted_models_are_shared_by_every_store(tiny_gpt2_dir, tmp_path, monkeypatch):
    from probe.features.models.loading import model_fingerprint
    from probe.features.models.random_weights import random_weights_model

    models = tmp_path / "models"  # PROBE_MODELS (conftest)
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "one"))
    first = Path(random_weights_model(str(tiny_gpt2_dir)))
    assert first.parent == models
    built = (first / "model.safetensors").stat().st_mtime_ns
    model_fingerprint(str(tiny_gpt2_dir))  # the digest memo goes there too
    assert (models / "digests.json").is_file()
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "two"))
    assert Path(random_weights_model(str(tiny_gpt2_dir))) == first  # not built again
    assert (first / "model.safetensors").stat().st_mtime_ns == built
    assert not (tmp_path / "one" / "models").exists() and not (tmp_path / "two").exists()
    # a store that holds its own copy (an earlier probe put it there) is read from it
    own = tmp_path / "three" / "models" / first.name
    shutil.copytree(first, own)
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "three"))
    assert Path(random_weights_model(str(tiny_gpt2_dir))) == own


def test_a_gguf_is_converted_into_the_shared_models_folder(tmp_path, monkeypatch):
    """Where the de-quantized SmolLM2 lives: found there (a second store converts nothing),
    or in a store's own models/ when an earlier probe put it there."""
    from probe.features.models import loading
    from probe.features.models.fingerprints import file_digest

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF weights")
    name = f"tiny-{file_digest(gguf)[:16]}"
    for folder in (tmp_path / "models" / name, tmp_path / "old" / "models" / name):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr("transformers.AutoModelForCausalLM", None)  # converting would fail
    assert loading._converted_gguf_dir(gguf) == tmp_path / "models" / name
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "old"))
    assert loading._converted_gguf_dir(gguf) == tmp_path / "old" / "models" / name


def test_results_go_under_probe_out(monkeypatch, tmp_path):
    from probe.outputs import default_output

    monkeypatch.setenv("PROBE_OUT", str(tmp_path / "out"))
    assert default_output("heads", "h.json") == tmp_path / "out" / "heads" / "h.json"
    monkeypatch.delenv("PROBE_OUT")
    assert default_output("reports", "compare-x") == Path("results/reports/compare-x")
    with pytest.raises(ValueError):
        default_output("elsewhere", "x")
