"""The row store: one row per (text, extraction setting), immutable shards, views per dataset.

In: pooled features from the pass, keyed by text and setting. Out: rows found again (resume,
reuse across datasets), dataset views as HDF5 files, ``probe cache`` listings and gc. Cut here
because crash safety, locking and content addressing are one concern, shared by every unit of
row the pass writes, and nothing in here runs a model.
"""
