"""Which buildings an analyst should label next, so that 10-20 labels hold both classes and place the boundary.

With a few per cent of buildings damaged (typical of a disaster scene), 20 buildings drawn at random often hold
no damaged building at all, and the calibration can then only keep its prior (:mod:`core.buildings.calibrate`).
:func:`suggest_labels` ranks the unlabelled analysed buildings by their probability of damage under the current
calibration (the prior before any label) and picks

- half of them **near the decision boundary** (``p`` closest to 0.5, alternately just above and just below it):
  the labels that move the boundary most, and
- the other half **across the score range**: evenly spaced ranks among the buildings on the damaged side and among
  those on the undamaged side (half each while the damaged side has enough), so the labels span the range, hold
  likely damaged buildings too, and fix the slope.

The pick is deterministic (ties by input order): the same buildings and calibration give the same suggestions.
:func:`write_label_template` writes them as a CSV for ``python -m core buildings calibrate --labels``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.buildings.assess import Building
from core.buildings.calibrate import P_DAMAGED, Calibration, prior_calibration, probabilities
from core.errors import InputError
from core.i18n import N_, _

#: Why a building is suggested (English, stable: translated where shown).
REASON_BOUNDARY = N_("near the boundary")
REASON_DAMAGED = N_("likely damaged")
REASON_INTACT = N_("likely not damaged")
#: Columns of the label template (``damaged`` left empty for the analyst: 1 / 0, yes / no, or a grade).
TEMPLATE_COLUMNS = ("building_id", "damaged", "p_damaged", "score", "reason", "lat", "lon", "mgrs", "scene_name")
DEFAULT_N = 20


@dataclass(frozen=True)
class Suggestion:
    """One building to label: its id, probability of damage under the current calibration, score and why."""

    building_id: str
    p_damaged: float
    score: float | None
    reason: str


def _spaced(items: list[int], k: int) -> list[int]:
    """``k`` evenly spaced members of ``items`` (stratum centres), in order."""
    if k <= 0 or not items:
        return []
    if k >= len(items):
        return list(items)
    return [items[int((j + 0.5) * len(items) / k)] for j in range(k)]


def suggest_labels(buildings: list[Building], n: int = DEFAULT_N,
                   calibration: Calibration | dict[str, Any] | None = None) -> list[Suggestion]:
    """Up to ``n`` unlabelled analysed buildings to label next (module docstring), most likely damaged first.

    ``calibration``: the analysis' current calibration (its dict form as stored works too); None: the prior."""
    if n < 1:
        raise InputError(_("the number of buildings to suggest must be at least 1 (got {n})").format(n=n))
    if isinstance(calibration, dict):
        calibration = Calibration.from_dict(calibration)
    cal = calibration if calibration is not None else prior_calibration(buildings)
    cand = [b for b in buildings if b.analysed and not b.label]
    if not cand:
        return []
    p = probabilities(cand, cal)
    order = [int(i) for i in np.argsort(-p, kind="stable")]  # most likely damaged first
    above = [i for i in order if p[i] >= P_DAMAGED][::-1]  # closest to the boundary first
    below = [i for i in order if p[i] < P_DAMAGED]  # closest to the boundary first
    n = min(n, len(cand))
    reason: dict[int, str] = {}
    n_near = (n + 1) // 2
    a = b = 0
    while len(reason) < n_near:
        take_above = (len(reason) % 2 == 0 and a < len(above)) or b >= len(below)
        if take_above:
            reason[above[a]] = REASON_BOUNDARY
            a += 1
        else:
            reason[below[b]] = REASON_BOUNDARY
            b += 1
    rest_above = [i for i in order if p[i] >= P_DAMAGED and i not in reason]
    rest_below = [i for i in order if p[i] < P_DAMAGED and i not in reason]
    m = n - len(reason)
    k_hi = min(len(rest_above), max(m // 2, m - len(rest_below)))  # half each, or what one side lacks
    for i in _spaced(rest_above, k_hi):
        reason[i] = REASON_DAMAGED
    for i in _spaced(rest_below, m - k_hi):
        reason[i] = REASON_INTACT
    return [Suggestion(cand[i].building_id, float(p[i]), cand[i].score, reason[i]) for i in order if i in reason]


def label_template_csv(suggestions: list[Suggestion], buildings: list[Building]) -> str:
    """The suggestions as the text of a CSV template for ``buildings calibrate --labels`` (:data:`TEMPLATE_COLUMNS`;
    ``damaged`` left to fill in; rows left empty are not labels)."""
    from core.report.tables import neutralise_cell

    by_id = {b.building_id: b for b in buildings}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(TEMPLATE_COLUMNS)
    for s in suggestions:
        b = by_id.get(s.building_id)
        w.writerow([neutralise_cell(s.building_id), "", f"{s.p_damaged:.4f}",
                    "" if s.score is None else f"{s.score:.4f}", s.reason,
                    "" if b is None or b.lat is None else f"{b.lat:.7f}",
                    "" if b is None or b.lon is None else f"{b.lon:.7f}",
                    "" if b is None else neutralise_cell(b.mgrs or ""),
                    "" if b is None else neutralise_cell(b.scene_name or "")])
    return buf.getvalue()


def write_label_template(suggestions: list[Suggestion], buildings: list[Building], path: str | Path) -> Path:
    """:func:`label_template_csv` written to ``path`` (atomically)."""
    from core.report._io import atomic_output

    out = Path(path)
    if not out.parent.is_dir():
        raise InputError(_("cannot write the label template {path}: folder {folder} does not exist; create it or "
                           "give another --out").format(path=out, folder=out.parent))
    with atomic_output(out) as tmp:
        tmp.write_text(label_template_csv(suggestions, buildings), encoding="utf-8", newline="")
    return out
