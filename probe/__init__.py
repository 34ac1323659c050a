"""probe: frozen language-model features + linear heads, cached once, probed in seconds.

The public API is imported lazily, so ``import probe`` stays cheap and fitting heads on a
cache never imports torch's modeling code.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "extract": "probe.extract",
    "embed_texts": "probe.extract",
    "resolve_layers": "probe.extract",
    "open_cache": "probe.store",
    "load_cache": "probe.store",
    "list_caches": "probe.store",
    "read_dataset": "probe.data",
    "load_backbone": "probe.models",
    "ProbeError": "probe.errors",
    "ProbeClassifier": "probe.heads",
    "save_head": "probe.heads",
    "load_head": "probe.heads",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'probe' has no attribute {name!r}")
