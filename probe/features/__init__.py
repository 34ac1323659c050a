"""Stage 1, features: a frozen backbone run once, its pooled hidden states stored.

In: a model spec and texts. Out: an HDF5 feature cache (every requested layer, ``last`` and
``mean`` pools, fp16) in the store. Holds model resolution and fingerprints, tokenisation,
length-sorted batching, pooling, the forward pass and the store. Cut here because this is
the only stage that runs the expensive backbone; everything downstream reads its cache.
"""
