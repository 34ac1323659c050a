"""Stage 1, features: a frozen backbone run once, its pooled hidden states stored.

In: a model spec and texts. Out: an HDF5 feature view (every requested layer, ``last`` and
``mean`` pools, fp16) backed by the row store. Three rooms: ``models`` (what differs per model
family), ``store`` (rows, shards, views) and, at this level, the pass itself (layer specs,
length-sorted batching, pooling, device policy, the local and the Ray engine, and ``commands``
above both: ``probe.extract``). Cut here because this is the only stage that runs the expensive
backbone; everything downstream reads its rows.
"""
