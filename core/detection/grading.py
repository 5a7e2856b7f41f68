"""Damage grading scales as data, and the rule that turns a region's calibrated score into a grade.

A region is graded by a robust statistic of its calibrated scores (the 90th percentile: a few hot pixels do not
make a building "destroyed", and a large region's cold edges do not dilute it) relative to the finding threshold
``t``. Default bands (multiples of ``t``) for a three-level scale: possibly damaged ``[t, 1.5t)``, damaged
``[1.5t, 2.5t)``, destroyed ``>= 2.5t``. Below ``t`` a region is "no visible damage"; without scores (nodata) it
is "not analysed". The automatic grade is a screening label for an analyst to confirm, not a verified assessment.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import InputError
from core.i18n import N_, _

#: Percentile of a region's scores used for grading and confidence.
REGION_PERCENTILE = 90.0


@dataclass(frozen=True)
class Grade:
    """One level of a damage scale."""

    key: str  #: machine value stored in findings and exports
    label: str  #: human label shown in the UI and reports
    description: str
    color: str  #: hex colour used consistently on maps and in reports


@dataclass(frozen=True)
class GradeScale:
    """A damage-grading scale: its damage levels (least to most severe) with the default band edges.

    ``bands[i]`` is the lower edge of ``damage[i]`` as a multiple of the threshold (``bands[0]`` is 1.0).
    """

    key: str
    name: str
    damage: tuple[Grade, ...]
    bands: tuple[float, ...]
    no_damage: Grade
    not_analysed: Grade
    reference: str

    def grades(self) -> tuple[Grade, ...]:
        """All grades, most severe first, then no damage and not analysed (legend order)."""
        return tuple(reversed(self.damage)) + (self.no_damage, self.not_analysed)

    def get(self, key: str) -> Grade:
        """The grade with machine value ``key``."""
        for g in self.grades():
            if g.key == key:
                return g
        raise InputError(_("grade {key!r} is not part of the {name} scale; use one of {value}").format(
                             key=key, name=self.name, value=', '.join(g.key for g in self.grades())))


COPERNICUS_EMS = GradeScale(
    key="copernicus-ems",
    name=N_("Copernicus EMS damage grading"),
    damage=(
        Grade("possibly-damaged", N_("Possibly damaged"),
              "Uncertain interpretation: the structure may be damaged; confirmation needed", "#f6d55c"),
        Grade("damaged", N_("Damaged"),
              "Visible damage (partial collapse, roof damage, debris around) but the structure still stands",
              "#ed8936"),
        Grade("destroyed", N_("Destroyed"),
              "Total or near-total collapse; the structure is no longer usable", "#c53030"),
    ),
    bands=(1.0, 1.5, 2.5),
    no_damage=Grade("no-visible-damage", N_("No visible damage"), "No damage visible in the imagery", "#38a169"),
    not_analysed=Grade("not-analysed", N_("Not analysed"),
                       "Not assessed: no data, cloud, or outside the analysed area", "#a0aec0"),
    reference="Copernicus Emergency Management Service, rapid mapping damage grading",
)

XVIEW2_JDS = GradeScale(
    key="xview2-jds",
    name=N_("xView2 Joint Damage Scale"),
    damage=(
        Grade("minor-damage", N_("Minor damage"),
              "Building partially burnt, water surrounding, roof elements missing, or visible cracks", "#f6d55c"),
        Grade("major-damage", N_("Major damage"),
              "Partial wall or roof collapse, encroaching volume of water or mud", "#ed8936"),
        Grade("destroyed", N_("Destroyed"), "Scorched, completely collapsed, partially or completely covered with "
              "water or mud, or no longer present", "#c53030"),
    ),
    bands=(1.0, 1.5, 2.5),
    no_damage=Grade("no-damage", N_("No damage"), "Undisturbed; no sign of water, structural damage or burn marks",
                    "#38a169"),
    not_analysed=Grade("un-classified", N_("Un-classified"), "Not assessed (no data or not visible)", "#a0aec0"),
    reference="Gupta et al., xBD: A Dataset for Assessing Building Damage from Satellite Imagery (2019)",
)

UNOSAT = GradeScale(
    key="unosat",
    name=N_("UNOSAT damage assessment"),
    damage=(
        Grade("possible-damage", N_("Possible damage"), "Damage possible but not confirmable at this resolution",
              "#f6d55c"),
        Grade("moderate-damage", N_("Moderate damage"), "Visible damage, structure largely intact", "#ed8936"),
        Grade("severe-damage", N_("Severe damage"), "Partial collapse; substantial structural damage", "#dd6b20"),
        Grade("destroyed", N_("Destroyed"), "Complete or near-complete collapse", "#c53030"),
    ),
    bands=(1.0, 1.5, 2.0, 2.5),
    no_damage=Grade("no-visible-damage", N_("No visible damage"), "No damage visible in the imagery", "#38a169"),
    not_analysed=Grade("not-analysed", N_("Not analysed"), "Not assessed", "#a0aec0"),
    reference="UNITAR/UNOSAT damage assessment classes",
)

SCALES: dict[str, GradeScale] = {s.key: s for s in (COPERNICUS_EMS, XVIEW2_JDS, UNOSAT)}
DEFAULT_SCALE = COPERNICUS_EMS.key


def get_scale(key: str) -> GradeScale:
    """Look up a grading scale by key (``copernicus-ems`` default, ``xview2-jds``, ``unosat``)."""
    try:
        return SCALES[key]
    except KeyError:
        raise InputError(_("unknown grading scale {key!r}; choose one of {value}").format(
                             key=key, value=', '.join(SCALES))) from None


def check_threshold(threshold: float) -> float:
    """A finding threshold must be a finite positive number of calibrated units."""
    t = float(threshold)
    if not (math.isfinite(t) and t > 0):
        raise InputError(_("threshold {threshold!r} must be a positive number in calibrated units (1 = the model's "
                           "99th percentile of normal pixels; the model's default is usually 1-3)").format(
                             threshold=threshold))
    return t


def band_edges(threshold: float, scale: GradeScale, bands: Sequence[float] | None = None) -> tuple[float, ...]:
    """Absolute lower score edges of each damage grade of ``scale`` for ``threshold``."""
    t = check_threshold(threshold)
    mult = tuple(scale.bands if bands is None else bands)
    if len(mult) != len(scale.damage):
        raise InputError(_("{name} has {damage} damage grades; got {mult} band edges").format(
                             name=scale.name, damage=len(scale.damage), mult=len(mult)))
    if any(not (b > 0) for b in mult) or any(b2 <= b1 for b1, b2 in itertools.pairwise(mult)):
        raise InputError(_("band edges must be positive and increasing multiples of the threshold, got {mult}").format(
                             mult=mult))
    return tuple(t * m for m in mult)


def region_statistic(values: np.ndarray) -> float:
    """Robust score of a region: the 90th percentile of its finite calibrated scores (NaN if none)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return float(np.percentile(v, REGION_PERCENTILE)) if v.size else float("nan")


def grade_for(score: float, threshold: float, scale: str | GradeScale = DEFAULT_SCALE,
              bands: Sequence[float] | None = None) -> str:
    """Grade key for a region statistic ``score`` (calibrated) against ``threshold`` on ``scale``."""
    sc = get_scale(scale) if isinstance(scale, str) else scale
    edges = band_edges(threshold, sc, bands)
    if not math.isfinite(score):
        return sc.not_analysed.key
    key = sc.no_damage.key
    for grade, lo in zip(sc.damage, edges, strict=True):
        if score >= lo:
            key = grade.key
    return key


#: Steepness of the confidence logistic: confidence = 1 / (1 + exp(-k · (stat - t) / t)).
CONFIDENCE_K = 4.0


def confidence_for(score: float, threshold: float) -> float:
    """Confidence in [0, 1] that a region is anomalous: a logistic of its relative margin over the threshold.

    ``1 / (1 + exp(-4 · (s - t) / t))`` with ``s`` the region statistic: 0.5 at the threshold, 0.88 at 1.5t,
    ~1 from 2.5t. It measures distance from the decision boundary in calibrated units, not a probability of damage.
    """
    t = check_threshold(threshold)
    if not math.isfinite(score):
        return 0.0
    z = CONFIDENCE_K * (score - t) / t
    return float(1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0))))
