"""probe: frozen language-model features + linear heads, cached once, probed in seconds.

The public API is imported lazily, so ``import probe`` stays cheap and fitting heads on a
cache never imports torch's modeling code.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "read_dataset": "probe.data.readers",
    "extract": "probe.features.commands",
    "embed_texts": "probe.features.forward",
    "resolve_layers": "probe.features.layers",
    "open_cache": "probe.features.store.caches",
    "load_cache": "probe.features.store.caches",
    "list_caches": "probe.features.store.caches",
    "load_backbone": "probe.features.models.loading",
    "ProbeError": "probe.errors",
    "ProbeClassifier": "probe.heads.estimator",
    "ProbeRegressor": "probe.heads.tasks.regression",
    "ProbeMultiLabel": "probe.heads.tasks.multilabel",
    "save_head": "probe.heads.persistence",
    "load_head": "probe.heads.persistence",
    "prepare": "probe.heads.rows",
    "fit_one": "probe.research.sweep",
    "sweep": "probe.research.sweep",
    "load_predictor": "probe.serve.predict",
    "finetune": "probe.finetune.training",
    "to_frame": "probe.frames",
    "sweep_frame": "probe.frames",
    "curve_frame": "probe.frames",
    "compare_frame": "probe.frames",
    "export_view": "probe.features.store.export",
}

__all__ = ["__version__", *_EXPORTS]


_RENAMED = {"sweep": "run_sweep"}  # public name -> name in its module


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), _RENAMED.get(name, name))
    raise AttributeError(f"module 'probe' has no attribute {name!r}")
