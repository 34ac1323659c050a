"""Online codelength: an informative layer compresses its labels, noise does not."""

from __future__ import annotations

import math

import numpy as np

from probe.research.mdl import block_ends, online_codelength
from probe.research.sweep import run_sweep


def test_blocks_grow_and_end_at_n():
    assert block_ends(2000) == [2, 4, 8, 16, 32, 64, 125, 250, 500, 1000, 2000]
    ends = block_ends(50)
    assert ends[0] == 1 and ends[-1] == 50 and ends == sorted(set(ends))


def test_codelength_of_signal_and_noise():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 16)).astype(np.float32)
    y = np.where(X[:, 0] > 0, "yes", "no")
    signal = online_codelength(X, y, C=1.0)
    assert signal["mdl_uniform_bits"] == 600 * math.log2(2)
    assert signal["mdl_compression"] > 2
    assert sum(b["bits"] for b in signal["mdl_blocks"]) == signal["mdl_online_bits"]
    noise = online_codelength(rng.normal(size=(600, 16)).astype(np.float32), y, C=1.0)
    assert noise["mdl_compression"] < 1.2


def test_sweep_compression_ranks_layers_as_accuracy_does(research_data):
    result = run_sweep(research_data, pools=["last"], n_jobs=1, mdl=True)
    rows = sorted(result["entries"], key=lambda row: row["layer"])
    compression = [row["mdl_compression"] for row in rows]
    assert compression[-1] > compression[0]
    assert compression[-1] > 1.3 and compression[0] < 1.1
    accuracy = [row["test_accuracy"] for row in rows]
    assert np.argmax(compression) == np.argmax(accuracy)
