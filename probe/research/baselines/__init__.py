"""Baseline rows of a sweep: how much of a probe's accuracy the backbone explains.

A sentence-level control task cannot answer that (held-out sentences never repeat, so
hashed labels are at chance by construction). Three baselines can, each on the same splits,
scored on the same held-out split (test, else validation) with the same bootstrap CIs:

- **majority**: the most frequent training label for every example (``scoring``);
- **bag of words**: TF-IDF of word unigrams and bigrams (scikit-learn ``TfidfVectorizer``,
  sublinear tf, fitted on the training texts of each fold) and scikit-learn
  ``LogisticRegression``, C chosen as the probe's is (same grid; highest validation
  accuracy, ties to the lower log loss; stratified k-fold on train without --val) (``bow``);
- **random weights**: the same architecture, freshly initialised under a fixed seed
  (``probe.features.models.random_weights``), extracted by the same pipeline under its own key and
  swept layer by layer with the same head and C search (Conneau et al. 2018; Hewitt & Liang
  2019, section 5) (``random_weights``).

Each probe row then gets ``selectivity_vs_random`` (its accuracy minus the random-weights
row's at the same layer and pool) and ``selectivity_vs_bow``, each with a paired-bootstrap
95% CI over the held-out examples (the same resamples as every other CI) (``selectivity``).
Cut into one module per baseline because each has its own machinery (a text model with its
own C search; a second extraction and sweep) and none needs the others'; ``inputs`` reads
what they need beyond the probe's rows, ``report`` writes them beside the sweep's table.
"""
