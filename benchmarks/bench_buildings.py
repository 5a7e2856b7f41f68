"""Per-building assessment on real imagery: ranking, few-label calibration, and speed.

    python -m benchmarks.bench_buildings [--model PATH] [--cache DIR] [--draws 10] [--labels 20] [--json out.json]

* **Harvey** (xBD, 12 pre/post pairs): the product's analysis (``AnalysisRun`` with ``--pre`` and the post labels'
  polygons as footprints; their damage grades are never given to the tool) scores every building. Printed: building
  AUROC of ``score`` (automatic), of ``change_score`` and ``post_score``, for "damaged or worse" (xBD major-damage
  or destroyed) against no-damage / minor-damage (un-classified left out); F1 of damaged-or-worse of the automatic
  grades; then ``--draws`` times: ``--labels`` buildings drawn at random and labelled damaged / not damaged from the
  hidden truth, the calibration fitted, every *other* building re-graded, F1 / precision / recall on those, and the
  tool's own cross-validated F1. Median and spread (min-max) over the draws. Then the same with the prior alone
  (no label), and with ``--labels`` buildings picked by ``suggest_labels`` (the "suggest buildings to label"
  feature, deterministic: one figure) at once, and in two rounds (half suggested from the prior, calibrated, the
  other half suggested from that calibration); their labels come from the hidden truth.
  ``--model``: the checkpoint the analysis runs (default: the app's default model, ``patchcore-vgg16.pt``; the fast
  one is ``assets/models/fcdd-resnet18.pt``); ``--cache DIR`` keeps the analysis and reuses it (PatchCore takes
  ~25 min on 2 busy CPU cores, FCDD ResNet-18 ~3 min).
* **Speed**: 3,000 footprints over a 1024² tile (the first Harvey pair's change and anomaly heatmaps) scored and
  graded (``assess_buildings``) and calibrated, best of 3; the Joplin footprints (2,823, GeoJSON) read.

Needs ../shared/data (or BDA_SHARED_DATA); exits with a message when absent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from core.buildings import (
    FootprintSet,
    apply_calibration,
    assess_buildings,
    fit_calibration,
    read_footprints,
)
from core.buildings.calibrate import prior_calibration
from core.buildings.footprints import Footprint
from core.buildings.labels import grade_level
from core.buildings.suggest import suggest_labels
from core.learn.evaluation import auroc

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BDA_SHARED_DATA", REPO.parent / "shared" / "data"))
HARVEY = DATA / "xbd" / "harvey"
JOPLIN_VECTOR = DATA / "geotiff" / "joplin_tornado_xview2deploy" / "vector" / "joplin.geojson"
POSITIVE = {"major-damage", "destroyed"}
NEGATIVE = {"no-damage", "minor-damage"}


def truth() -> dict[str, int]:
    """uid -> 1 (damaged or worse) / 0 of every Harvey post building (un-classified left out)."""
    out = {}
    for p in sorted((HARVEY / "labels").glob("*_post_disaster.json")):
        d = json.loads(p.read_text())
        for f in d["features"]["lng_lat"]:
            st = f["properties"].get("subtype")
            if st in POSITIVE | NEGATIVE:
                out[f["properties"]["uid"]] = int(st in POSITIVE)
    return out


def analyse(model: str | None, cache: Path) -> list[Any]:
    """Run (or reuse) the product's pre/post analysis of the 12 Harvey pairs, footprints from the post labels."""
    from core.analysis.run import AnalysisInput, AnalysisOptions, AnalysisRun
    from core.cli.analyze import load_analysis, write_run_outputs
    from core.detection.detector import Detector

    if (cache / "analysis.json").is_file():
        return load_analysis(cache)[1]
    posts = sorted((HARVEY / "images").glob("*_post_disaster.png"))
    items = [AnalysisInput(path=str(p), name=p.name, pre_path=str(p).replace("_post_", "_pre_")) for p in posts]
    det = Detector.load(model, device="cpu")
    labels = [str(HARVEY / "labels" / f"{p.stem}.json") for p in posts]
    run = AnalysisRun.start(det, items, AnalysisOptions(footprints=tuple(labels), origin="benchmark"),
                            out_dir=cache)
    t0 = time.perf_counter()
    results = run.run()
    print(f"analysed {len(results)} Harvey pairs with buildings in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    write_run_outputs(results, det, cache, None)
    return results


def f1(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum((pred == 1) & (y == 1)))
    fp = float(np.sum((pred == 1) & (y == 0)))
    fn = float(np.sum((pred == 0) & (y == 1)))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return (2 * p * r / (p + r) if p + r else 0.0), p, r


def spread(vals: list[float]) -> str:
    v = [x for x in vals if x == x]
    if not v:
        return "n/a"
    return f"{statistics.median(v):.3f} (min {min(v):.3f}, max {max(v):.3f}, n={len(v)})"


def harvey(model: str | None, cache: Path, draws: int, n_labels: int) -> dict[str, Any]:
    results = analyse(model, cache)
    fps = read_footprints(sorted(str(p) for p in (HARVEY / "labels").glob("*_post_disaster.json")))
    bset = assess_buildings(results, fps)
    gt = truth()
    blds = [b for b in bset.buildings if b.analysed and b.building_id in gt]
    y = np.array([gt[b.building_id] for b in blds])
    out: dict[str, Any] = {"buildings": len(bset.buildings), "analysed": len(blds), "damaged_or_worse": int(y.sum())}
    for key in ("score", "change_score", "post_score"):
        s = [getattr(b, key) if getattr(b, key) is not None else float("nan") for b in blds]
        out[f"auroc_{key}"] = auroc(s, y)
    bands = np.array([int((grade_level(b.grade) or 0) >= 2) for b in blds])  # the findings' bands on q90
    out["bands_f1"] = f1(y, bands)[0]
    apply_calibration(bset.buildings, None)  # what the app shows before any label: the prior
    auto = np.array([int((grade_level(b.grade) or 0) >= 2) for b in blds])
    out["auto_f1"], out["auto_precision"], out["auto_recall"] = f1(y, auto)
    index = {b.building_id: i for i, b in enumerate(blds)}

    def evaluate(pick: list[int], cal_of: Any = None) -> dict[str, Any]:
        """Calibrate on the truth of ``pick`` (the prior alone when empty), F1 etc. on every other building."""
        labels = {blds[i].building_id: ("damaged" if y[i] else "not-damaged") for i in pick}
        work = [type(b).from_dict(b.to_dict()) for b in bset.buildings]
        cal = fit_calibration(work, labels) if labels else prior_calibration(work)
        apply_calibration(work, cal, labels)
        by = {b.building_id: b for b in work}
        rest = np.array([i for i in range(len(blds)) if i not in set(pick)])
        pred = np.array([int((grade_level(by[blds[i].building_id].grade) or 0) >= 2) for i in rest])
        fv, pv, rv = f1(y[rest], pred)
        sc = [by[blds[i].building_id].score for i in rest]
        return {"f1": fv, "precision": pv, "recall": rv, "auroc": auroc(sc, y[rest]),
                "labelled_damaged": int(y[pick].sum()) if pick else 0, "cv_f1": cal.cv.get("f1"),
                "calibration": cal, "work": work}

    def public(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if k not in ("calibration", "work")}

    rng = np.random.default_rng(13)
    out["draws"] = [public(evaluate([int(i) for i in rng.choice(len(blds), size=n_labels, replace=False)]))
                    for _ in range(draws)]
    out["prior"] = public(evaluate([]))
    # suggested: from the prior at once, and in two rounds (the second from the first round's calibration); the
    # prior is the product's (all analysed buildings), the picks are among buildings with a truth to label them by
    prior = prior_calibration(bset.buildings)
    pick = [index[s.building_id] for s in suggest_labels(blds, n_labels, prior)]
    out["suggested"] = public(evaluate(pick))
    half = n_labels // 2
    first = [index[s.building_id] for s in suggest_labels(blds, half, prior)]
    r1 = evaluate(first)
    by1 = {b.building_id: b for b in r1["work"]}
    more = [index[s.building_id] for s in suggest_labels([by1[b.building_id] for b in blds], n_labels - half,
                                                         r1["calibration"])]
    out["suggested_two_rounds"] = public(evaluate(first + more))
    out["prior_fit"] = prior.prior
    return out


def timing(cache: Path) -> dict[str, Any]:
    """3,000 footprints over the first Harvey tile, scored and graded (best of 3), and calibrated."""
    from core.cli.analyze import load_analysis
    from core.geo.georef import pixel_to_lonlat

    results = load_analysis(cache)[1]
    sr = next(r for r in results if r.error is None and r.georef is not None)
    rng = np.random.default_rng(0)
    cols, rows = rng.uniform(10, 1010, 3000), rng.uniform(10, 1010, 3000)
    sizes = rng.uniform(8, 24, 3000)
    geoms = []
    for c, r, s in zip(cols, rows, sizes, strict=True):
        px = np.array([[c, r], [c + s, r], [c + s, r + s], [c, r + s]])
        lon, lat = pixel_to_lonlat(sr.georef, px[:, 0], px[:, 1])  # type: ignore[arg-type]
        geoms.append(shapely.Polygon(np.column_stack([lon, lat])))
    fps = FootprintSet(footprints=[Footprint(str(k), g, "synthetic") for k, g in enumerate(geoms)])
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        bset = assess_buildings([sr], fps)
        best = min(best, time.perf_counter() - t0)
    labels = {str(k): ("damaged" if bset.buildings[k].score and bset.buildings[k].score > 1 else "not-damaged")
              for k in range(20)}
    t0 = time.perf_counter()
    cal = fit_calibration(bset.buildings, labels)
    apply_calibration(bset.buildings, cal, labels)
    t_cal = time.perf_counter() - t0
    out = {"footprints": 3000, "assess_s": best, "calibrate_s": t_cal,
           "analysed": sum(b.analysed for b in bset.buildings)}
    if JOPLIN_VECTOR.is_file():
        t0 = time.perf_counter()
        j = read_footprints([JOPLIN_VECTOR])
        out["joplin_read_s"] = time.perf_counter() - t0
        out["joplin_footprints"] = len(j.footprints)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the bundled model)")
    ap.add_argument("--cache", default=None, help="folder to keep (and reuse) the Harvey analysis in")
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if not (HARVEY / "images").is_dir():
        print(f"real data missing: {HARVEY} (set BDA_SHARED_DATA)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(a.cache) if a.cache else Path(tmp) / "harvey"
        h = harvey(a.model, cache, a.draws, a.labels)
        t = timing(cache)
    print(f"Harvey: {h['analysed']} of {h['buildings']} buildings analysed, {h['damaged_or_worse']} damaged or worse")
    print(f"  building AUROC  score {h['auroc_score']:.3f}  change_score {h['auroc_change_score']:.3f}  "
          f"post_score {h['auroc_post_score']:.3f}")
    print(f"  findings' bands on q90 (the automatic grades before the prior): F1 {h['bands_f1']:.3f}")
    print(f"  automatic grades (no labels: the prior): F1 {h['auto_f1']:.3f} "
          f"(precision {h['auto_precision']:.3f}, recall "
          f"{h['auto_recall']:.3f})")
    d = h["draws"]
    print(f"  calibrated on {a.labels} random labels, {len(d)} draws (F1 on the other buildings):")
    for k in ("f1", "precision", "recall", "auroc", "cv_f1"):
        print(f"    {k:10s} {spread([float(r[k]) if r[k] is not None else float('nan') for r in d])}")
    print(f"    damaged labels per draw: {[r['labelled_damaged'] for r in d]}")
    pf = h.get("prior_fit") or {}
    if pf:
        print(f"  prior ({pf.get('method')}): boundary {pf.get('boundary', float('nan')):.3f} on the primary map's "
              f"mean/q90/ring average, slope {pf.get('slope', float('nan')):.2f}, upper component "
              f"{(pf.get('damaged_share') or 0):.1%} of the buildings")
    for key, text in (("prior", "prior alone (no label)"),
                      ("suggested", f"{a.labels} suggested labels (suggest_labels from the prior)"),
                      ("suggested_two_rounds", f"{a.labels // 2} suggested, calibrated, {a.labels - a.labels // 2} "
                                               "more suggested")):
        r = h[key]
        cv = "" if r["cv_f1"] is None else f", cross-validated F1 {r['cv_f1']:.3f}"
        print(f"  {text}: F1 {r['f1']:.3f} (precision {r['precision']:.3f}, recall {r['recall']:.3f}); "
              f"{r['labelled_damaged']} damaged among the labels{cv}")
    print(f"Speed: {t['footprints']} footprints over a 1024² tile scored and graded in {t['assess_s']:.2f} s "
          f"(best of 3; {t['analysed']} analysed); calibration + re-grade {t['calibrate_s']:.2f} s")
    if "joplin_read_s" in t:
        print(f"  Joplin footprints: {t['joplin_footprints']} read in {t['joplin_read_s']:.2f} s")
    if a.json:
        Path(a.json).write_text(json.dumps({"harvey": h, "timing": t}, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
