"""Which probe a head is (``--probe``): one module per family, a registry, the spec parser.

``logistic`` is the house's original head (``probe.heads.estimator.ProbeClassifier``); the
others are classification heads with its interface (``fit(X, y, X_val, y_val, groups)``,
``classes_``, ``predict_proba``, ``C_``, ``search_``, ``solver_``):

- ``mass-mean``: the difference of class means of the standardised features (K classes: each
  class mean minus the grand mean), its scale and bias set by a logistic regression on the
  projection (``probe.heads.families.mass_mean``); ``mass-mean-iid``: the covariance-corrected
  direction, scikit-learn's shrinkage LDA;
- ``sparse:K``: the K neurons ranked best on the training rows, a logistic head on them
  (``probe.heads.families.sparse``);
- ``mlp``: one hidden layer, early stopping on validation, seeded
  (``probe.heads.families.mlp``).

The linear families save as any linear head (coef, intercept, mean, scale); an MLP saves its
two layers (``TENSOR_NAMES`` of its module). A family head carries ``refit()``: a fresh head
with the row's choices fixed, what repeats and the control task fit again.
"""

from __future__ import annotations

from importlib import import_module

from probe.errors import ProbeError

DEFAULT = "logistic"
FAMILIES = {
    "logistic": "probe.heads.estimator",
    "mass-mean": "probe.heads.families.mass_mean",
    "mass-mean-iid": "probe.heads.families.mass_mean",
    "sparse": "probe.heads.families.sparse",
    "mlp": "probe.heads.families.mlp",
}
KNOWN = "logistic, mass-mean, mass-mean-iid, sparse:K (K >= 1) or mlp"


def parse_probe(spec) -> tuple[str, dict]:
    """``"sparse:8"`` -> ("sparse", {"k": 8}); a one-line ``ProbeError`` for anything unknown."""
    text = str(spec).strip().lower()
    family, _, argument = text.partition(":")
    if family == "sparse":
        if not argument.strip().isdigit() or int(argument) < 1:
            raise ProbeError(f"--probe {spec!r}: sparse takes a neuron count, e.g. sparse:8")
        return "sparse", {"k": int(argument)}
    if family in FAMILIES and not argument:
        return family, {}
    raise ProbeError(f"unknown --probe {spec!r}: {KNOWN}")


def probe_name(spec) -> str:
    """The canonical spelling of a probe spec (``" Sparse:08"`` -> ``"sparse:8"``)."""
    family, params = parse_probe(spec)
    return f"sparse:{params['k']}" if family == "sparse" else family


def parse_probes(specs) -> list[str]:
    """``"logistic,mass-mean"`` -> canonical names, in order, each once. ``sparse:1,2,4``
    reads as ``sparse:1,sparse:2,sparse:4`` (a bare count after a sparse probe)."""
    parts = specs.split(",") if isinstance(specs, str) else list(specs)
    names, previous = [], None
    for part in (str(p).strip() for p in parts):
        if not part:
            continue
        if part.isdigit() and previous == "sparse":
            part = f"sparse:{part}"
        name = probe_name(part)
        previous = parse_probe(name)[0]
        if name not in names:
            names.append(name)
    if not names:
        raise ProbeError(f"--probe names no probe: {KNOWN}")
    return names


def make_probe(spec, *, C=None, Cs=None, class_weight=None, cv=5, exact=False, copy_X=True, seed=0):
    """An unfitted classification head of family ``spec`` with the row's head options."""
    from probe.heads.estimator import ProbeClassifier

    family, params = parse_probe(spec)
    if family == "logistic":
        return ProbeClassifier(
            C=C, Cs=Cs, class_weight=class_weight, cv=cv, copy_X=copy_X, exact=exact
        )
    if family == "sparse":
        from probe.heads.families.sparse import SparseProbe

        return SparseProbe(params["k"], C=C, Cs=Cs, class_weight=class_weight, cv=cv, exact=exact)
    if C is not None or Cs is not None:
        raise ProbeError(f"--C applies to logistic and sparse probes, not to --probe {family}")
    if family in ("mass-mean", "mass-mean-iid"):
        from probe.heads.families.mass_mean import MassMeanProbe

        return MassMeanProbe(iid=family == "mass-mean-iid", class_weight=class_weight)
    from probe.heads.families.mlp import MLPProbe

    if class_weight is not None:
        raise ProbeError("--class-weight does not apply to --probe mlp (scikit-learn's MLP)")
    return MLPProbe(random_state=seed)


def family_module(record: dict):
    """The module that saves and loads a head of a non-linear family (its ``probe`` in the
    head record); None for a linear head (saved as coef, intercept, mean, scale)."""
    spec = record.get("probe")
    if spec is None or parse_probe(spec)[0] != "mlp":
        return None
    return import_module(FAMILIES["mlp"])


def refit_spec(classifier):
    """What a refit of a row's head needs: its chosen C (a logistic head), or the family
    head's ``refit`` (a callable making a fresh head with the row's choices fixed)."""
    refit = getattr(classifier, "refit", None)
    return refit if refit is not None else float(classifier.C_)


def new_head(C):
    """A fresh unfitted head from ``refit_spec``'s answer: ``ProbeClassifier(C=C)`` for a
    number, the family's own head for a callable."""
    if callable(C):
        return C()
    from probe.heads.estimator import ProbeClassifier

    return ProbeClassifier(C=C)
