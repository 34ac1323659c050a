"""What differs from one model family to the next: resolution, loading, blocks, tokenizers.

In: a model spec (alias, folder, ``.gguf``, hub id). Out: a ``Backbone`` (model, tokenizer,
fingerprint) whose transformer blocks are found, so the pass above can stop at the deepest
requested layer. Cut here because every new family touches only this room: the pass, the
store and the heads never learn a model type's name.
"""
