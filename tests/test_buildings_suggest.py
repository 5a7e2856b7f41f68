"""Label suggestions ("suggest buildings to label") on hand-made buildings, their CSV template read back as labels,
the CLI, and the prior boundary / one-label notes of the calibration they feed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from core.buildings import Building, apply_calibration, fit_calibration, read_labels_csv
from core.buildings.calibrate import Calibration, prior_calibration, probabilities
from core.buildings.labels import grade_level
from core.buildings.prior import FALLBACK_BOUNDARY, fit_prior, two_gaussians
from core.buildings.suggest import (
    REASON_BOUNDARY,
    REASON_DAMAGED,
    REASON_INTACT,
    TEMPLATE_COLUMNS,
    suggest_labels,
    write_label_template,
)
from core.errors import InputError


def _b(k: int, v: float, **kw: object) -> Building:
    """A building whose change mean, q90 and ring are all ``v`` (so the prior reads ``v`` itself)."""
    return Building(building_id=str(k), source="t", scene_name="s", score=v, lat=37.0 + k * 1e-4, lon=-94.5,
                    stats={"change_mean": v, "change_q90": v, "change_share": 0.0, "change_ring": v},
                    thresholds={"change": 2.0}, **kw)  # type: ignore[arg-type]


def _row(n: int = 30) -> list[Building]:
    """Buildings 0..n-1 at v = 0.1 k + 0.05: under :func:`_cal` the boundary v = 1 lies between 9 and 10."""
    return [_b(k, 0.1 * k + 0.05) for k in range(n)]


def _cal() -> Calibration:
    """A hand-made calibration: P(damaged) = σ(4 (v - 1)) for the buildings of :func:`_b`."""
    return Calibration(features=["change_mean", "change_q90", "change_ring"], center=[0.0] * 3, scale=[1.0] * 3,
                       weights=[4 / 3] * 3, intercept=-4.0, destroyed_cut=None, n_labels=0, n_damaged=0, cv={},
                       labels={}, fitted_at="")


def _two_clusters(lo: float = 0.5, hi: float = 2.5, n_lo: int = 20, n_hi: int = 20) -> list[Building]:
    """Buildings in two clusters of equal spread (± 0.05 j) around ``lo`` and ``hi``."""
    offs = [0.05 * (j - 4.5) for j in range(10)]
    vals = [lo + offs[j % 10] for j in range(n_lo)] + [hi + offs[j % 10] for j in range(n_hi)]
    return [_b(k, v) for k, v in enumerate(vals)]


def test_prior_is_the_crossing_of_a_two_component_mixture():
    # two equal, equally spread clusters: by symmetry the components cross half-way, at 1.5
    fit = fit_prior(np.array([b.score for b in _two_clusters()]))
    assert fit.method == "mixture" and fit.boundary == pytest.approx(1.5, abs=0.01)
    assert fit.damaged_share == pytest.approx(0.5, abs=0.01) and fit.means == pytest.approx((0.5, 2.5), abs=0.01)
    # the same buildings on another model's scale (x2 + 3): the boundary follows, no fixed level is assumed
    fit2 = fit_prior(np.array([2 * (b.score or 0) + 3 for b in _two_clusters()]))
    assert fit2.boundary == pytest.approx(2 * 1.5 + 3, abs=0.02) and fit2.slope == pytest.approx(fit.slope / 2)
    # a rare upper component: the crossing moves towards it (the intact cluster's tail is more likely there)
    rare = fit_prior(np.array([b.score for b in _two_clusters(n_lo=90, n_hi=10)]))
    assert 1.5 < rare.boundary < 2.5 and rare.damaged_share == pytest.approx(0.1, abs=0.01)
    mu, sd, w = two_gaussians(np.array([b.score for b in _two_clusters()]))
    assert list(mu) == sorted(mu) and w.sum() == pytest.approx(1.0)
    # too few buildings, or no spread: the fallback level in calibrated units
    assert fit_prior(np.array([0.1, 2.0, 3.0])).boundary == FALLBACK_BOUNDARY
    assert fit_prior(np.full(50, 0.7)).method == "fallback"


def test_prior_calibration_puts_p_half_at_the_mixture_boundary():
    blds = _two_clusters()
    cal = prior_calibration(blds)
    assert cal.prior is not None and cal.prior["method"] == "mixture"
    p = probabilities(blds, cal)
    assert np.all(p[:20] < 0.05) and np.all(p[20:] > 0.95)
    probe = [_b(100, 1.5)]  # on the boundary: P = 0.5 (the probe's statistics are read with the fitted centre)
    assert probabilities(probe, cal)[0] == pytest.approx(0.5, abs=0.02)


def test_half_near_the_boundary_half_spread_over_both_sides():
    # hand-computed: near the boundary alternately above / below: 10, 9, 11, 8; the rest spread by rank:
    # above (29..12, 18 left) at stratum centres 4 and 13 -> 25, 16; below (7..0) at 2 and 6 -> 5, 1
    sug = suggest_labels(_row(), 8, _cal())
    assert [s.building_id for s in sug] == ["25", "16", "11", "10", "9", "8", "5", "1"]
    reasons = {s.building_id: s.reason for s in sug}
    assert [reasons[k] for k in ("25", "16")] == [REASON_DAMAGED] * 2
    assert [reasons[k] for k in ("11", "10", "9", "8")] == [REASON_BOUNDARY] * 4
    assert [reasons[k] for k in ("5", "1")] == [REASON_INTACT] * 2
    assert all(a.p_damaged >= b.p_damaged for a, b in zip(sug[:-1], sug[1:], strict=True))
    assert suggest_labels(_row(), 8, _cal().to_dict()) == sug  # deterministic; the stored (dict) form works too


def test_without_a_calibration_the_prior_decides():
    blds = _two_clusters()
    sug = suggest_labels(blds, 4)
    near = [s for s in sug if s.reason == REASON_BOUNDARY]
    # the nearest on each side of the 1.5 boundary: the top of the lower cluster and the bottom of the upper one
    assert len(near) == 2 and {round(b.score or 0, 3) for b in blds if b.building_id in {s.building_id
                                                                                          for s in near}} == {
        0.725, 2.275}


def test_labelled_and_unanalysed_buildings_are_not_suggested_and_n_is_capped():
    blds = _row(6)
    blds[2].label = "damaged"
    blds.append(Building(building_id="outside", source="t"))  # not analysed
    sug = suggest_labels(blds, 20, _cal())
    assert sorted(s.building_id for s in sug) == ["0", "1", "3", "4", "5"]
    with pytest.raises(InputError, match="at least 1"):
        suggest_labels(blds, 0)
    assert suggest_labels([Building(building_id="x", source="t")], 5) == []


def test_a_calm_scene_suggests_its_highest_scores_first():
    blds = [_b(k, 0.02 * k) for k in range(40)]  # all below the boundary of _cal
    sug = suggest_labels(blds, 6, _cal())
    ids = [s.building_id for s in sug]
    assert ids[:3] == ["39", "38", "37"]  # the three nearest the boundary
    assert {s.reason for s in sug} == {REASON_BOUNDARY, REASON_INTACT}


def test_rare_damage_suggestions_hold_both_classes():
    # 200 buildings, 10 damaged (v 1.2 .. 3): a random 20 holds one on average, the suggestions (prior) many
    rng = np.random.default_rng(0)
    vals = list(rng.uniform(0.0, 0.9, 190)) + list(np.linspace(1.2, 3.0, 10))
    blds = [_b(k, float(v)) for k, v in enumerate(vals)]
    sug = suggest_labels(blds, 20)
    damaged = [s for s in sug if int(s.building_id) >= 190]
    assert 5 <= len(damaged) <= 15 and len(sug) == 20


def test_suggestions_follow_the_current_calibration():
    blds = _row()
    # labels say damage begins at v = 2.0 (building 20), not at the prior's 1.0
    labels = {str(k): ("damaged" if k >= 20 else "not-damaged") for k in (0, 4, 8, 12, 16, 19, 21, 24, 27, 29)}
    cal = fit_calibration(blds, labels)
    apply_calibration(blds, cal, labels)
    p = probabilities(blds, cal)
    boundary = int(np.argmax(p >= 0.5))
    assert 14 <= boundary <= 22  # moved up from 10
    sug = suggest_labels(blds, 4, cal.to_dict())
    near = sorted(int(s.building_id) for s in sug if s.reason == REASON_BOUNDARY)
    assert len(near) == 2 and all(abs(k - boundary) <= 2 for k in near)
    assert not set(labels) & {s.building_id for s in sug}


def test_template_round_trip_reads_filled_rows_only(tmp_path: Path):
    blds = _row(10) + [_b(99, 2.5)]
    blds[-1].building_id = "-99"  # a spreadsheet would read it as a formula: written quoted, read back bare
    sug = suggest_labels(blds, 5)
    path = write_label_template(sug, blds, tmp_path / "labels.csv")
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    assert tuple(rows[0]) == TEMPLATE_COLUMNS and len(rows) == 6
    assert all(r[1] == "" for r in rows[1:])
    with pytest.raises(InputError, match="fill the damaged"):
        read_labels_csv(path)
    rows[1][1], rows[2][1] = "1", "no"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    # hand-computed order: -99 (the one above the boundary), then 9 and 8 near it, then 5 and 1 spread below
    assert [r[0] for r in rows[1:]] == ["'-99", "9", "8", "5", "1"]
    assert read_labels_csv(path) == {"-99": "damaged", "9": "not-damaged"}
    with pytest.raises(InputError, match="does not exist"):
        write_label_template(sug, blds, tmp_path / "nowhere" / "labels.csv")


def test_one_damaged_label_says_the_fit_leans_on_the_prior():
    blds = _two_clusters()
    labels = {"25": "damaged", **{str(k): "not-damaged" for k in (0, 3, 6, 9, 12)}}
    cal = fit_calibration(blds, labels)
    assert cal.n_damaged == 1 and "only one damaged label" in cal.cv["note"]
    assert cal.cv["f1"] is not None and "only one damaged label" in cal.summary()
    from core.i18n import use

    with use("ko"):  # stored in English, shown in the language in use (pages, CLI, PDF)
        ko = cal.summary()
    assert ko.startswith("레이블 6개로 보정 (피해 이상 1개); 교차 검증 (하나씩 빼기(leave-one-out)) 정밀도 ")
    assert "피해 레이블이 하나뿐입니다" in ko and "only" not in ko
    assert cal.cv["note"].startswith("only one damaged label")  # the record stays English
    apply_calibration(blds, cal, labels)
    assert (grade_level(blds[30].grade) or 0) >= 2 and (grade_level(blds[2].grade) or 0) == 0


def test_cli_suggest_writes_a_template_that_calibrate_reads(tmp_path: Path, capsys):
    from core.buildings.assess import Building as B
    from core.cli.main import main

    blds = _two_clusters()
    (tmp_path / "buildings.json").write_text(json.dumps({"summary": {"grade_scale": "copernicus-ems"},
                                                         "calibration": None,
                                                         "buildings": [b.to_dict() for b in blds]}))
    assert main(["buildings", "suggest", "--analysis", str(tmp_path), "-n", "6"]) == 0
    out = capsys.readouterr().out
    tpl = tmp_path / "label_suggestions.csv"
    assert tpl.is_file() and "6 buildings to label" in out and "near the boundary" in out and str(tpl) in out
    rows = list(csv.DictReader(tpl.read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 6
    for r in rows:
        r["damaged"] = "1" if float(r["p_damaged"]) >= 0.5 else "0"
    with open(tpl, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(TEMPLATE_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    assert main(["buildings", "calibrate", "--analysis", str(tmp_path), "--labels", str(tpl)]) == 0
    assert "calibrated on 6 labels" in capsys.readouterr().out
    rec = json.loads((tmp_path / "buildings.json").read_text())
    assert rec["calibration"]["n_labels"] == 6
    assert sum(1 for b in rec["buildings"] if B.from_dict(b).label) == 6
    assert main(["buildings", "suggest", "--analysis", str(tmp_path), "-n", "0"]) != 0
