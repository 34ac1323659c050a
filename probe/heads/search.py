"""How a C search decides: its folds, how tightly each C is solved, when a C is screened out,
when the search stops.

Cut from the estimator because these are the rules a search follows, apart from the fitting
it drives: the estimator walks the Cs (on validation data or fold by fold), these say what
each step may skip. Held-out scores are (accuracy, log loss) pairs; the chosen C is the one
``probe.heads.maths.pick_C`` names, highest accuracy first.

Where the time goes without them: on held-out hidden states the best C sits in the middle
of the grid and the loss turns up after it. The Cs past it are the least penalised, so the
slowest to solve (UPOS, 17 classes, 18k words: the two Cs after the best took 100-120 of a
head's ~190 passes over X), and their only use is to show that they lose.
"""

from __future__ import annotations

import math

import numpy as np

from probe.heads.maths import accuracy_and_log_loss, pick_C
from probe.heads.solver import CONFIRM_RTOL

# A C is screened out once a check of its unfinished fit finds it clearly beaten by the best
# C so far on the same held-out rows: log loss LOSS_MARGIN (relative) above the best's *and*
# ACCURACY_MARGIN of the rows (at least FEWEST_EXAMPLES) fewer right. Accuracy decides the
# choice, and it wanders by a few examples while a fit converges (UPOS, 2,127 validation
# words: by up to 7 after the third iteration), so the margin is several examples wide: with
# one example, one UPOS layer of 31 chose another C. Under k-fold each fold is screened on its
# own held-out rows, and a C whose mean is not clearly beaten too has its screened folds
# finished (``beaten``): without that, partial folds flipped 2 of 16 choices on synthetic
# 17-class data. With these rules every head chose the same C as without screening (UPOS: 31
# heads on validation, 11 by 5-fold CV; six-class: 62 by CV; SST-2 2k: 62 by CV; synthetic
# 17-class: 16 by CV), for up to half the CPU
LOSS_MARGIN = 0.05
ACCURACY_MARGIN = 0.004
FEWEST_EXAMPLES = 5


def fold_rows(codes: np.ndarray, folds: int, seed: int):
    """(train rows, held-out rows) of each fold: the stratified split every k-fold measure
    of a head uses (the C search, its out-of-fold scores)."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return splitter.split(np.zeros((len(codes), 1)), codes)


def confirming(scores) -> float | None:
    """The relative tolerance of the next C of a search: looser (``CONFIRM_RTOL``) when the
    held-out log loss rose at the last C, the next one then being there to confirm the turn;
    None (the search's own) otherwise."""
    if len(scores) >= 2 and scores[-1][1] > scores[-2][1]:
        return CONFIRM_RTOL
    return None


def turned_up(scores: np.ndarray) -> bool:
    """Whether a C search can stop: held-out log loss (column 1) rose at each of the last two
    Cs, and the best accuracy (column 0) was reached before them."""
    if len(scores) < 3:
        return False
    loss, accuracy = scores[:, 1], scores[:, 0]
    rising = loss[-1] > loss[-2] > loss[-3]
    return bool(rising and accuracy[-2:].max() <= accuracy[:-2].max())


def best_index(grid, scores) -> int | None:
    """Position of the C ``pick_C`` would choose among those scored so far; None before any."""
    if len(scores) == 0:
        return None
    return list(grid).index(pick_C(list(grid)[: len(scores)], scores))


def screen_against(best, held_X: np.ndarray, held_codes: np.ndarray):
    """A screen for ``LogisticPath.solve``: a function of the path that says whether its
    unfinished fit is already clearly beaten on (held_X, held_codes) by ``best``, the
    (accuracy, log loss) of an earlier C on the same rows; None when there is no best yet.

    A C whose accuracy is still near the best's is solved to the end, however its loss looks.
    """
    if best is None:
        return None

    def lost(path) -> bool:
        scores = accuracy_and_log_loss(path.logits(held_X), held_codes, path.binary)
        return beaten(best, scores, len(held_codes))

    return lost


def beaten(best, scores, n: int) -> bool:
    """Whether held-out ``scores`` (accuracy, log loss) on ``n`` rows clearly lose to ``best``:
    log loss ``LOSS_MARGIN`` above and accuracy ``ACCURACY_MARGIN`` of the rows (at least
    ``FEWEST_EXAMPLES``) below. Under k-fold the folds are screened one by one; a C whose mean
    over the folds is not beaten as well has its screened folds finished."""
    best_accuracy, best_loss = best
    accuracy, loss = scores
    margin = max(FEWEST_EXAMPLES, math.ceil(ACCURACY_MARGIN * n)) / n
    return bool(
        loss >= best_loss * (1 + LOSS_MARGIN) and accuracy <= best_accuracy - margin + 1e-12
    )
