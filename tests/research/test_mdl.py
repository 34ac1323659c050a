"""Online codelength (Voita & Titov 2020): each block's probe chooses its own C on its prefix.

Known answers: labels independent of the features compress by 1.0 (no code beats the
uniform one by more than noise, and a per-block C keeps the probe from doing much worse);
a separable task compresses more the more rows there are; the bits equal an independent
recomputation with scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from probe.research.mdl import block_ends, choose_block_C, online_codelength
from probe.research.sweep import run_sweep


def test_blocks_grow_and_end_at_n():
    assert block_ends(2000) == [2, 4, 8, 16, 32, 64, 125, 250, 500, 1000, 2000]
    ends = block_ends(50)
    assert ends[0] == 1 and ends[-1] == 50 and ends == sorted(set(ends))


@pytest.mark.parametrize(("dim", "k", "seed"), [(16, 2, 0), (576, 2, 1), (64, 3, 2)])
def test_random_labels_compress_by_one(dim, k, seed):
    rng = np.random.default_rng(seed)
    X = (4.0 + 3.0 * rng.normal(size=(2000, dim))).astype(np.float32)
    y = rng.integers(0, k, 2000)
    result = online_codelength(X, y)
    assert result["mdl_uniform_bits"] == pytest.approx(2000 * math.log2(k))
    assert abs(result["mdl_compression"] - 1.0) <= 0.05, result["mdl_compression"]


def test_a_separable_task_compresses_more_with_more_rows():
    rng = np.random.default_rng(0)
    compression = []
    for n in (100, 400, 1600):
        X = rng.normal(size=(n, 16)).astype(np.float32)
        compression.append(
            online_codelength(X, np.where(X[:, 0] > 0, "yes", "no"))["mdl_compression"]
        )
    assert compression[0] < compression[1] < compression[2]
    assert compression[2] > 4 * compression[0]


def test_a_block_chooses_a_small_C_for_noise_and_a_larger_one_for_signal():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 32)).astype(np.float32)
    grid = (1e-4, 1e-2, 1.0, 100.0)
    assert choose_block_C(X, rng.integers(0, 2, 400), grid) <= 1e-2
    assert choose_block_C(X, (X[:, 0] > 0).astype(int), grid) >= 1.0


def test_bits_equal_an_independent_scikit_learn_recomputation():
    """With a one-C grid, every block is a standardised L2 logistic regression at that C:
    scikit-learn's, fitted here on the same prefixes, must send the same bits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] + rng.normal(size=300) > 0).astype(int)
    result = online_codelength(X, y, Cs=[0.5], seed=7)
    order = np.random.default_rng(7).permutation(300)
    Xs, ys = X[order].astype(np.float64), y[order]
    ends = block_ends(300)
    expected = ends[0] * 1.0
    for start, end in zip(ends[:-1], ends[1:], strict=True):
        if len(np.unique(ys[:start])) < 2:
            expected += end - start
            continue
        scaler = StandardScaler().fit(Xs[:start])
        model = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000)
        model.fit(scaler.transform(Xs[:start]), ys[:start])
        p = model.predict_proba(scaler.transform(Xs[start:end]))[
            np.arange(end - start), ys[start:end]
        ]
        expected += -np.log2(p).sum()
    assert result["mdl_online_bits"] == pytest.approx(expected, rel=2e-3)
    assert [b["end"] for b in result["mdl_blocks"]] == ends


def test_sweep_compression_ranks_layers_as_accuracy_does(research_data):
    result = run_sweep(research_data, pools=["last"], n_jobs=1, mdl=True)
    rows = sorted(result["entries"], key=lambda row: row["layer"])
    compression = [row["mdl_compression"] for row in rows]
    assert compression[-1] > compression[0]
    assert compression[-1] > 1.3 and abs(compression[0] - 1.0) < 0.1  # layer 0 is noise
    assert min(compression) > 0.9
    accuracy = [row["test_accuracy"] for row in rows]
    assert np.argmax(compression) == np.argmax(accuracy)
