"""Whether a head's direction matters: change it inside the running backbone and see who moves.

``probe intervene`` adds a saved head's direction to the residual stream at the head's layer
and token positions (or projects it out, LEACE erasure) and measures how heads fitted on clean
rows at each later layer, and a causal LM's own next-token choice between verbalizers, read
the changed rows: always beside the same change along random directions of the same norm.

- ``directions``: the head's direction, its norm, random directions, the erasers (numpy)
- ``hooks``: the forward hooks that make the change, and one pass over the rows (torch)
- ``dose``: the dose-response itself, random baselines and bootstrap intervals
- ``writing``: the table, the figure and the files a run leaves
"""
