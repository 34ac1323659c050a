"""Stage 3a, research: the probing protocol around the heads.

In: labelled rows (train/val/test). Out: layer-by-layer sweeps with selection on validation,
bootstrap intervals, control tasks, MDL codelengths and learning curves, as tables, JSON and
figures. Cut here, as scikit-learn keeps ``model_selection`` apart from ``linear_model``: the
head does not know how it is compared, and a new measure lands here without touching it.
"""
