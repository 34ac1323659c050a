"""Stage 3, fine-tuning: the end-to-end opponent of the probe.

In: a model and labelled splits. Out: a fine-tuned model with its head, metrics, a
forgetting check, and the probe-vs-fine-tuning comparison. The last N blocks (plus the
final norm) train with AdamW groups (body LR below head LR); the frozen prefix is cached.
Cut here because it is the only stage that trains the backbone.
"""
