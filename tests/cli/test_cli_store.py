"""Two real ``probe extract`` processes into one store, a killed writer, ``probe cache gc``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
from click.testing import CliRunner

from conftest import SMS_CSV, cli_args, probe_env, probe_process
from probe.cli import main
from probe.features.store.caches import open_cache


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_two_concurrent_extracts_agree_and_rerun_as_hits(tiny_gpt2_dir, tmp_path, isolated_cache):
    texts = pd.read_csv(SMS_CSV).text
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    pd.DataFrame({"text": texts.iloc[0:120]}).to_csv(first, index=False)
    pd.DataFrame({"text": texts.iloc[60:180]}).to_csv(second, index=False)
    env = probe_env(isolated_cache)

    def command(data):
        return probe_process(
            "extract", model=tiny_gpt2_dir, data=data, batch_tokens=64, shard_rows=8
        )

    runs = [
        subprocess.Popen(
            command(d), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for d in (first, second)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    a, b = (open_cache(out.strip().splitlines()[-1]) for out, _ in outputs)
    # Shared rows resolve to the earliest committed shard, so they are usually bitwise equal;
    # a view finished before the other process committed keeps its own copy, computed in
    # other batch shapes: equal to fp16 rounding (2^-10 relative).
    for layer in a.layers:
        for pool in ("last", "mean"):
            np.testing.assert_allclose(
                a.features(layer, pool)[60:], b.features(layer, pool)[:60], rtol=2**-10, atol=1e-6
            )
    for data in (first, second):
        again = subprocess.run(command(data), env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "cache hit" in again.stderr, again.stderr
    listing = run_cli("cache", "ls", "--json")
    store = json.loads(listing.output.strip().splitlines()[-1])["store"]
    assert store["rows"] == len(set(texts.iloc[0:180])) and store["views"] == 2
    assert store["orphans"] == 0 and store["shards"] >= 2


KILLED_WRITER = """
import os, signal, sys
import numpy as np
from probe.features.store import rowstore
from probe.files import atomic_path

setting = rowstore.Setting("fp", "tok", 8, "right", "float32")
store = rowstore.RowStore(setting)
store.commit(np.zeros((1, 20), np.uint8), [1], {p: np.zeros((1, 1, 2), np.float16)
             for p in setting.pools}, [0])
name = f"shard-1-{os.uname().nodename}-{os.getpid()}-deadbeef.h5"
with atomic_path(store.folder / name, suffix=".h5") as staging:
    staging.write_bytes(b"half a shard")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writer_leaves_an_orphan_that_gc_removes(tmp_path, isolated_cache):
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER], env=probe_env(isolated_cache))
    assert killed.returncode == -signal.SIGKILL
    folder = next((isolated_cache / "rows").iterdir())
    temps = [p for p in folder.iterdir() if p.name.startswith(".shard-")]
    assert len(temps) == 1
    info = run_cli("cache", "info")
    assert info.exit_code == 0 and "1 orphan shards" in info.output, info.output
    gc = run_cli("cache", "gc")
    assert gc.exit_code == 0 and "removed 1 orphan files" in gc.output, gc.output
    assert not temps[0].exists()
    assert len(list(folder.glob("shard-*.h5"))) == 1  # the committed shard stays
    assert "rows: 1 texts in 1 shards" in run_cli("cache", "ls").output


def test_views_are_shown_apart_from_rows_and_rebuilt_without_the_model(
    sms_rows, tmp_path, monkeypatch
):
    """``probe cache gc --views`` frees the views' copies; ``probe fit`` on the same data
    then rebuilds its view from the rows and runs no model, with the same head."""
    import probe.features.models.loading

    first = run_cli(*cli_args("fit", **sms_rows, layer=2, out=tmp_path / "a.json", json=True))
    assert first.exit_code == 0, first.output
    listing = run_cli("cache", "ls", "--json")
    store = json.loads(listing.output.strip().splitlines()[-1])["store"]
    assert store["views"] == 1 and store["view_bytes"] > 0 and store["shard_bytes"] > 0
    totals = run_cli("cache", "ls").output.strip().splitlines()[-1]
    assert f"rows: {store['rows']} texts in {store['shards']} shards" in totals
    assert f"views: 1 ({store['view_bytes'] / 1e6:.1f} MB, copies of rows" in totals
    freed = run_cli("cache", "gc", "--views")
    assert freed.exit_code == 0 and "removed 1 views" in freed.output, freed.output
    assert "views: 0 (0.0 MB" in freed.output.strip().splitlines()[-1]

    def no_model(*args, **kwargs):
        raise AssertionError("the backbone was loaded")

    monkeypatch.setattr(probe.features.models.loading, "load_backbone", no_model)
    again = run_cli(*cli_args("fit", **sms_rows, layer=2, out=tmp_path / "b.json", json=True))
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["metrics"] == json.loads(first.stdout)["metrics"]
    assert (tmp_path / "b.safetensors").read_bytes() == (tmp_path / "a.safetensors").read_bytes()
    assert json.loads(run_cli("cache", "ls", "--json").output.splitlines()[-1])["store"]["views"]


def test_superseded_rows_are_counted_and_gc_frees_them(tiny_gpt2_dir, sms_subset):
    """``--force`` stores its rows again; the old copies are superseded, shown, removed."""
    args = ("extract", "--model", tiny_gpt2_dir, "--data", sms_subset, "--layers", "3", "-q")
    view = run_cli(*args).output.strip()
    before = open_cache(view).features(3, "mean")
    forced = run_cli(*args, "--force")
    assert forced.exit_code == 0, forced.output
    totals = run_cli("cache", "ls").output.strip().splitlines()[-1]
    assert "rows: 40 texts in 2 shards" in totals and "MB superseded copies" in totals
    done = run_cli("cache", "gc")
    assert "removed superseded rows from 1 shards" in done.output, done.output
    totals = done.output.strip().splitlines()[-1]
    assert "rows: 40 texts in 1 shards" in totals and "superseded" not in totals
    np.testing.assert_allclose(open_cache(view).features(3, "mean"), before, rtol=2**-9, atol=1e-5)
    rebuilt = run_cli("extract", "--model", tiny_gpt2_dir, "--data", sms_subset, "--layers", "3")
    assert rebuilt.exit_code == 0 and "cache hit" in rebuilt.output
