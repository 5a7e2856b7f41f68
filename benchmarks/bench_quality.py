"""One quality table: every bundled model and two naive baselines, measured by the same code on real imagery.

    python -m benchmarks.bench_quality [--models assets/models/*.pt] [--skip-aider] [--skip-change] [--json out.json]

Per model (rows) it prints:

* **Harvey post-only**: xBD Harvey building AUROC (damaged = minor/major/destroyed vs no-damage; a building's score is
  the mean heatmap inside its polygon) of the post image's own heatmap, pooled over the 12 scenes, and within-scene
  (each building relative to its image: (mean − image median) / (90th percentile − median)).
* **Harvey change**: the same for the product's pre/post change heatmap (``analyze_pair``: co-registration,
  tiles, calibration).
* **Joplin chips**: pre vs post patch AUROC of the co-registered Joplin chips (held out of every bundled model):
  128-px blocks of the heatmap the product computes for each whole chip, a block's score its mean heat
  (``evaluate_images(..., patch=128)``). **crops**: the protocol used until 2026-12-07, each 128-px block cropped and
  scored alone by the model's image score (its zero-padded edges weigh on models with a wide receptive field).
* **AIDER fire vs flood**: the model's own recipe (its architecture, trunk source and steps from its checkpoint)
  refitted on AIDER flood photos (every 5th held out), held-out flood vs fire image AUROC.
* **s / 1024²**: seconds to analyse one 1024² post image on this machine (``core.detection.pipeline.analyze_scene``).

Baselines, through the same scoring: *blurred pixel difference* (change: RGB distance of the Gaussian-blurred
co-registered pre and post, σ 8 px) and *texture* (post-only: local standard deviation of grey levels, 9 px window,
blurred σ 8 px; image score its mean). Needs ../shared/data (or BDA_SHARED_DATA); exits with a message when absent.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rasterio

from core.change.scene import analyze_pair, coregister
from core.detection.calibration import Calibration
from core.detection.detector import Detector
from core.detection.pipeline import analyze_scene
from core.imagery.nodata import black_nodata, read_valid
from core.imagery.reader import open_scene
from core.learn.evaluation import auroc, building_scores, evaluate_images, patch_means, valid_blocks
from core.learn.training import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]

DATA = Path(os.environ.get("BDA_SHARED_DATA", REPO.parent / "shared" / "data"))
HARVEY = DATA / "xbd" / "harvey" / "images"
CHIPS = DATA / "geotiff" / "joplin_tornado_xview2deploy" / "chips_aligned"
#: Side of the Joplin chips' scored blocks (px).
PATCH = 128


class Buildings:
    """Building scores of one method over all scenes: pooled and within-scene AUROC."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, int, float]] = []  # (score, damaged, score relative to its scene)

    def add(self, heat: np.ndarray, valid: np.ndarray, buildings: list[dict[str, Any]]) -> None:
        h = np.where(valid, heat, np.nan).astype(np.float32)
        if not np.isfinite(h).any():
            return
        med, q90 = float(np.nanmedian(h)), float(np.nanpercentile(h, 90))
        self.rows += [(s, y, (s - med) / max(q90 - med, 1e-6)) for s, y, _ in building_scores(h, buildings)]

    def figures(self) -> tuple[float, float]:
        """(pooled AUROC, within-scene AUROC)."""
        s, y, r = (list(c) for c in zip(*self.rows, strict=True)) if self.rows else ([], [], [])
        return auroc(s, y), auroc(r, y)


def texture(rgb: np.ndarray) -> np.ndarray:
    """The post-only baseline: local standard deviation of grey levels (9 px), blurred σ 8 px."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    m = cv2.blur(g, (9, 9))
    sd = np.sqrt(np.maximum(cv2.blur(g * g, (9, 9)) - m * m, 0))
    return cv2.GaussianBlur(sd, (0, 0), 8)


def pixel_difference(post: np.ndarray, pre: np.ndarray, sigma: float = 8.0) -> np.ndarray:
    """The change baseline: RGB distance of the Gaussian-blurred images."""
    a = cv2.GaussianBlur(post.astype(np.float32), (0, 0), sigma)
    b = cv2.GaussianBlur(pre.astype(np.float32), (0, 0), sigma)
    return np.sqrt(((a - b) ** 2).sum(axis=2))


class TextureDetector:
    """The texture baseline behind the Detector interface that ``core.learn.evaluation`` uses."""

    name, arch, input_size = "texture baseline", "texture", 224
    calibration = Calibration(pixel_q50=0.0, pixel_q99=1.0, image_q50=0.0, image_q99=1.0, threshold=1.0,
                              image_threshold=1.0)

    def predict(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Texture maps and their means."""
        maps = np.stack([texture(t) for t in tiles])
        return maps, maps.reshape(len(maps), -1).mean(1)


def _chips() -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(label, rgb, valid) of every Joplin chip: 0 pre, 1 post; exact-black nodata is not valid."""
    for y, part in ((0, "pre"), (1, "post")):
        for path in sorted((CHIPS / part).glob("*.tif")):
            scene = open_scene(path)
            try:
                rgb, valid = read_valid(scene)
            finally:
                scene.close()
            yield y, rgb, valid


def joplin_crops(det: Detector | TextureDetector) -> float:
    """The Joplin chips' patch AUROC of the old protocol: every 128-px block cropped and scored alone."""
    scores, labels = [], []
    for y, rgb, valid in _chips():
        for rows, cols in valid_blocks(valid, PATCH):
            scores.append(float(det.predict(rgb[None, rows, cols])[1][0]))
            labels.append(y)
    return auroc(scores, labels)


def joplin_texture() -> float:
    """The texture baseline's Joplin chips patch AUROC in context (the whole chip's map, block means)."""
    scores, labels = [], []
    for y, rgb, valid in _chips():
        got = patch_means(texture(rgb), valid, PATCH)
        scores += got
        labels += [y] * len(got)
    return auroc(scores, labels)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1).astype(np.float32)


def harvey(det: Detector | None, with_change: bool) -> dict[str, Any]:
    """Post-only and change building AUROC on xBD Harvey (``det`` None: the two baselines); seconds per image."""
    post_b, change_b, secs = Buildings(), Buildings(), []
    posts = sorted(HARVEY.glob("*_post_disaster.png"))
    with tempfile.TemporaryDirectory() as tmp:
        for post_path in posts:
            pre_path = post_path.with_name(post_path.name.replace("_post_", "_pre_"))
            post, pre = open_scene(post_path), open_scene(pre_path)
            try:
                buildings = post.meta.get("xbd", {}).get("buildings", [])
                prgb, pvalid = post.read()
                pvalid = pvalid & ~black_nodata(prgb)
                if det is None:
                    qrgb, qvalid, _ = coregister(post, pre)
                    post_b.add(texture(prgb), pvalid, buildings)
                    change_b.add(pixel_difference(prgb, qrgb), pvalid & qvalid & ~black_nodata(qrgb), buildings)
                    continue
                t = time.perf_counter()
                if with_change:  # writes the post image's own heatmap too
                    res = analyze_pair(post, pre_path, det, Path(tmp))
                    qrgb, qvalid, _ = coregister(post, pre)
                    change_b.add(_read(res.change_path), pvalid & qvalid & ~black_nodata(qrgb), buildings)
                else:
                    res = analyze_scene(post, det, Path(tmp))
                    secs.append(time.perf_counter() - t)
                post_b.add(_read(res.heatmap_path), pvalid, buildings)
            finally:
                post.close()
                pre.close()
    out = dict(zip(("post_only", "post_only_within"), post_b.figures(), strict=True))
    if change_b.rows:
        out |= dict(zip(("change", "change_within"), change_b.figures(), strict=True))
    if det is not None:
        if not secs:  # one post-only analysis of the first image, timed on its own
            post = open_scene(posts[0])
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                analyze_scene(post, det, Path(tmp))
                secs.append(time.perf_counter() - t)
            post.close()
        out["seconds_per_1024"] = float(np.median(secs))
    return out


def aider_split(holdout_every: int = 5) -> tuple[list[str], list[str], list[str], list[str]]:
    """(train flood, train fire, held-out flood, held-out fire) as sorted path lists."""
    flood = sorted(str(p) for p in (DATA / "aider/flooded_areas").glob("*.jpg"))
    fire = sorted(str(p) for p in (DATA / "aider/fire").glob("*.jpg"))

    def split(xs: list[str]) -> tuple[list[str], list[str]]:
        return ([x for i, x in enumerate(xs) if i % holdout_every],
                [x for i, x in enumerate(xs) if not i % holdout_every])

    (ftr, fte), (xtr, xte) = split(flood), split(fire)
    return ftr, xtr, fte, xte


def aider(det: Detector | TextureDetector, steps: int) -> dict[str, Any]:
    """The model's recipe refitted with AIDER flood as normal (fire as outlier exposure where the method uses it)."""
    ftr, xtr, fte, xte = aider_split()
    if isinstance(det, TextureDetector):
        r = evaluate_images(det, fte, xte)
        return {"auroc": r["auroc"], "refit": "none (a fixed statistic)"}
    cfg = (det.meta.get("training") or {}).get("config") or {}
    keep = {k: cfg[k] for k in ("arch", "pretrained", "freeze", "optimizer", "lr", "confetti", "region_share",
                                "bank_max") if k in cfg}
    keep.setdefault("arch", det.arch)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        tc = TrainConfig(**keep, normal=ftr, anomalies=xtr, out=f"{tmp}/aider.pt", input_size=128,
                         epochs=max(1, steps // 50), steps_per_epoch=min(50, steps), batch_size=16, seed=0,
                         name="aider-flood-vs-fire")
        train(tc)
        secs = time.perf_counter() - t
        r = evaluate_images(Detector.load(f"{tmp}/aider.pt"), fte, xte)
    return {"auroc": r["auroc"], "refit": f"{keep['arch']}, {tc.epochs * tc.steps_per_epoch} steps or one bank fit",
            "refit_seconds": round(secs, 1), "n_flood": r["n_normal"], "n_fire": r["n_anomalous"]}


def main() -> int:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=None, help="checkpoints (default: every assets/models/*.pt)")
    ap.add_argument("--skip-aider", action="store_true")
    ap.add_argument("--skip-change", action="store_true")
    ap.add_argument("--aider-steps", type=int, default=300)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    a = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: real data not found at {DATA} (set BDA_SHARED_DATA)")
        return 0
    paths = a.models if a.models is not None else sorted(str(p) for p in (REPO / "assets/models").glob("*.pt"))
    rows: dict[str, dict[str, Any]] = {}
    baseline = TextureDetector()
    rows["baselines (texture / pixel difference)"] = harvey(None, not a.skip_change) | {
        "joplin": joplin_texture(), "joplin_crops": joplin_crops(baseline)}
    if not a.skip_aider:
        rows["baselines (texture / pixel difference)"]["aider"] = aider(baseline, 0)["auroc"]
    print("baselines done", flush=True)
    for p in paths:
        det = Detector.load(p)
        row: dict[str, Any] = {"arch": det.arch, "sha256": det.sha256[:12]}
        row |= harvey(det, not a.skip_change)
        row["joplin"] = evaluate_images(det, [str(CHIPS / "pre")], [str(CHIPS / "post")], patch=PATCH)["auroc"]
        row["joplin_crops"] = joplin_crops(det)
        if not a.skip_aider:
            r = aider(det, a.aider_steps)
            row["aider"], row["aider_refit"] = r["auroc"], r
        rows[f"{det.name} ({Path(p).name})"] = row
        print(f"{Path(p).name} done: {json.dumps({k: v for k, v in row.items() if k != 'aider_refit'}, default=str)}",
              flush=True)
    cols = [("post_only", "Harvey post-only"), ("post_only_within", "within"), ("change", "Harvey change"),
            ("change_within", "within"), ("joplin", "Joplin chips"), ("joplin_crops", "crops"),
            ("aider", "AIDER fire/flood"),
            ("seconds_per_1024", "s / 1024²")]
    print("\n| model | " + " | ".join(c[1] for c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, row in rows.items():
        cells = [f"{row[k]:.3f}" if k in row and k != "seconds_per_1024" else
                 (f"{row[k]:.1f}" if k in row else "–") for k, _ in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
