"""Per-building grades from scores: the prior read from all buildings' scores (what the tool assumes before any
label, and what it says about grades made that way) and the few-label calibration with its cross-validated
figures. Footprints, statistics, the workspace record, CLI and report: tests/test_buildings.py."""

from __future__ import annotations

import numpy as np
import pytest

from core.buildings import Building, apply_calibration, fit_calibration, relative_grades_note
from core.buildings.labels import grade_level
from core.buildings.prior import fit_prior
from core.errors import InputError


def _synthetic(n: int = 40) -> list[Building]:
    """Buildings whose change q90 is 0.1 .. 4.0; damaged (truth) from 1.2 up."""
    out = []
    for k in range(n):
        s = 0.1 * (k + 1)
        out.append(Building(building_id=str(k), source="t", scene_name="s",
                            stats={"change_mean": s * 0.8, "change_q90": s, "change_share": min(1.0, s / 4),
                                   "change_ring": 0.3},
                            thresholds={"change": 2.0}, score=s))
    return out


def test_calibration_moves_the_boundary_to_the_labels_and_regrades():
    blds = _synthetic()
    apply_calibration(blds, None)
    # no labels: the prior grades, damaged from the mixture boundary of u = mean(change mean, q90, ring) up
    u = np.array([(b.stats["change_mean"] + b.stats["change_q90"] + b.stats["change_ring"]) / 3 for b in blds])
    cut = fit_prior(u).boundary
    assert u.min() < cut < u.max() and all(b.score_kind == "prior" for b in blds)
    assert [(grade_level(b.grade) or 0) >= 2 for b in blds] == list(u >= cut)
    assert not any(b.grade == "destroyed" for b in blds)  # destroyed needs grade labels
    labels = {str(k): ("damaged" if 0.1 * (k + 1) >= 1.2 else "not-damaged") for k in range(0, 40, 3)}
    cal = fit_calibration(blds, labels)
    assert cal.n_labels == 14 and cal.n_damaged == 10
    assert all(w >= 0 for w in cal.weights)  # monotone in the scores
    assert cal.cv["method"] == "leave-one-out"
    assert cal.cv["f1"] is not None and cal.cv["f1"] >= 0.9
    apply_calibration(blds, cal)
    pred = {b.building_id: (grade_level(b.grade) or 0) >= 2 for b in blds}
    wrong = [k for k in range(40) if pred[str(k)] != (0.1 * (k + 1) >= 1.2)]
    assert len(wrong) <= 2, wrong  # the boundary moved from 3.0 to about 1.2
    assert all(b.score_kind == "calibrated" and 0 <= (b.score or 0) <= 1 for b in blds)
    for k, lab in labels.items():  # labelled buildings take their label
        b = blds[int(k)]
        assert b.label == lab and b.confidence == 1.0
        assert ((grade_level(b.grade) or 0) >= 2) == (lab == "damaged")


def test_calibration_with_grades_fits_destroyed_and_refuses_too_few():
    blds = _synthetic()
    labels = {"0": "no-visible-damage", "5": "no-visible-damage", "10": "no-visible-damage", "25": "damaged",
              "28": "damaged", "36": "destroyed", "39": "destroyed"}
    cal = fit_calibration(blds, labels)
    assert cal.destroyed_cut is not None
    apply_calibration(blds, cal)
    assert blds[38].grade == "destroyed" and blds[1].grade == "no-visible-damage"
    with pytest.raises(InputError, match="at least 4"):
        fit_calibration(blds, {"1": "damaged", "2": "not-damaged"})
    with pytest.raises(InputError, match="not footprints"):
        fit_calibration(blds, {"x1": "damaged", "2": "not-damaged", "3": "damaged", "4": "damaged"})


def test_hand_computed_f1_of_the_cross_validation():
    from core.buildings.calibrate import prf

    y = np.array([1, 1, 0, 0, 1])
    pred = np.array([1, 0, 1, 0, 1])
    r = prf(y, pred)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)


def test_labels_of_one_class_keep_the_prior_boundary():
    # two clusters of 20 (change statistics all v: 0.5 ± 0.225 and 2.5 ± 0.225): the prior mixture's components
    # cross half-way, at v = 1.5, by symmetry
    offs = [0.05 * (j - 4.5) for j in range(10)]
    vals = [0.5 + offs[j % 10] for j in range(20)] + [2.5 + offs[j % 10] for j in range(20)]
    blds = [Building(building_id=str(k), source="t", scene_name="s", score=v,
                     stats={"change_mean": v, "change_q90": v, "change_share": 0.0, "change_ring": v},
                     thresholds={"change": 2.0}) for k, v in enumerate(vals)]
    labels = {str(k): "not-damaged" for k in range(5)}
    cal = fit_calibration(blds, labels)
    assert "boundary is kept" in cal.cv["note"] and cal.cv["f1"] is None
    assert cal.prior is not None and cal.prior["boundary"] == pytest.approx(1.5, abs=0.01)
    apply_calibration(blds, cal)
    damaged = sorted(int(b.building_id) for b in blds if (grade_level(b.grade) or 0) >= 2)
    assert damaged == list(range(20, 40))


def test_the_prior_calls_nothing_damaged_where_the_model_finds_nothing_unusual():
    """An analysis of intact buildings (every score below the model's 99th percentile of normal pixels, 1.0): the
    mixture still finds an upper component, but the prior's boundary stays at 1.0, so no building is graded
    damaged. (The four Joplin pre-event chips had 9 of 77 intact buildings graded damaged before this floor.)"""
    from core.buildings.prior import MIN_BOUNDARY

    blds = _synthetic()
    for b in blds:  # the same spread of scores, scaled below 1.0
        b.stats = {k: v * 0.2 if k != "change_share" else v for k, v in b.stats.items()}
    apply_calibration(blds, None)
    u = np.array([(b.stats["change_mean"] + b.stats["change_q90"] + b.stats["change_ring"]) / 3 for b in blds])
    assert u.max() < MIN_BOUNDARY and fit_prior(u).boundary == MIN_BOUNDARY
    assert fit_prior(u).method == "mixture"
    assert all((grade_level(b.grade) or 0) < 2 for b in blds)


def test_grades_without_labels_say_they_are_relative():
    """Grades the prior made are relative (the mixture calls the highest-scoring group damaged, whatever their level):
    a scene where every building changed about equally, far above the threshold (a tornado's path), still gets a
    few "damaged" and a majority "no visible damage". The note says so, with the counts, until labels calibrate."""
    rng = np.random.default_rng(0)
    vals = 3.0 + 0.5 * rng.standard_normal(50)  # all far above 1 (the model's 99th percentile of normal pixels)
    blds = [Building(building_id=str(k), source="t", scene_name="s", score=float(v),
                     stats={"change_mean": v, "change_q90": v + 0.3, "change_share": 1.0, "change_ring": v},
                     thresholds={"change": 1.4}) for k, v in enumerate(vals)]
    assert relative_grades_note(blds) is None  # not graded yet
    apply_calibration(blds, None)
    flagged = sum((grade_level(b.grade) or 0) >= 1 for b in blds)
    assert 0 < flagged < 25  # the split is relative: most of these equally changed buildings are "no visible damage"
    note = relative_grades_note(blds)
    assert note is not None and f"{flagged} of the 50 analysed buildings" in note and "widespread" in note
    labels = {str(k): ("damaged" if vals[k] > 3.0 else "not-damaged") for k in range(0, 50, 5)}
    apply_calibration(blds, fit_calibration(blds, labels))
    assert relative_grades_note(blds) is None  # calibrated on labels: no longer the prior's relative split


def test_labels_read_in_the_current_language() -> None:
    from core.buildings.labels import label_text
    from core.i18n import use

    with use("ko"):
        assert [label_text(v) for v in ("damaged", "not-damaged", "destroyed", None, "odd")] == \
            ["피해", "피해 없음", "파괴", "", "odd"]
    with use("en"):
        assert label_text("possibly-damaged") == "Possibly damaged" and label_text("not-damaged") == "not damaged"
