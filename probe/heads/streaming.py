"""A head on a layer larger than memory: rows streamed from the HDF5 cache, block by block.

``ProbeClassifier.fit`` holds the standardised layer in memory (float32, 2x the fp16 cache):
fine up to a few million rows x 576. Beyond that, ``fit_streamed`` reads the layer in blocks
that follow the file's chunks (4,096 rows), once for the standardisation and once per solver
pass, so memory holds only O(N) logits and weights plus one block. Same solver, same
objective, so the same head as an in-memory fit; slower, because each pass reads the layer.
C is given or chosen on validation data (in memory): cross-validation would re-read the
layer once per fold and C.
"""

from __future__ import annotations

import warnings

import numpy as np

from probe.errors import ProbeError

BLOCK_ROWS = 4096  # the cache's chunk height: one chunk per read


class StreamedLayer:
    """One (pool, layer) of a cache file as standardised float32 rows, read on demand.

    Supports what the solver needs: ``len``, ``shape``, and ``[slice]`` or ``[sorted rows]``.
    """

    def __init__(self, path, pool: str, layer_index: int):
        import h5py

        self.file = h5py.File(path, "r")
        self.dataset = self.file[pool]  # [n_layers, N, D] float16
        self.layer_index = layer_index
        self.shape = tuple(self.dataset.shape[1:])
        self.centre = np.zeros(self.shape[1], np.float32)
        self.scale = np.ones(self.shape[1], np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def raw(self, rows) -> np.ndarray:
        """float32 rows as stored (slice, or increasing row indices)."""
        if not isinstance(rows, slice):
            rows = np.asarray(rows)
        return self.dataset[self.layer_index, rows].astype(np.float32)

    def __getitem__(self, rows) -> np.ndarray:
        block = self.raw(rows)
        block -= self.centre
        block /= self.scale
        return block

    def standardise(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread per column in one streamed pass (float64 sums of values shifted by
        the first block's mean, so large-mean columns keep their precision); constant
        columns get scale 1, as in the in-memory fit."""
        from probe.heads.estimator import InvalidTrainingData
        from probe.heads.maths import constant_columns

        n, dim = self.shape
        shift = self.raw(slice(0, BLOCK_ROWS)).astype(np.float64).mean(axis=0)  # (D,)
        total, squares, bad = np.zeros(dim), np.zeros(dim), 0
        for start in range(0, n, BLOCK_ROWS):
            block = self.raw(slice(start, start + BLOCK_ROWS)).astype(np.float64) - shift
            bad += int(block.size - np.count_nonzero(np.isfinite(block)))
            total += block.sum(axis=0)
            squares += np.einsum("ij,ij->j", block, block)
        if bad:
            raise InvalidTrainingData(f"layer contains {bad} non-finite values (NaN or inf)")
        mean = total / n
        spread = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
        centre = shift + mean
        self.centre = centre.astype(np.float32)
        self.scale = np.where(constant_columns(spread, centre), 1.0, spread).astype(np.float32)
        return self.centre.astype(np.float64), self.scale.astype(np.float64)

    def close(self) -> None:
        self.file.close()


def fit_streamed(
    path,
    pool: str,
    layer_index: int,
    y,
    *,
    C=None,
    Cs=None,
    X_val=None,
    y_val=None,
    tol: float = 1e-3,
    max_iter: int = 500,
    random_state: int = 0,
):
    """A ``ProbeClassifier`` fitted on ``pool[layer_index]`` of the cache at ``path`` without
    loading the layer; C given, or chosen on (X_val, y_val) over ``Cs``."""
    from sklearn.exceptions import ConvergenceWarning

    from probe.heads.estimator import DEFAULT_CS, InvalidTrainingData
    from probe.heads.maths import accuracy_and_log_loss, pick_C
    from probe.heads.persistence import classifier_from_weights
    from probe.heads.solver import SEARCH_TOL, LogisticPath

    if C is None and X_val is None:
        raise ProbeError("a layer streamed from disk needs a given C or validation data")
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise InvalidTrainingData("a classifier needs at least 2 classes")
    layer = StreamedLayer(path, pool, layer_index)
    try:
        if len(codes) != len(layer):
            raise ProbeError(f"{len(codes)} labels for {len(layer)} rows of the layer")
        mean, scale = layer.standardise()
        path_ = LogisticPath(layer, codes, len(classes), np.ones(len(codes)), seed=random_state)
        grid = [float(C)] if C is not None else sorted(float(c) for c in (Cs or DEFAULT_CS))
        search = {"method": "given", "Cs": grid}
        if C is None:
            standardised_val = (np.asarray(X_val, np.float32) - layer.centre) / layer.scale
            val_codes = np.searchsorted(classes, np.asarray(y_val))
            scores, states = [], []
            for value in grid:
                path_.solve(value, max(tol, SEARCH_TOL), max_iter)
                logits = path_.logits(standardised_val)
                scores.append(accuracy_and_log_loss(logits, val_codes, path_.binary))
                states.append(path_.snapshot())
            chosen = pick_C(grid, scores)
            path_.restore(states[grid.index(chosen)])
            search = {
                "method": "validation",
                "Cs": grid,
                "accuracy": [s[0] for s in scores],
                "log_loss": [s[1] for s in scores],
            }
        else:
            chosen = float(C)
        n_iter = path_.solve(chosen, tol, max_iter)
    finally:
        layer.close()
    if not path_.converged:
        warnings.warn(
            "fit_streamed did not converge; raise max_iter", ConvergenceWarning, stacklevel=2
        )
    classifier = classifier_from_weights(path_.W, path_.b, classes, mean, scale, C=chosen)
    classifier.search_, classifier.n_iter_ = search, n_iter
    classifier.solver_, classifier.fallback_reason_ = "probe-lbfgs (streamed)", None
    classifier.passes_ = path_.passes
    return classifier
