"""Every bad input is one line: the real CLI over a table of things users get wrong.

Each case runs the real command (click's CliRunner, a few through ``python -m probe``) and
asserts: non-zero exit, nothing on stdout, exactly one non-empty line on stderr of at most
200 characters, no traceback, and, where a cache or a head existed, that it is unchanged
and still opens afterwards (a bad input never loses data).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import REPO, probe_env
from probe.cli import main
from probe.cli.common import fail_cleanly
from probe.errors import ProbeError

MAX_LINE = 200


@dataclass
class Inputs:
    """What a case builds its bad input from; the cache and the head are made on demand."""

    tmp: Path
    model: Path
    data: Path
    store: Path
    made: dict = field(default_factory=dict)

    def file(self, name: str, content: bytes | str) -> Path:
        path = self.tmp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def cache(self) -> Path:
        """A complete cache of the 90 labelled SMS texts (ids and labels stored)."""
        if "cache" not in self.made:
            result = invoke(
                ["extract", "--model", self.model, "--data", self.data, "--max-length", 48, "-q"]
            )
            assert result.exit_code == 0, result.output
            self.made["cache"] = Path(result.stdout.strip().splitlines()[-1])
        return self.made["cache"]

    def head(self) -> Path:
        if "head" not in self.made:
            out = self.tmp / "heads" / "sms.json"
            result = invoke(
                [
                    "fit",
                    "--model",
                    self.model,
                    "--data",
                    self.data,
                    "--max-length",
                    48,
                    "--layer",
                    2,
                    "-q",
                    "--out",
                    out,
                ]
            )
            assert result.exit_code == 0, result.output
            self.made["head"] = out
        return self.made["head"]

    def other_model(self) -> Path:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(1)
        folder = self.tmp / "other-gpt2"
        config = GPT2Config(n_layer=3, n_embd=32, n_head=2, n_positions=256)
        GPT2LMHeadModel(config).save_pretrained(folder)
        return folder


def invoke(args, env=None):
    return invoke_command(main, args, env)


def invoke_command(command, args=(), env=None):
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2 mixes stderr into stdout by default
    except TypeError:
        runner = CliRunner()  # click >= 8.2: result.stderr is always separate
    return runner.invoke(command, [str(a) for a in args], env=env)


def extract_args(inputs: Inputs, data) -> list:
    return ["extract", "--model", inputs.model, "--data", data, "--max-length", 48, "-q"]


def fit_args(inputs: Inputs, *extra) -> list:
    return ["fit", "--model", inputs.model, "--data", inputs.data, "--max-length", 48, "-q", *extra]


# A case returns (command line, environment overrides, fragment the error must contain).
Case = Callable[[Inputs], tuple[list, dict, str]]
CASES: dict[str, Case] = {}


def case(function: Case) -> Case:
    CASES[function.__name__] = function
    return function


@case
def missing_data_file(inputs):
    return extract_args(inputs, inputs.tmp / "nope.csv"), {}, "not found"


@case
def empty_file(inputs):
    return extract_args(inputs, inputs.file("empty.csv", b"")), {}, "empty"


@case
def header_only(inputs):
    return extract_args(inputs, inputs.file("header.csv", "text,label\n")), {}, "empty"


@case
def wrong_text_column(inputs):
    data = inputs.file("body.csv", "body,label\nhello,ham\nwin now,spam\n")
    return extract_args(inputs, data), {}, "--text-col"


@case
def non_utf8_bytes(inputs):
    data = inputs.file("latin1.csv", "text,label\ncafé crème,ham\n".encode("latin-1"))
    return extract_args(inputs, data), {}, "UTF-8"


@case
def nul_bytes(inputs):
    data = inputs.file("nul.csv", b"text,label\nhello\x00world,ham\nwin now,spam\n")
    return extract_args(inputs, data), {}, "NUL"


@case
def binary_file(inputs):
    elf_like = b"\x7fELF\x02\x01\x01\x00" + bytes(64) + b"\x02\x00>\x00\x01" + bytes(32)
    return extract_args(inputs, inputs.file("program.csv", elf_like)), {}, "NUL"


@case
def one_class_labels(inputs):
    data = inputs.file("one.csv", "text,label\nhi,ham\nhello,ham\nhey there,ham\n")
    return ["fit", "--model", inputs.model, "--data", data, "-q"], {}, "2 classes"


@case
def unknown_model_alias(inputs):
    args = ["extract", "--model", "smollm2-153m", "--data", inputs.data, "-q"]
    return args, {"HF_HUB_OFFLINE": "1"}, "smollm2-135m"


@case
def model_dir_without_weights(inputs):
    folder = inputs.tmp / "no-weights"
    folder.mkdir()
    shutil.copy(inputs.model / "config.json", folder / "config.json")
    args = ["extract", "--model", folder, "--data", inputs.data, "-q"]
    return args, {}, "no weight files"


@case
def probe_cache_is_a_file(inputs):
    not_a_folder = inputs.file("cache-file", "I am a file\n")
    args = extract_args(inputs, inputs.data)
    return args, {"PROBE_CACHE": str(not_a_folder)}, "PROBE_CACHE"


@case
def unwritable_cache_dir(inputs):
    """A store nobody may write in. chmod does not stop root (CI runs as root), so root gets
    a folder under sysfs, where the kernel refuses new files to every user."""
    if os.geteuid() == 0:
        assert Path("/sys/kernel").is_dir(), "no sysfs: this test needs Linux"
        locked = Path("/sys/kernel/probe-store")
    else:
        locked = inputs.tmp / "locked-store"
        locked.mkdir()
        locked.chmod(0o500)
    return extract_args(inputs, inputs.data), {"PROBE_CACHE": str(locked)}, "not writable"


@case
def cuda_without_cuda(inputs):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = [*extract_args(inputs, inputs.data), "--device", "cuda"]
    return args, {}, "CUDA is not available on this machine; use --device cpu"


@case
def unknown_device(inputs):
    return [*extract_args(inputs, inputs.data), "--device", "gpu0"], {}, "unknown device"


@case
def bad_layers_spec(inputs):
    return [*extract_args(inputs, inputs.data), "--layers", "1-3"], {}, "invalid layer"


@case
def layer_slice_with_step_zero(inputs):
    return [*extract_args(inputs, inputs.data), "--layers", "0:3:0"], {}, "step must be 1 or more"


@case
def layer_slice_with_negative_step(inputs):
    sweep = ["sweep", *fit_args(inputs)[1:], "--layers", "3:0:-1"]
    return sweep, {}, "step must be 1 or more"


@case
def layer_out_of_range(inputs):
    return fit_args(inputs, "--layer", 9), {}, "layers 0..3"


@case
def unknown_pool(inputs):  # max is a position fit extracts on demand; median is none
    return fit_args(inputs, "--pool", "median"), {}, "unknown pool 'median'"


@case
def too_large_test_size(inputs):
    return fit_args(inputs, "--test-size", 1.5), {}, "--test-size"


@case
def head_json_edited(inputs):
    head = inputs.head()
    head.write_text(head.read_text().replace('"layer": 2', '"layer": 1'))
    return ["predict", "--head", head, "free prize"], {}, "damaged"


@case
def head_json_truncated(inputs):
    head = inputs.head()
    head.write_bytes(head.read_bytes()[:100])
    return ["predict", "--head", head, "free prize"], {}, "damaged"


@case
def head_weights_truncated(inputs):
    weights = inputs.head().with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:-16])
    return ["predict", "--head", inputs.head(), "free prize"], {}, "sha256"


@case
def head_for_another_model(inputs):
    args = ["predict", "--head", inputs.head(), "--model", inputs.other_model(), "free prize"]
    return args, {}, "model"


@case
def cache_file_not_hdf5(inputs):
    inputs.cache()
    fake = inputs.file("notes.h5", "text,label\nnot hdf5,ham\n")
    return ["fit", "--train", fake, "-q"], {}, "notes.h5"


@case
def incomplete_cache(inputs):
    import h5py

    partial = inputs.tmp / "interrupted.h5"
    shutil.copy(inputs.cache(), partial)
    with h5py.File(partial, "r+") as handle:
        handle.attrs["complete"] = False
    return ["fit", "--train", partial, "-q"], {}, "incomplete"


@case
def labels_for_uncached_texts(inputs):
    labels = inputs.file("new.csv", "text,label\nnever seen before,a\nnor this one,b\n")
    return ["fit", "--data", inputs.cache(), "--labels", labels, "-q"], {}, "not in the cache"


@case
def labels_for_long_uncached_texts(inputs):
    """Quoted examples make the line too long: they lose their middle, the remedy stays."""
    long = [f"text {i} that was never extracted, " + "and it goes on " * 8 for i in range(3)]
    frame = pd.DataFrame({"text": long, "label": ["a", "b", "a"]})
    labels = inputs.file("long-labels.csv", frame.to_csv(index=False))
    args = ["fit", "--data", inputs.cache(), "--labels", labels, "-q"]
    return args, {}, "…; extract them first: probe extract --data …/long-labels.csv"


@case
def labels_with_unknown_ids(inputs):
    labels = inputs.file("ids.csv", "id,label\nzz001,a\nzz002,b\nm000,a\n")
    return ["fit", "--data", inputs.cache(), "--labels", labels, "-q"], {}, "not in the cache"


@case
def head_out_under_a_file(inputs):
    a_file = inputs.file("not-a-folder", "x\n")
    return fit_args(inputs, "--out", a_file / "head.json"), {}, "not-a-folder"


# --- running the table ------------------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path, tiny_gpt2_dir, sms_labelled, isolated_cache):
    made = Inputs(tmp_path / "inputs", tiny_gpt2_dir, sms_labelled, isolated_cache)
    made.tmp.mkdir()
    yield made
    for folder in made.tmp.iterdir():  # let pytest clean up a locked folder
        if folder.is_dir():
            folder.chmod(0o700)


def snapshot(inputs: Inputs) -> dict[Path, str]:
    """sha256 of every cache file (views and row shards) and head: what a bad input must
    leave as it was."""
    files = [*inputs.store.rglob("*.h5")]
    if "head" in inputs.made:
        files += [inputs.made["head"], inputs.made["head"].with_suffix(".safetensors")]
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def assert_nothing_lost(inputs: Inputs, before: dict[Path, str]) -> None:
    from probe.features.store.caches import features_dir, open_cache

    after = snapshot(inputs)
    for path, digest in before.items():
        assert after.get(path) == digest, f"{path} changed or vanished"
        if path.parent == features_dir(inputs.store):  # a view: complete and readable
            cache = open_cache(path)
            assert cache.features(cache.layers[-1], "last").shape == (cache.n, cache.dim)
    if "cache" in inputs.made:
        assert inputs.made["cache"] in before, "the case's cache vanished before it ran"


def assert_one_line_error(exit_code, stdout: str, stderr: str, fragment: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert exit_code not in (0, None), (stdout, stderr)
    assert "Traceback" not in stderr + stdout
    assert stdout.strip() == "", stdout
    assert len(lines) == 1, stderr
    assert len(lines[0]) <= MAX_LINE, f"{len(lines[0])} characters: {lines[0]}"
    assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_loses_nothing(name, inputs):
    args, env, fragment = CASES[name](inputs)
    before = snapshot(inputs)
    result = invoke(args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception}"
    )
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, fragment)
    assert_nothing_lost(inputs, before)


SUBPROCESS_CASES = [
    "unknown_model_alias",
    "probe_cache_is_a_file",
    "cuda_without_cuda",
    "nul_bytes",
    "incomplete_cache",
]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process(name, inputs):
    """The same rule outside CliRunner: a fresh ``python -m probe`` prints one line, exit 1."""
    args, env, fragment = CASES[name](inputs)
    before = snapshot(inputs)
    completed = subprocess.run(
        [sys.executable, "-m", "probe", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**probe_env(inputs.store), **env},
    )
    line = assert_one_line_error(completed.returncode, completed.stdout, completed.stderr, fragment)
    assert completed.returncode == 1 and line.startswith("Error: ")
    assert_nothing_lost(inputs, before)


# --- defaults that say what they do -----------------------------------------------------------


def test_carved_test_split_is_announced_with_size_and_seed(inputs):
    result = invoke(
        [
            "fit",
            "--model",
            inputs.model,
            "--data",
            inputs.data,
            "--max-length",
            48,
            "--seed",
            3,
            "--out",
            inputs.tmp / "h.json",
        ]
    )
    assert result.exit_code == 0, result.output
    assert (
        "no --test given: holding out 18 of 90 examples (20%, stratified, seed 3) as the test "
        "set; --test-size 0 to use all for training"
    ) in result.stderr.splitlines()

    no_test = invoke([*fit_args(inputs), "--test-size", 0, "--out", inputs.tmp / "all.json"])
    assert no_test.exit_code == 0, no_test.output
    assert "train 90" in no_test.stdout and not re.search(r"\btest \d", no_test.stdout)
    with_test = pd.read_csv(inputs.data)
    with_test["split"] = ["train"] * 70 + ["test"] * 20
    split_file = inputs.file("split.csv", with_test.to_csv(index=False))
    given = invoke(
        [
            "fit",
            "--model",
            inputs.model,
            "--data",
            split_file,
            "--max-length",
            48,
            "--out",
            inputs.tmp / "given.json",
        ]
    )
    assert given.exit_code == 0, given.output
    assert "holding out" not in given.stderr


def _offline_process(inputs: Inputs, *args) -> subprocess.CompletedProcess:
    """``python -m probe ARGS`` offline, with a hub cache of its own: no hub model is found."""
    env = {**probe_env(inputs.store), "HF_HUB_OFFLINE": "1", "HF_HOME": str(inputs.tmp / "hf")}
    return subprocess.run(
        [sys.executable, "-m", "probe", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env=env,
    )


@pytest.mark.parametrize("command", ["extract", "fit"])
def test_the_default_model_failing_offline_is_named_as_the_default(command, inputs):
    """No --model: the line says gpt2 is the default and how to choose another, never "did
    you mean gpt2?" about gpt2 itself."""
    done = _offline_process(inputs, command, "--data", inputs.data, "-q")
    line = assert_one_line_error(done.returncode, done.stdout, done.stderr, "(the default --model)")
    assert "'gpt2'" in line and "HF_HUB_OFFLINE is set" in line
    assert "choose one with --model, e.g. smollm2-135m" in line and "did you mean" not in line


def test_a_misspelt_hub_model_still_gets_its_suggestion(inputs):
    done = _offline_process(inputs, "extract", "--model", "gtp2", "--data", inputs.data, "-q")
    line = assert_one_line_error(done.returncode, done.stdout, done.stderr, "did you mean gpt2?")
    assert "default" not in line


# --- fail_cleanly: the one-line rule for whatever a command raises ------------------------------


def _raising(exc: BaseException):
    @click.command()
    @fail_cleanly
    def command():
        raise exc

    return command


@pytest.mark.parametrize(
    "exc, fragment",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.h5"), "disk full"),
        (PermissionError(errno.EACCES, "Permission denied", "/store"), "permission denied"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/data"), "found a folder"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), "is a file"),
        (MemoryError("Unable to allocate 80.0 GiB"), "out of memory"),
        (ProbeError("first line " + "x" * 300 + "\nsecond line"), "first line"),
    ],
    ids=["disk-full", "denied", "is-a-dir", "not-a-dir", "memory", "long-probe-error"],
)
def test_fail_cleanly_gives_one_line_for_expected_errors(exc, fragment):
    result = invoke_command(_raising(exc))
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1
    line = assert_one_line_error(result.exit_code, result.stdout, result.stderr, fragment)
    assert line.startswith("Error: ")


@pytest.mark.parametrize("exc", [ValueError("a bug"), OSError(errno.EIO, "I/O error")])
def test_fail_cleanly_keeps_the_traceback_of_a_bug(exc):
    result = invoke_command(_raising(exc))
    assert result.exception is exc  # not swallowed into a one-line message
