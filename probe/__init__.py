"""probe: frozen language-model features + linear heads, cached once, probed in seconds."""

__version__ = "0.1.0"
