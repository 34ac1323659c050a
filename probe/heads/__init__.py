"""Stage 2, heads: the linear classifier trained on cached features, in seconds.

In: feature matrices and labels (a view's own labels or a new label set). Out: a fitted head
(``ProbeClassifier``), its metrics, and the head saved as safetensors + JSON. The solver lives
apart from the estimator that calls it, the C search's rules (``search``) and persistence
apart from both, as in scikit-learn's ``linear_model``; the formulas they share (folded
weights, the C rule, constant columns) are ``maths``, written once. Cut here because a head
is the one thing research, serving and fine-tuning all use; nothing in this package imports
torch or transformers (``rows`` imports the pass lazily, only when a data file must be
extracted first).
"""
