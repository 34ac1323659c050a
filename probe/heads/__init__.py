"""Stage 2, heads: linear classifiers trained on cached features, in seconds.

In: feature caches plus labels (the cache's own or a new label set). Out: fitted heads
(saved as safetensors + JSON), metrics, layer-wise sweeps, predictions. The solver
(``solver``) lives apart from the estimator that calls it (``estimator``), and save/load
(``persistence``) apart from both, as in scikit-learn's ``linear_model``. Cut here because
nothing in this stage imports the backbone's modeling code, except ``predict`` on new text.
"""
