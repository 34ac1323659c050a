"""A head streamed from the cache file equals the in-memory fit on the same layer."""

from __future__ import annotations

import numpy as np
import pytest

from probe.errors import ProbeError
from probe.heads.estimator import ProbeClassifier
from probe.heads.rows import prepare
from probe.heads.streaming import fit_streamed


@pytest.mark.parametrize(("layer", "pool"), [(0, "last"), (3, "mean")])
def test_streamed_head_equals_the_in_memory_head(tiny_gpt2_dir, sms_labelled, layer, pool):
    data = prepare(str(tiny_gpt2_dir), data=str(sms_labelled), max_length=48, test_size=0)
    ((path, rows),) = data.train.parts
    assert rows is None or (rows == np.arange(len(rows))).all()  # the whole file, in order
    X = data.train.features(layer, pool)
    labels = data.train.labels
    streamed = fit_streamed(path, pool, data.layers.index(layer), labels, C=0.1, tol=1e-6)
    memory = ProbeClassifier(C=0.1, tol=1e-6).fit(X, labels)
    np.testing.assert_allclose(streamed.mean_, memory.mean_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(streamed.scale_, memory.scale_, rtol=1e-4)
    np.testing.assert_allclose(streamed.coef_, memory.coef_, atol=1e-3 * np.abs(memory.coef_).max())
    assert (streamed.predict(X) == memory.predict(X)).all()
    chosen = fit_streamed(
        path, pool, data.layers.index(layer), labels, X_val=X[:30], y_val=labels[:30]
    )
    assert chosen.search_["method"] == "validation" and chosen.C_ in chosen.search_["Cs"]
    with pytest.raises(ProbeError, match="needs a given C or validation data"):
        fit_streamed(path, pool, 0, labels)
