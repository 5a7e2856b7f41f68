"""Few-label calibration: from ~10-20 analyst labels, the mapping from building statistics to grades.

The model is a logistic regression for "damaged or worse" over the buildings' map statistics
(:data:`core.buildings.assess.FEATURES`, standardised over all buildings of the analysis), **monotone in the
scores** (every weight ≥ 0: a higher score never lowers the probability of damage) and **regularised towards a
prior** rather than towards zero (a Bayesian logistic with an informative Gaussian prior), so a handful of labels
moves the boundary and the weights only as far as they give evidence for. Classes are weighted to balance.

The prior (:func:`prior_calibration`, what the tool assumes before any label; :mod:`core.buildings.prior`) is read
from the scores of *all* buildings of the analysis, not from the few labels: a two-component mixture over the
average of each building's mean, 90th percentile and context ring on the primary map (the change heatmap when there
is one, else the anomaly heatmap); damage begins where the upper component takes over. Not the finding threshold (a
pixel-level cut) nor a fixed level in calibrated units: on xBD Harvey intact buildings sit at 0.4 on one bundled
model's change map and at 3.7 on another's, and grading at 1.5x the threshold found 22 % of the damage with one and
called every building damaged with the other (``benchmarks/bench_buildings.py``). Labels of one class only cannot
say where damage begins: the prior's boundary is kept and the figures say so.

Grades from the calibrated probability ``p`` of damaged or worse: ``p ≥ 0.5`` damaged (destroyed when the labels
hold destroyed and damaged buildings and the linear score passes the cut between them), ``0.25 ≤ p < 0.5``
possibly damaged, below that no visible damage. A labelled building keeps its label's grade (confidence 1).
Cross-validation (leave-one-out up to 40 labels, else stratified 5-fold) gives precision, recall and F1 of
damaged-or-worse on labels the fit did not see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from core.buildings.assess import FEATURES, SCORE_CALIBRATED, SCORE_PRIOR, Building, automatic_grade
from core.buildings.labels import grade_level, label_damaged, level_grade
from core.buildings.prior import prior_weights
from core.errors import InputError
from core.i18n import N_, _, ngettext

#: Fewest labels a calibration is fitted from.
MIN_LABELS = 4
#: Precision of the Gaussian prior on the weights (standardised units) and on the intercept: how many labels'
#: worth of evidence it takes to move them (the prior does not shrink as labels are added; the labels outweigh it).
L2_WEIGHTS = 1.0
L2_INTERCEPT = 0.2
#: ``p`` at or above which a building is damaged or worse, and at or above which it is possibly damaged.
P_DAMAGED = 0.5
P_POSSIBLY = 0.25
LOO_MAX = 40


@dataclass
class Calibration:
    """A fitted mapping from statistics to P(damaged or worse), with its cross-validated figures."""

    features: list[str]
    center: list[float]
    scale: list[float]
    weights: list[float]
    intercept: float
    destroyed_cut: float | None  #: linear score above which damaged-or-worse is destroyed (None: not fitted)
    n_labels: int
    n_damaged: int
    cv: dict[str, Any]
    labels: dict[str, str]
    fitted_at: str
    analyst: str = ""
    prior: dict[str, Any] | None = None  #: the prior's boundary, slope and method (:class:`~.prior.PriorFit`)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})

    def linear(self, X: np.ndarray) -> np.ndarray:
        """Linear score of raw feature rows (missing values at the centre)."""
        Z = _standardise(X, np.asarray(self.center), np.asarray(self.scale))
        return np.asarray(Z @ np.asarray(self.weights) + self.intercept)

    def summary(self) -> str:
        """One line for people, in the language in use: labels used and the cross-validated figures (the stored
        ``cv`` keeps its English method and note; they are translated here)."""
        cv = self.cv
        figs = ", ".join(f"{_(FIGURE_NAMES[k])} {cv[k]:.2f}" for k in FIGURE_NAMES if cv.get(k) is not None)
        note = _(str(cv.get("note") or ""))
        text = _("calibrated on {n} labels ({damaged} damaged or worse); cross-validated ({method})").format(
            n=self.n_labels, damaged=self.n_damaged, method=_(str(cv.get("method", ""))))
        if not figs:
            return text + " " + _("figures not measurable: {note}").format(note=note)
        return f"{text} {figs}" + (f"; {note}" if note else "")


def feature_matrix(buildings: list[Building], features: list[str] | tuple[str, ...] = FEATURES) -> np.ndarray:
    """Raw feature rows (NaN where a building lacks a statistic)."""
    X = np.full((len(buildings), len(features)), np.nan)
    for i, b in enumerate(buildings):
        for j, f in enumerate(features):
            v = b.stats.get(f)
            if v is not None and math.isfinite(float(v)):
                X[i, j] = float(v)
    return X


def _standardise(X: np.ndarray, c: np.ndarray, s: np.ndarray) -> np.ndarray:
    Z = (X - c) / s
    return np.where(np.isfinite(Z), Z, 0.0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))


def fit_logistic(Z: np.ndarray, y: np.ndarray, w0: np.ndarray, b0: float, *, l2: float | None = None,
                 l2_b: float | None = None, iters: int = 600) -> tuple[np.ndarray, float]:
    """Class-balanced logistic regression with weights ≥ 0, L2-pulled to (``w0``, ``b0``) (projected Nesterov).

    Labels of one class only cannot say where damage begins (only that the labelled buildings are, or are not,
    damaged): the prior is returned unchanged, and the labelled buildings simply keep their labels."""
    if len(y) == 0 or y.min() == y.max():
        return np.maximum(w0, 0.0), float(b0)
    l2 = L2_WEIGHTS if l2 is None else l2
    l2_b = L2_INTERCEPT if l2_b is None else l2_b
    n = len(y)
    pos = y.sum()
    wt = np.ones(n)
    if 0 < pos < n:
        wt = np.where(y > 0, n / (2 * pos), n / (2 * (n - pos)))
    wt = wt / n
    A = np.column_stack([Z, np.ones(n)])
    lip = 0.25 * float(np.linalg.norm(A * np.sqrt(wt)[:, None], 2) ** 2) + max(l2, l2_b) / max(n, 1)
    step = 1.0 / lip
    theta = np.concatenate([np.maximum(w0, 0), [b0]])
    prior = theta.copy()
    reg = np.concatenate([np.full(len(w0), l2), [l2_b]]) / max(n, 1)
    prev, mom = theta.copy(), theta.copy()
    for k in range(1, iters + 1):
        g = A.T @ (wt * (_sigmoid(A @ mom) - y)) + reg * (mom - prior)
        new = mom - step * g
        new[:-1] = np.maximum(new[:-1], 0.0)
        mom = new + (k - 1) / (k + 2) * (new - prev)
        mom[:-1] = np.maximum(mom[:-1], 0.0)
        prev = new
    return prev[:-1].copy(), float(prev[-1])


def _folds(y: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    n = len(y)
    if n <= LOO_MAX:
        return [np.array([i]) for i in range(n)]
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(5)]
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls))
        for k, i in enumerate(idx):
            folds[k % 5].append(int(i))
    return [np.array(sorted(f)) for f in folds if f]


def prf(y: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """Precision, recall and F1 of the positive class (None where undefined)."""
    tp = int(np.sum((pred == 1) & (y == 1)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f = (2 * p * r / (p + r) if p is not None and r is not None and p + r > 0 else
         0.0 if (tp + fn) and p is not None else None)
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn}


@dataclass
class _Design:
    """Features present, their centre and scale over all analysed buildings, and the prior in standardised units."""

    features: list[str]
    center: np.ndarray
    scale: np.ndarray
    w0: np.ndarray
    b0: float
    prior: dict[str, Any] | None


def _design(analysed: list[Building]) -> _Design:
    present = [f for f in FEATURES if any(b.stats.get(f) is not None for b in analysed)]
    X = feature_matrix(analysed, present)
    if not len(X) or not present:
        return _Design(present, np.zeros(len(present)), np.ones(len(present)), np.zeros(len(present)), 0.0, None)
    c = np.nanmedian(X, axis=0)
    q = np.nanpercentile(X, [10, 90], axis=0)
    s = np.where((q[1] - q[0]) > 1e-9, (q[1] - q[0]) / 2.563, 1.0)  # ≈ σ of a normal from its 10-90 range
    w0, b0, fit = prior_weights(present, X, c, s)
    return _Design(present, c, s, w0, b0, fit.to_dict() if fit else None)


def prior_calibration(buildings: list[Building]) -> Calibration:
    """The prior alone (no label): what the tool assumes before an analyst labels (module docstring)."""
    d = _design([b for b in buildings if b.analysed])
    return Calibration(features=d.features, center=[float(v) for v in d.center], scale=[float(v) for v in d.scale],
                       weights=[float(v) for v in d.w0], intercept=d.b0, destroyed_cut=None, n_labels=0,
                       n_damaged=0, cv={"method": "prior", "n": 0, "note": NOTE_PRIOR_ONLY}, labels={},
                       fitted_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), prior=d.prior)


#: Names of the cross-validated figures, and the methods and notes stored (English) in ``Calibration.cv``; marked
#: for translation where :meth:`Calibration.summary` shows them.
FIGURE_NAMES = {"precision": N_("precision"), "recall": N_("recall"), "f1": N_("F1")}
CV_METHODS = (N_("leave-one-out"), N_("stratified 5-fold"), N_("prior"))
NOTE_PRIOR_ONLY = N_("no labels: the prior alone")
NOTE_NO_DAMAGED = N_("no damaged label, so recall and F1 cannot be measured and the prior boundary is kept (label "
                     "some damaged buildings: 'suggest buildings to label' finds likely ones)")
NOTE_ALL_DAMAGED = N_("every label is damaged, so precision cannot be checked against undamaged buildings and the "
                      "prior boundary is kept (label some undamaged buildings)")
NOTE_ONE_DAMAGED = N_("only one damaged label: the fit leans on the prior, and leaving that label out leaves one "
                      "class, so its cross-validated figures are those of the prior boundary (label more, 'suggest "
                      "buildings to label' finds informative ones)")
NOTE_ONE_UNDAMAGED = N_("only one undamaged label: the fit leans on the prior, and leaving that label out leaves one "
                        "class, so its cross-validated figures are those of the prior boundary (label more, 'suggest "
                        "buildings to label' finds informative ones)")


def _cv_note(n: int, n_pos: int) -> str | None:
    """What the figures of a calibration from ``n`` labels, ``n_pos`` damaged, can and cannot say (English, as
    stored; translated when shown)."""
    if n_pos == 0:
        return NOTE_NO_DAMAGED
    if n_pos == n:
        return NOTE_ALL_DAMAGED
    if n_pos == 1 or n_pos == n - 1:
        return NOTE_ONE_DAMAGED if n_pos == 1 else NOTE_ONE_UNDAMAGED
    return None


def fit_calibration(buildings: list[Building], labels: dict[str, str], *, analyst: str = "") -> Calibration:
    """Fit the mapping from the labelled buildings (``building_id -> label``, see
    :func:`core.buildings.labels.parse_label`)."""
    by_id = {b.building_id: b for b in buildings}
    unknown = [k for k in labels if k not in by_id]
    if unknown:
        few = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise InputError(_("{n} labelled building id(s) are not footprints of this analysis: {ids}").format(
            n=len(unknown), ids=few))
    used = {k: v for k, v in labels.items() if by_id[k].analysed}
    skipped = len(labels) - len(used)
    if len(used) < MIN_LABELS:
        raise InputError(_("calibration needs at least {min} labelled buildings inside the imagery; got {n}").format(
            min=MIN_LABELS, n=len(used)) + (" " + _("({n} labelled building(s) are outside it)").format(n=skipped)
                                            if skipped else ""))
    d = _design([b for b in buildings if b.analysed])
    present, c, s, w0, b0 = d.features, d.center, d.scale, d.w0, d.b0
    ids = list(used)
    lab = [by_id[i] for i in ids]
    Z = _standardise(feature_matrix(lab, present), c, s)
    y = np.array([1.0 if label_damaged(used[i]) else 0.0 for i in ids])
    w, b_fit = fit_logistic(Z, y, w0, b0)
    pred = np.zeros(len(y))
    for test in _folds(y):
        train = np.setdiff1d(np.arange(len(y)), test)
        wf, bf = fit_logistic(Z[train], y[train], w0, b0)
        pred[test] = (_sigmoid(Z[test] @ wf + bf) >= P_DAMAGED).astype(float)
    cv: dict[str, Any] = prf(y, pred)
    cv["method"] = "leave-one-out" if len(y) <= LOO_MAX else "stratified 5-fold"
    cv["n"] = int(len(y))
    note = _cv_note(len(y), int(y.sum()))
    if note:
        cv["note"] = note
    lin = Z @ w + b_fit
    # "damaged" is both the binary label and the EMS grade below destroyed: either way it is not destroyed
    levels = np.array([0 if used[i] == "not-damaged" else grade_level(used[i]) or 0 for i in ids])
    cut = None
    if np.any(levels == 3) and np.any(levels == 2):
        cut = float((np.median(lin[levels == 3]) + np.median(lin[levels == 2])) / 2)
    return Calibration(features=present, center=[float(v) for v in c], scale=[float(v) for v in s],
                       weights=[float(v) for v in w], intercept=b_fit, destroyed_cut=cut, n_labels=len(y),
                       n_damaged=int(y.sum()), cv=cv, labels=dict(used),
                       fitted_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), analyst=analyst,
                       prior=d.prior)


def probabilities(buildings: list[Building], cal: Calibration) -> np.ndarray:
    """P(damaged or worse) of each of ``buildings`` under ``cal`` (NaN for buildings not analysed)."""
    p = _sigmoid(cal.linear(feature_matrix(buildings, cal.features)))
    return np.where([b.analysed for b in buildings], p, np.nan)


def relative_grades_note(buildings: list[Building]) -> str | None:
    """What grades made by the prior alone mean, for the places that show their counts; None when no analysed
    building was graded by the prior (calibrated, or graded from the findings' bands).

    The prior ranks the buildings against each other (damage is the upper component of their scores), because
    the calibrated units of a pre/post pair do not carry across acquisitions. The levels cannot tell widespread
    damage from a pair that differs as a whole: on the default model's change map Harvey's intact buildings sit at
    a mean/q90/ring average of about 3 (its damaged ones at 6.4), and the buildings of a co-registered Joplin chip
    inside the tornado's path at 3.1-5.0 (median 3.9), where the prior called 5 of 50 damaged."""
    graded = [b for b in buildings if b.analysed and b.score_kind == SCORE_PRIOR]
    if not graded:
        return None
    flagged = sum((grade_level(b.grade) or 0) >= 1 for b in graded)
    return ngettext(
        "Graded without labels, against each other: {flagged} of the {n} analysed building is damaged or possibly "
        "damaged, the highest-scoring. Where damage is widespread (a tornado's path, an earthquake, a tsunami, a "
        "wildfire) buildings graded no visible damage can be damaged too: label a few before relying on the counts.",
        "Graded without labels, against each other: {flagged} of the {n} analysed buildings are damaged or possibly "
        "damaged, the highest-scoring. Where damage is widespread (a tornado's path, an earthquake, a tsunami, a "
        "wildfire) buildings graded no visible damage can be damaged too: label a few before relying on the counts.",
        len(graded)).format(flagged=flagged, n=len(graded))


def apply_calibration(buildings: list[Building], cal: Calibration | None, labels: dict[str, str] | None = None,
                      scale: str = "copernicus-ems") -> None:
    """Grade every analysed building from ``cal``; labelled ones take their label's grade with confidence 1. Grades
    an analyst set by review (``review_status`` confirmed) are kept.

    Without a calibration (no labels yet) the prior alone grades them (:func:`prior_calibration`, ``score_kind``
    "prior"): damaged where the upper mixture component takes over, possibly damaged from P = 0.25, never
    "destroyed" (that needs grade labels). A fixed cut in calibrated units called every Harvey building damaged on
    the feature-matching model's change map (F1 0.14; the prior: 0.79). Only when the buildings carry no primary
    map statistics does the findings' band grading (:func:`~core.buildings.assess.automatic_grade`) apply."""
    labels = labels if labels is not None else (cal.labels if cal else {})
    analysed = [b for b in buildings if b.analysed]
    kind = SCORE_CALIBRATED
    if cal is None and analysed:  # no labels yet: the prior read from all buildings' scores grades them
        prior = prior_calibration(analysed)
        if prior.prior is not None:
            cal, kind = prior, SCORE_PRIOR
    if cal is not None and analysed:
        lin = cal.linear(feature_matrix(analysed, cal.features))
        p = _sigmoid(lin)
    for i, b in enumerate(analysed):
        if b.review_status == "confirmed" and b.grade != b.auto_grade:
            continue  # the analyst's grade stands
        if cal is None:
            automatic_grade(b, scale)
        else:
            pi = float(p[i])
            b.score, b.score_kind = pi, kind
            if pi >= P_DAMAGED:
                lvl = 3 if cal.destroyed_cut is not None and lin[i] >= cal.destroyed_cut else 2
                b.confidence = pi
            else:
                lvl = 1 if pi >= P_POSSIBLY else 0
                b.confidence = 1.0 - pi
            b.grade = b.auto_grade = level_grade(lvl, scale)
        lab = labels.get(b.building_id)
        b.label = lab
        if lab is not None:
            if lab in ("damaged", "not-damaged"):
                if label_damaged(lab) != ((grade_level(b.grade) or 0) >= 2):
                    b.grade = level_grade(2 if lab == "damaged" else 0, scale)
            else:
                b.grade = level_grade(grade_level(lab) or 0, scale)
            b.confidence = 1.0
