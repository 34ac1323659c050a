"""Stage 3b, serve: a saved head put to work on new text.

In: a saved head and texts. Out: predictions from the backbone run up to the head's deepest
layer, or an ONNX export of backbone + pooling + head. Cut here because this is the only part
next to the heads that imports torch and transformers; the heads themselves never do.
"""
