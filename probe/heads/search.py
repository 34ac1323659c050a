"""How a C search decides: its folds, how tightly each C is solved, when a C is screened out,
when the search stops.

Cut from the estimator because these are the rules a search follows, apart from the fitting
it drives: the estimator walks the Cs (on validation data or fold by fold), these say what
each step may skip. Held-out scores are (accuracy, log loss) pairs; the chosen C is the one
``probe.heads.maths.pick_C`` names: the lowest held-out log loss. ``exact`` searches
(``ProbeClassifier(exact=True)``, ``--exact``) skip nothing: every C solved to the final
fit's tolerance, no screen, no early stop.

Where the time goes without them: on held-out hidden states the best C sits in the middle
of the grid and the loss turns up after it. The Cs past it are the least penalised, so the
slowest to solve (UPOS, 17 classes, 18k words: the two Cs after the best took 100-120 of a
head's ~190 passes over X), and their only use is to show that they lose.
"""

from __future__ import annotations

import numpy as np

from probe.heads.inputs import InvalidTrainingData
from probe.heads.maths import accuracy_and_log_loss, pick_C
from probe.heads.solver import CONFIRM_RTOL

# A C is screened out once a check of its unfinished fit finds it clearly beaten by the best
# C so far on the same held-out rows: log loss LOSS_MARGIN (relative) above the best's. The
# choice is by log loss, and a C past the best starts from the previous C's optimum (warm
# start), at or above the best's held-out loss: one that has moved 5% above it is taken to
# have lost. Under k-fold each fold is screened on its own held-out rows, and a C whose mean
# is not clearly beaten too has its screened folds finished (``beaten``): a partial fit's
# scores can err either way. Against an exact search (every C solved to ``tol``, no screen, no
# early stop) on data no rule was tuned on (country, 51 classes; XPOS, 46; SST-2 2k on its
# validation file and by 5-fold CV: 177 heads), the screen and the early stop changed no
# choice; the looser search tolerance changed one (XPOS layer 15: two Cs 0.0011 apart in
# held-out log loss), for 3.4x less CPU than exact: ``benchmarks/results/exact_check.md``.
LOSS_MARGIN = 0.05

# A validation search solves each C coarsely first: Newton decrement COARSE_TOL (objective
# within ~5e-4 of its minimum; the objective's own relative bound COARSE_RTOL), and refines
# to the search's tolerance only the Cs that can still win (``refine_next``). On the country
# of a place (352 classes, SmolLM2 layer 15) coarse fits' validation log losses were within
# 0.15% of the converged ones below the best C, lower (by up to 1.4%) past it, where the
# fit is unfinished; neighbouring Cs of the decade grid differ by 5-15% there. Why: a C that
# only shows that it loses needs no tight fit, and at 352 classes each pass costs n x D x K.
COARSE_TOL = 3e-2
COARSE_RTOL = 2.5e-4
REFINE_MARGIN = 0.01  # relative, plus REFINE_SLACK: small losses (two classes) have room too
REFINE_SLACK = 0.005


def fold_rows(codes: np.ndarray, folds: int, seed: int, groups=None):
    """(train rows, held-out rows) of each fold: the stratified split every k-fold measure
    of a head uses (the C search, its out-of-fold scores). With ``groups`` (equal texts,
    ``--group-col``, the sentence of a word) a group is never on both sides:
    scikit-learn's ``StratifiedGroupKFold``."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    rows = np.zeros((len(codes), 1))
    with warnings.catch_warnings():  # a class rarer than the folds: said by fold_count
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        if groups is None:
            splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
            return list(splitter.split(rows, codes))
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        return list(splitter.split(rows, codes, groups))


def checked_groups(groups, n: int) -> np.ndarray | None:
    """Group ids (n,) when some group holds several rows; None when every row is its own
    (the row-wise folds, as without groups)."""
    if groups is None:
        return None
    groups = np.asarray(groups).reshape(-1)
    if len(groups) != n:
        raise InvalidTrainingData(f"groups has {len(groups)} entries for {n} training rows")
    from probe.data.splits import has_shared_groups

    return groups if has_shared_groups(groups) else None


def fold_count(codes: np.ndarray, folds: int, groups=None) -> int:
    """The folds a k-fold search can have: at most ``folds``, the groups (rows) there are and
    the largest class's groups (a stratified split needs one class in every fold); fewer
    than 2 (no cross-validation) unless two classes have a group for each side.
    A rare class does not cut the others' folds: one with two groups trains in every fold
    (its rows sit in two held-out parts), one with a single group (one row, one sentence)
    is missing from one fold's training rows, and that fold scores C on its other rows
    (the estimator's ``known`` rows). At 352 classes with some of two rows, the old cap at
    the rarest class's count made every search 2-fold."""
    units = np.arange(len(codes)) if groups is None else np.asarray(groups)
    pairs = np.unique(np.column_stack([codes, units]), axis=0)
    per_class = np.bincount(pairs[:, 0])
    if np.count_nonzero(per_class >= 2) < 2:  # classes with a group for each side
        return 0
    return int(min(folds, len(np.unique(units)), per_class.max()))


def refine_next(scores, refined: list[int]) -> int | None:
    """The next C (position) a coarse validation search refines, or None: first the one
    with the lowest coarse log loss, then any whose coarse loss is within ``REFINE_MARGIN``
    (relative, plus ``REFINE_SLACK``) of the best refined one. A coarse fit's loss is close
    to its converged one (within 0.15% on 352 classes) or, past the best C, lower: a C
    that might win is refined, never dropped on a coarse score."""
    losses = [float(score[1]) for score in scores]
    if not refined:
        return int(np.argmin(losses)) if losses else None
    bar = min(losses[at] for at in refined) * (1 + REFINE_MARGIN) + REFINE_SLACK
    left = [at for at, loss in enumerate(losses) if at not in refined and loss <= bar]
    return min(left, key=losses.__getitem__) if left else None


def confirming(scores) -> float | None:
    """The relative tolerance of the next C of a search: looser (``CONFIRM_RTOL``) when the
    held-out log loss rose at the last C, the next one then being there to confirm the turn;
    None (the search's own) otherwise."""
    if len(scores) >= 2 and scores[-1][1] > scores[-2][1]:
        return CONFIRM_RTOL
    return None


def turned_up(scores: np.ndarray) -> bool:
    """Whether a C search can stop: held-out log loss (column 1) rose at each of the last two
    Cs (the larger, less penalised Cs cost the most iterations and only lose further)."""
    if len(scores) < 3:
        return False
    loss = scores[:, 1]
    return bool(loss[-1] > loss[-2] > loss[-3])


def best_index(grid, scores) -> int | None:
    """Position of the C ``pick_C`` would choose among those scored so far; None before any."""
    if len(scores) == 0:
        return None
    return list(grid).index(pick_C(list(grid)[: len(scores)], scores))


def screen_against(best, held_X: np.ndarray, held_codes: np.ndarray):
    """A screen for ``LogisticPath.solve``: a function of the path that says whether its
    unfinished fit is already clearly beaten on (held_X, held_codes) by ``best``, the
    (accuracy, log loss) of an earlier C on the same rows; None when there is no best yet.

    """
    if best is None:
        return None

    def lost(path) -> bool:
        scores = accuracy_and_log_loss(path.logits(held_X), held_codes, path.binary)
        return beaten(best, scores)

    return lost


def beaten(best, scores) -> bool:
    """Whether held-out ``scores`` (accuracy, log loss) clearly lose to ``best``: log loss
    ``LOSS_MARGIN`` (relative) above. Under k-fold the folds are screened one by one; a C
    whose mean over the folds is not beaten as well has its screened folds finished."""
    return bool(scores[1] >= best[1] * (1 + LOSS_MARGIN))
