"""``probe extract --engine ray``: same features as one process, also when a worker dies.

Runs a real local Ray cluster (2 CPUs) with the tiny GPT-2; skipped only where Ray is not
installed (CI installs ``probe[distributed]``). The missing-extra error is tested always.

Tolerance: Ray batches texts differently from one process, and a float32 pass over a
different batch shape is not bitwise equal; stored values are fp16, so they agree to fp16
rounding: |a - b| <= 5e-3 + 5e-3 * |b| (a few fp16 ulps at these magnitudes).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import SMS_CSV, probe_env

TOLERANCE = {"rtol": 5e-3, "atol": 5e-3}
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray not installed: probe[distributed]"
)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local 2-CPU Ray for the module: starting Ray costs ~10 s here. Its workers keep
    the environment they start with, so they get a store of their own, never ./cache."""
    from probe.features.distributed import start_ray

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROBE_CACHE", str(tmp_path_factory.mktemp("ray-workers-store")))
        ray, started = start_ray(None, workers=2)
    yield ray
    if started:
        ray.shutdown()


def sms_csv(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"sms{n}.csv"
    pd.read_csv(SMS_CSV).head(n).to_csv(path, index=False)
    return path


def local_view(model_dir, csv: Path, store: Path, monkeypatch):
    """The single-process extraction of the same data, in a store of its own."""
    from probe.data.readers import read_dataset
    from probe.features.extract import extract
    from probe.features.store.caches import open_cache

    monkeypatch.setenv("PROBE_CACHE", str(store))
    return open_cache(extract(str(model_dir), read_dataset(csv), "all"))


def assert_same_features(view, reference, layers=range(4)):
    np.testing.assert_array_equal(view.n_tokens, reference.n_tokens)
    for layer in layers:
        for pool in ("last", "mean"):
            np.testing.assert_allclose(
                view.features(layer, pool), reference.features(layer, pool), **TOLERANCE
            )


def map_worker_pids() -> list[int]:
    """Processes of Ray actors running ``EmbedBlock`` (Ray sets their process title)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::MapWorker") and b"EmbedBlock" in title:
            pids.append(int(entry.name))
    return pids


@needs_ray
def test_cli_ray_two_workers_equals_single_process(
    local_ray, tiny_gpt2_dir, tmp_path, isolated_cache, monkeypatch
):
    from probe.cli import main
    from probe.features.store.caches import open_cache, read_attrs

    csv = sms_csv(tmp_path, 80)
    result = CliRunner().invoke(
        main,
        [
            "extract",
            "--model",
            str(tiny_gpt2_dir),
            "--data",
            str(csv),
            "--engine",
            "ray",
            "--workers",
            "2",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert read_attrs(path)["computed_rows"] == 0  # Ray computed every row; the view read them
    reference = local_view(tiny_gpt2_dir, csv, tmp_path / "local", monkeypatch)
    assert_same_features(open_cache(path), reference)


@needs_ray
def test_python_extract_with_engine_ray_equals_single_process(
    local_ray, tiny_gpt2_dir, tmp_path, isolated_cache, monkeypatch
):
    """``probe.extract(..., engine="ray")`` from Python: the same view the CLI's Ray run gives,
    every row computed on the cluster; options the workers cannot honour are refused."""
    import probe
    from probe.data.readers import read_dataset
    from probe.features.store.caches import open_cache, read_attrs

    csv = sms_csv(tmp_path, 40)
    path = probe.extract(str(tiny_gpt2_dir), read_dataset(csv), "all", engine="ray", workers=2)
    assert read_attrs(path)["computed_rows"] == 0
    reference = local_view(tiny_gpt2_dir, csv, tmp_path / "local", monkeypatch)
    assert_same_features(open_cache(path), reference)
    with pytest.raises(probe.ProbeError, match="--force is not supported"):
        probe.extract(str(tiny_gpt2_dir), read_dataset(csv), engine="ray", force=True)
    with pytest.raises(probe.ProbeError, match="unknown engine 'dask'"):
        probe.extract(str(tiny_gpt2_dir), read_dataset(csv), engine="dask")


@needs_ray
def test_the_view_step_takes_the_clusters_dtype(local_ray, tiny_gpt2_dir, tmp_path, monkeypatch):
    """A GPU cluster computes in bf16 while the driver has only a CPU: the driver's view
    step must find the cluster's rows, not recompute them in its own fp32."""
    import probe.features.distributed as distributed
    from probe.cli import main
    from probe.features.store.caches import read_attrs

    def gpu_cluster(ray, requested=None):
        return "cpu", "bfloat16"  # what cluster_device_and_dtype reports for bf16 GPUs

    monkeypatch.setattr(distributed, "cluster_device_and_dtype", gpu_cluster)
    result = CliRunner().invoke(
        main,
        [
            "extract",
            "--model",
            str(tiny_gpt2_dir),
            "--data",
            str(sms_csv(tmp_path, 40)),
            "--engine",
            "ray",
            "--workers",
            "2",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    attrs = read_attrs(Path(result.stdout.strip().splitlines()[-1]))  # stderr may hold Ray's
    assert attrs is not None, result.output
    assert attrs["compute_dtype"] == "bfloat16" and attrs["computed_rows"] == 0


@needs_ray
def test_killed_worker_costs_only_its_block(
    local_ray, tiny_gpt2_dir, tmp_path, isolated_cache, monkeypatch
):
    from probe.data.readers import read_dataset
    from probe.features.distributed import fill_store_on_ray
    from probe.features.extract import extract
    from probe.features.store.caches import open_cache, read_attrs

    csv = sms_csv(tmp_path, 240)
    killed: list[int] = []

    def kill_one_worker():
        if killed:
            return
        pids = map_worker_pids()
        assert pids, "no Ray map worker found to kill"
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])

    dataset = read_dataset(csv)
    fill_store_on_ray(
        str(tiny_gpt2_dir), dataset, "all", workers=2, rows_per_block=10, on_block=kill_one_worker
    )
    assert killed  # the kill happened after the first of 24 blocks was committed
    view = extract(str(tiny_gpt2_dir), dataset, "all")
    assert read_attrs(view)["computed_rows"] == 0  # every row came from Ray, none missing
    reference = local_view(tiny_gpt2_dir, csv, tmp_path / "local", monkeypatch)
    assert_same_features(open_cache(view), reference)


def test_workers_get_the_drivers_store(local_ray, monkeypatch, tmp_path):
    """A local Ray's workers use the driver's store (not ./cache under their session
    folder); a remote cluster's only when PROBE_CACHE names one the user chose."""
    from probe.features.distributed import worker_environment
    from probe.files import models_root, store_location

    @local_ray.remote
    def worker_store() -> str:
        import os

        return os.environ.get("PROBE_CACHE", "")

    assert Path(local_ray.get(worker_store.remote())).name.startswith("ray-workers-store")
    places = {"PROBE_CACHE": str(tmp_path / "store"), "PROBE_MODELS": str(tmp_path / "models")}
    for name, value in places.items():
        monkeypatch.setenv(name, value)
    assert worker_environment(None) == {"env_vars": places}
    assert worker_environment("ray://head:10001") == {"env_vars": places}
    monkeypatch.delenv("PROBE_MODELS")  # a cluster gets only the folders the user named
    assert worker_environment("ray://head:10001") == {
        "env_vars": {"PROBE_CACHE": places["PROBE_CACHE"]}
    }
    monkeypatch.delenv("PROBE_CACHE")
    assert worker_environment("ray://head:10001") == {}
    local = worker_environment(None)["env_vars"]  # a local Ray's workers: the driver's folders
    assert local["PROBE_CACHE"] == str(store_location().path.resolve())
    assert local["PROBE_MODELS"] == str(models_root().resolve())


def test_requested_dtype_overrides_the_cluster_default(local_ray):
    from probe.features.distributed import cluster_device_and_dtype

    assert cluster_device_and_dtype(local_ray) == ("cpu", "float32")
    assert cluster_device_and_dtype(local_ray, "bfloat16") == ("cpu", "bfloat16")


def test_without_ray_engine_ray_is_one_line_error(tiny_gpt2_dir, sms_subset, tmp_path):
    blocked = (
        "import sys; sys.modules['ray'] = None; from probe.cli import main; main(prog_name='probe')"
    )
    args = ["extract", "--model", str(tiny_gpt2_dir), "--data", str(sms_subset), "--engine", "ray"]
    run = subprocess.run(
        [sys.executable, "-c", blocked, *args],
        capture_output=True,
        text=True,
        env=probe_env(tmp_path / "store"),
        timeout=120,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 200, run.stderr
    assert "pip install 'probe[distributed]'" in lines[0]
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.h5"))


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"GPU": 1.0, "CPU": 16.0}, 1),
        ({"GPU": 8.0, "CPU": 2.0}, 8),
        ({"CPU": 2.0}, 1),
        ({"CPU": 17.0}, 4),
        ({"CPU": 64.0}, 15),
        ({}, 1),
    ],
)
def test_default_workers_are_one_per_gpu_else_one_per_cpu_group(resources, expected):
    from probe.features.distributed import check_placement, default_workers

    assert default_workers(resources) == expected
    assert check_placement(resources, None) == expected


@pytest.mark.parametrize(
    ("resources", "workers", "needle"),
    [({"GPU": 1.0, "CPU": 16.0}, 2, "needs 2 GPUs"), ({"CPU": 2.0}, 2, "needs 3 CPUs")],
)
def test_a_request_the_cluster_cannot_place_is_one_line(resources, workers, needle):
    from probe.errors import ProbeError
    from probe.features.distributed import check_placement

    with pytest.raises(ProbeError, match=needle) as raised:
        check_placement(resources, workers)
    assert "\n" not in str(raised.value)
    assert check_placement(resources, workers - 1) == workers - 1


@needs_ray
def test_cli_unplaceable_workers_fail_at_once_in_one_line(local_ray, tiny_gpt2_dir, sms_subset):
    from probe.cli.main import main

    result = CliRunner().invoke(
        main,
        [
            "extract",
            "--model",
            str(tiny_gpt2_dir),
            "--data",
            str(sms_subset),
            "--engine",
            "ray",
            "--workers",
            "64",
            "--quiet",
        ],
    )
    assert result.exit_code == 1
    assert "--workers 64 needs" in result.output and "Traceback" not in result.output
