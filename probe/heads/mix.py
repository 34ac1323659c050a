"""Heads on several layers at once: concatenated features, and a learned scalar mix.

``--layer 12,18,24`` concatenates the layers' features (D x 3 inputs). ``--layer mix`` learns
a softmax-weighted sum of every stored layer, as ELMo, SentEval and NeuroX do: each layer is
standardised on the training rows, ``mixed = sum_l softmax(s)_l * Z_l``, and the weights ``s``
are fitted jointly with a logistic head by L-BFGS (scipy) on the mean log loss plus the usual
L2 penalty. The head reported is then refitted on the mixed features with the same C search
as every other row, so its numbers compare with single-layer rows. Numpy only: no torch.

The whole (layers, N, D) stack is held in memory (float32): 31 x 67k x 576 is ~4.8 GB, so
mix a subset of rows or layers for large sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.features.layers import CONCAT, MIX, RowSpec


@dataclass
class LayerCombiner:
    """How a multi-layer head turns pooled features of its layers into its input.

    Saved with the head and applied by ``probe predict`` and inside the ONNX graph, so a text
    gets the prediction it got at fit time. A mix holds the per-layer standardisation of the
    training rows and the softmax weights; a concat holds nothing but the layer order.
    """

    kind: str  # CONCAT or MIX
    layers: tuple  # model layers, in the order of the stack
    weights: np.ndarray | None = None  # (L,) softmax mixing weights
    mean: np.ndarray | None = None  # (L, D) training mean per layer
    scale: np.ndarray | None = None  # (L, D) training scale per layer

    def apply(self, stack: np.ndarray) -> np.ndarray:
        """(L, N, D) float32 -> (N, L*D) for a concat, (N, D) for a mix."""
        if self.kind == CONCAT:
            return np.concatenate(list(stack), axis=1)
        standard = (stack - self.mean[:, None, :]) / self.scale[:, None, :]  # (L, N, D)
        return np.tensordot(self.weights, standard, axes=1)

    def tensors(self) -> dict:
        """What ``save_head`` writes beside the head's weights."""
        if self.kind != MIX:
            return {}
        return {"mix_weights": self.weights, "layer_mean": self.mean, "layer_scale": self.scale}

    @classmethod
    def from_tensors(cls, kind: str, layers, tensors: dict) -> LayerCombiner:
        """The combiner ``tensors()`` described (float32, as at fit time)."""
        if kind != MIX:
            return cls(kind, tuple(layers))
        weights, mean, scale = (np.asarray(tensors[name], np.float32) for name in MIX_TENSORS)
        return cls(kind, tuple(layers), weights, mean, scale)


MIX_TENSORS = ("mix_weights", "layer_mean", "layer_scale")


def concat_features(split, layers: list[int], pool: str) -> np.ndarray:
    """(n, D * len(layers)) float32, layers side by side in the given order."""
    return np.hstack([split.features(layer, pool) for layer in layers])


def _stack(split, layers, pool) -> np.ndarray:
    return np.stack([split.features(layer, pool) for layer in layers])  # (L, n, D)


def mix_loss_and_gradient(
    theta: np.ndarray, stack: np.ndarray, codes: np.ndarray, k: int, C: float
) -> tuple[float, np.ndarray]:
    """The scalar mix's objective and its gradient in ``theta`` = (s (L,), W (K, D), b (K,)).

    Mean log loss of softmax(mixed @ W.T + b) with mixed = sum_l softmax(s)_l * stack[l],
    plus ||W||^2 / (2 C n). Computed in ``stack``'s dtype (float32 when fitting; float64 to
    check the gradient against autograd).
    """
    from scipy.special import log_softmax, softmax

    n_layers, n, dim = stack.shape
    dtype = stack.dtype
    targets = np.zeros((n, k), dtype)
    targets[np.arange(n), codes] = 1.0
    s = theta[:n_layers]
    W = theta[n_layers : n_layers + k * dim].reshape(k, dim)
    b = theta[n_layers + k * dim :]
    weights = softmax(s)  # (L,)
    mixed = np.tensordot(weights.astype(dtype), stack, axes=1)  # (n, D)
    logits = mixed @ W.T.astype(dtype) + b  # (n, K)
    log_p = log_softmax(logits, axis=1)
    loss = -float((log_p * targets).sum()) / n + float((W**2).sum()) / (2 * C * n)
    G = (np.exp(log_p) - targets) / n  # (n, K)
    grad_W = G.T @ mixed + W / (C * n)  # (K, D)
    grad_b = G.sum(axis=0)
    grad_mixed = (G @ W.astype(dtype)).astype(dtype)  # (n, D)
    grad_weights = np.einsum("nd,lnd->l", grad_mixed, stack)  # (L,)
    grad_s = weights * (grad_weights - weights @ grad_weights)  # softmax Jacobian
    return loss, np.concatenate([grad_s, grad_W.ravel(), grad_b]).astype(np.float64)


def fit_mix_weights(
    stack: np.ndarray, codes: np.ndarray, k: int, *, C: float = 1.0, max_iter: int = 200
) -> np.ndarray:
    """Softmax mixing weights (L,) learned jointly with a K-class logistic head.

    ``stack`` is standardised per layer, (L, n, D) float32. Objective: mean log loss plus
    ||W||^2 / (2 C n), as scikit-learn's C on the summed loss (``mix_loss_and_gradient``).
    """
    from scipy.optimize import minimize
    from scipy.special import softmax

    n_layers, _, dim = stack.shape
    theta = np.zeros(n_layers + k * dim + k)
    found = minimize(
        mix_loss_and_gradient,
        theta,
        args=(stack, codes, k, C),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter},
    )
    return softmax(found.x[:n_layers])


def mix_features(data, layers: list[int], pool: str, *, C: float = 1.0):
    """Mixed features of every split, {split name: (n, D)}, what was learned, and the
    ``LayerCombiner`` that repeats it on new texts.

    Each layer is standardised with the training rows' mean and scale before mixing, as a
    head standardises its input (``standardise``: constant columns keep scale 1).
    """
    from probe.heads.inputs import standardise

    train = _stack(data.train, layers, pool)  # (L, n, D) float32
    mean = np.empty(train.shape[::2], np.float32)  # (L, D)
    scale = np.empty(train.shape[::2], np.float32)
    for index, layer in enumerate(train):  # in place, one layer at a time: no (L, n, D) copy
        _, mean[index], scale[index] = standardise(layer, copy=False)
    classes, codes = np.unique(data.train.labels, return_inverse=True)
    weights = fit_mix_weights(train, codes, len(classes), C=C).astype(np.float32)
    combiner = LayerCombiner(MIX, tuple(layers), weights, mean, scale)
    mixed = {"train": np.tensordot(weights, train, axes=1)}
    del train
    for name, split in data.splits().items():
        if name != "train":
            mixed[name] = combiner.apply(_stack(split, layers, pool))
    info = {"layers": list(layers), "mix_weights": [float(w) for w in weights]}
    return mixed, info, combiner


def multi_layer_features(data, spec: RowSpec, pool: str):
    """{split: features}, a description and the ``LayerCombiner`` of a concat or mix row."""
    layers = list(spec.layers)
    if spec.kind == MIX:
        return mix_features(data, layers, pool)
    combiner = LayerCombiner(CONCAT, tuple(layers))
    features = {name: concat_features(split, layers, pool) for name, split in data.splits().items()}
    return features, {"layers": layers}, combiner
