"""Pre/post change detection on the xBD Harvey pairs: does the change heatmap find the damaged buildings?

    python -m benchmarks.bench_change --model assets/models/fcdd-resnet18.pt [--json out.json] [--no-diagnostics]

Building-level AUROC (damaged = minor, major, destroyed vs no-damage; un-classified skipped; a building's score is
the mean of a heatmap inside its post polygon) and tile-level AUROC (256 px cells holding buildings: any damaged
vs none) for, all in the same run and with the same scoring:

* **change** - the product path: ``core.change.scene.analyze_pair`` (co-registration, tiles, calibration from the
  checkpoint or, when it has none, from each pre image) and its ``<post>_change.tif``;
* **naive** - the blurred RGB difference of post and the same co-registered pre (sigma 8 px: the figure quoted in
  the project brief), plus sigma 12 / 24 px to show how much spatial support alone does;
* **post-only** - the single-image FCDD heatmap of the post image (``<post>_heatmap.tif``).

Diagnostics (``--no-diagnostics`` skips them): per trunk stage, the stage mixes, the FCDD-map increase
(post - pre >= 0), raw pixels put through the same scene-relative processing, and the change score without the
per-pair fallback calibration (= the ranking any checkpoint calibration gives). Needs ../shared/data (or
BDA_SHARED_DATA); exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import rasterio

from core.change.features import ChangeScorer, fill_invalid, level_specs
from core.change.scene import analyze_pair, coregister
from core.detection.detector import Detector
from core.imagery.nodata import black_nodata
from core.imagery.reader import open_scene
from core.learn.evaluation import auroc, building_scores

REPO = Path(__file__).resolve().parents[1]

DATA = Path(os.environ.get("BDA_SHARED_DATA", REPO.parent / "shared" / "data"))
HARVEY = DATA / "xbd" / "harvey" / "images"
TILE = 256


def naive_difference(post: np.ndarray, pre: np.ndarray, sigma: float) -> np.ndarray:
    """Euclidean RGB distance of the Gaussian-blurred images (the baseline)."""
    a = cv2.GaussianBlur(post.astype(np.float32), (0, 0), sigma)
    b = cv2.GaussianBlur(pre.astype(np.float32), (0, 0), sigma)
    return np.sqrt(((a - b) ** 2).sum(axis=2))


class Scores:
    """Building and tile scores of one method, pooled over all pairs."""

    def __init__(self) -> None:
        self.b: list[tuple[float, int]] = []
        self.t: list[tuple[float, int]] = []

    def add(self, heat: np.ndarray, valid: np.ndarray, buildings: list[dict]) -> None:
        h = np.where(valid, heat, np.nan).astype(np.float32)
        bs = building_scores(h, buildings)
        self.b += [(s, y) for s, y, _ in bs]
        for r in range(0, h.shape[0] - TILE + 1, TILE):
            for c in range(0, h.shape[1] - TILE + 1, TILE):
                inside = [x for x in bs if r <= x[2][1] < r + TILE and c <= x[2][0] < c + TILE]
                cell = h[r:r + TILE, c:c + TILE]
                if inside and np.isfinite(cell).any():
                    self.t.append((float(np.nanmean(cell)), int(any(x[1] for x in inside))))

    def figures(self) -> dict[str, float]:
        b, t = np.array(self.b), np.array(self.t)
        return {"building_auroc": auroc(b[:, 0], b[:, 1]) if len(b) else float("nan"),
                "tile_auroc": auroc(t[:, 0], t[:, 1]) if len(t) else float("nan"),
                "n_buildings": len(b), "n_damaged": int(b[:, 1].sum()) if len(b) else 0, "n_tiles": len(t)}


def diagnostics(det: Detector, diag: ChangeScorer, specs: list[dict], prgb: np.ndarray, pvalid: np.ndarray,
                qrgb: np.ndarray, qvalid: np.ndarray, buildings: list[dict], add) -> None:
    """Whole-image variants of the change score (one tile per image) that explain the headline figure."""
    hw = prgb.shape[:2]
    both = pvalid & qvalid
    a_f, b_f = fill_invalid(prgb, pvalid, qrgb, qvalid)
    diag.fit_scene(b_f[None], both[None])
    fa, fb = diag.level_features(a_f[None]), diag.level_features(b_f[None])
    d = [np.sqrt(np.mean((x - y) ** 2, axis=1) / v)[0] for x, y, v in zip(fa, fb, diag.scales, strict=True)]
    for i, s in enumerate(specs):
        add(f"stage {i} (stride {s['stride']:g}, {s['channels']} ch)", diag.upsample(d[i][None], hw)[0], both,
            buildings)
    early = [i for i, s in enumerate(specs) if s["stride"] < det.rf.j]
    add("early stages, whole image, fixed calibration", diag.upsample(np.mean([d[i] for i in early], 0)[None],
                                                                     hw)[0], both, buildings)
    raw = [np.sqrt(np.mean((x - y) ** 2, axis=1))[0] for x, y in zip(fa, fb, strict=True)]
    add("early stages, not scene-relative (V_l = 1)", diag.upsample(np.mean([raw[i] for i in early], 0)[None],
                                                                    hw)[0], both, buildings)
    nofill = ChangeScorer(det, None, levels=early)  # nodata (black borders) left as they are
    nofill.fit_scene(qrgb[None])
    add("early stages, nodata not filled", nofill.upsample(nofill.raw(prgb[None], qrgb[None]), hw)[0], both,
        buildings)
    per_pair = ChangeScorer(det, None, levels=early)
    per_pair.fit_scene(b_f[None], both[None])
    j = TILE * 2
    per_pair.calibrate_on(np.stack([b_f[r:r + j, c:c + j] for r in range(0, hw[0] - j + 1, j)
                                    for c in range(0, hw[1] - j + 1, j)]))
    add("early stages, per-pair calibration on the pre image", per_pair.heat(a_f[None], b_f[None])[0], both,
        buildings)
    add("all stages", diag.upsample(np.mean(d, 0)[None], hw)[0], both, buildings)
    maps, _ = det.predict(np.stack([a_f, b_f]))
    cal = det.calibration
    add("FCDD map increase (post - pre >= 0)", np.clip(cal.pixel(maps[0]) - cal.pixel(maps[1]), 0, None), both,
        buildings)
    cell = int(det.rf.j)
    gh, gw = hw[0] // cell, hw[1] // cell
    pool = [cv2.resize(x.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA) for x in (a_f, b_f)]
    ok = cv2.resize(both.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA) >= 0.5
    var = max(float(pool[1][ok].var(axis=0).mean()), 1e-8) if ok.any() else 1.0
    dpx = np.sqrt(((pool[0] - pool[1]) ** 2).mean(axis=2) / var)
    add("raw pixels, same scene-relative processing", diag.upsample(dpx[None], hw)[0], both, buildings)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1).astype(np.float32)


def main() -> int:
    """Print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint to measure (e.g. assets/models/patchcore-vgg16.pt)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--no-diagnostics", action="store_true", help="only the three headline methods")
    ap.add_argument("--shift", default="auto", choices=["auto", "apply", "off"],
                    help="residual shift policy (see core.change.coreg)")
    a = ap.parse_args()
    posts = sorted(HARVEY.glob("*_post_disaster.png"))
    if not posts:
        print(f"skipped: xBD Harvey pairs not found under {HARVEY} (set BDA_SHARED_DATA)")
        return 0
    det = Detector.load(a.model, device=a.device)
    specs = level_specs(det)
    methods: dict[str, Scores] = {}

    def add(name: str, heat: np.ndarray, valid: np.ndarray, buildings: list[dict]) -> None:
        methods.setdefault(name, Scores()).add(heat, valid, buildings)

    shifts, t0 = [], time.perf_counter()
    diag = ChangeScorer(det, None, levels=[s["index"] for s in specs]) if not a.no_diagnostics else None
    with tempfile.TemporaryDirectory() as tmp:
        for k, post_path in enumerate(posts, 1):
            pre_path = post_path.with_name(post_path.name.replace("_post_", "_pre_"))
            post = open_scene(post_path)
            pre = open_scene(pre_path)
            try:
                buildings = post.meta.get("xbd", {}).get("buildings", [])
                res = analyze_pair(post, pre_path, det, tmp, residual_shift_policy=a.shift)
                shifts.append((post.name, res.meta["coregistration"]))
                prgb, pvalid = post.read()
                pvalid = pvalid & ~black_nodata(prgb)
                qrgb, qvalid, _ = coregister(post, pre, residual=a.shift)
                qvalid = qvalid & ~black_nodata(qrgb)
                both = pvalid & qvalid
                change = _read(res.change_path)
                add("change (product)", change, both, buildings)
                add("post-only FCDD heatmap", _read(res.heatmap_path), pvalid, buildings)
                for s in (8, 12, 24):
                    add(f"naive RGB difference, sigma {s}", naive_difference(prgb, qrgb, s), both, buildings)
                if diag is not None:
                    diagnostics(det, diag, specs, prgb, pvalid, qrgb, qvalid, buildings, add)
            finally:
                post.close()
                pre.close()
            co = res.meta["coregistration"]
            print(f"[{k}/{len(posts)}] {post_path.name}: {len(buildings)} buildings, residual shift "
                  f"{co['shift_px']} px ({'applied' if co['shift_applied'] else 'not applied'}), "
                  f"mean change {res.meta['change']['image_score']:.2f}", flush=True)
    out = {"model": det.info(), "pairs": len(posts), "seconds": round(time.perf_counter() - t0, 1),
           "residual_shift": a.shift, "methods": {k: v.figures() for k, v in methods.items()},
           "coregistration": {n: {k: c[k] for k in ("shift_px", "shift_applied", "shift_note") if k in c}
                              for n, c in shifts}}
    print(f"\nxBD Harvey, {len(posts)} pairs, model {det.name} ({det.arch}), {out['seconds']} s")
    print(f"{'method':52s} {'building AUROC':>14s} {'tile AUROC':>10s}")
    for name, f in out["methods"].items():
        print(f"{name:52s} {f['building_auroc']:14.3f} {f['tile_auroc']:10.3f}")
    f = next(iter(out["methods"].values()))
    print(f"({f['n_damaged']} damaged / {f['n_buildings'] - f['n_damaged']} undamaged buildings, "
          f"{f['n_tiles']} tiles of {TILE} px)")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
