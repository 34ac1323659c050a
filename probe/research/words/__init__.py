"""Research on words: the probing protocol when a row is a word (or an edge), not a text.

In: CoNLL-U or token-JSONL files, or word views (``.h5``). Out: word-level labelled rows for
the sweep (split by sentence), Hewitt & Liang's control task on word types, and what a word
sweep adds to the sentence-level table. Cut here because the sweep itself is unit-agnostic:
everything that knows a row is a word (sentences as the unit of independence, word types,
head-dependent edges) lives in this one room, and the sentence-level protocol never imports it.
"""
