"""Stage 0, data: what the user hands over, read into texts and labels.

In: CSV/TSV/JSONL/Parquet files, a ``datasets`` folder or hub id. Out: ``TextDataset``
(texts, optional labels, ids, split column) and train/val/test splits. Cut here because
every later stage (features, heads, fine-tuning) reads data the same way and none of it
needs torch.
"""
