"""Pre/post change detection: pair the images, co-register them, score change with the detector, find damage.

Damage assessment compares what stood before with what stands now; a one-class detector on the post image alone
also lights up whatever was always unusual. The pieces:

* :mod:`core.change.pairing` - :func:`pair_inputs` / :func:`pair_report` / :func:`check_pair`: which pre image
  goes with which post image (footprint overlap in any CRS, else file names).
* :mod:`core.change.coreg` - :func:`coregister` / :class:`PreOnGrid`: the pre image on the post grid
  (reprojection, residual phase-correlation shift), window by window.
* :mod:`core.change.features` - :class:`ChangeScorer` / :func:`fit_change_calibration`: the change score.
* :func:`analyze_pair` (here): the usual single-image analysis of the post image plus a change heatmap
  ``<post>_change.tif`` written tile by tile (each tile reads only the matching pre window) and findings
  extracted from the change heatmap.

Why this formulation - measured on the 12 xBD Harvey pairs with ``benchmarks/bench_change.py`` (building-level
AUROC, damaged = minor/major/destroyed vs no-damage, 39 vs 395 buildings, mean score inside each post building
polygon, all methods on the same co-registered pre image) for the bundled default model (fcdd-resnet18, 128 px,
300 steps from scratch on Joplin + Harvey pre tiles, confetti + AIDER outliers) and "p2" (same recipe plus
region-scale synthetic anomalies):

==========================================================  =======  =====
candidate                                                    default  p2
==========================================================  =======  =====
post-only FCDD heatmap                                       0.300    0.707
(a) increase of the calibrated FCDD map, post - pre >= 0     0.306    0.617
(b) final trunk stage (stride 8), scene-relative distance    0.820    0.887
(b) all trunk stages                                         0.961    0.974
(b) early trunk (stem + layer1), scene-relative: **chosen**  0.987    0.988
    - same, recalibrated per pair on the pre image           0.926    0.960
    - same, not scene-relative (V_l = 1)                     0.865    -
    - same, nodata not filled                                0.925    -
naive blurred RGB difference, sigma 8 px (the brief's 0.85)  0.859    0.859
naive blurred RGB difference, sigma 24 px                    0.931    0.931
raw pixels through the same scene-relative processing        0.994    0.994
==========================================================  =======  =====

Tile level (256 px cells with buildings, 62 cells): change 0.969, naive 0.961, post-only 0.187 (default model).
In exploration (c) - feature change times the post anomaly - scored below (b) with both models (it imports the
head's blindness), and 1 - cosine of the final trunk features was near chance (0.47).

What the figures say. The FCDD map does not see Harvey's damage: flood water is smooth and was never in the
normal-vs-anomaly contrast the models learnt, so the post map and its increase rank damaged buildings *below*
intact ones. The deepest trunk stage, which feeds that head, inherits much of the blindness; the early stages
keep the colour and fine texture in which flooding shows. Three processing choices matter more than the model:
(1) nodata filled from the other image (xBD's unmarked black borders otherwise read as change), (2) distances
relative to the pre scene's own feature variance ``V_l``, which puts a quiet rural scene and a busy suburb on one
scale, and (3)
one calibration for all pairs - per-pair recalibration re-scales every pair by its own nuisance sensitivity and
costs 0.03-0.06 AUROC, besides breaking "a colour means the same everywhere". Honest caveats: nearly all damaged
buildings sit in flooded rural pairs and nearly all intact ones in three unflooded suburbs, so this AUROC mostly
measures "is this neighbourhood flooded"; spatial support alone lifts the naive difference from 0.86 to 0.93; and
raw pixels put through the same processing score as high as the early trunk. On this data the detector's features
add receptive-field support and robustness, not extra discrimination; a model trained with region-scale anomalies
(p2) makes its deeper stages useful too (stage 2: 0.82 -> 0.89).

Calibration: a checkpoint may carry ``meta["change_calibration"]`` (:func:`fit_change_calibration` on held-out
normal patches: each patch against four photometrically jittered, sub-pixel shifted copies of itself). Without
it, :data:`core.change.features.GENERIC_CALIBRATION` is used - one set of no-change statistics for every pair, not
statistics of each pre image, for the reason in (3) above. Either way 1.0 means "the 99th percentile of what no
change looks like" and the default finding threshold is the 99.9th percentile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from core.change.coreg import PreOnGrid, coregister, residual_shift
from core.change.features import METHOD, ChangeScorer, fill_invalid, fit_change_calibration
from core.change.pairing import PairInfo, check_pair, pair_inputs, pair_report
from core.detection.band_resample import RowResampler
from core.detection.findings import extract_findings, safe_name
from core.detection.grading import check_threshold, get_scale
from core.detection.heatmap import HeatmapWriter, write_overlay_png
from core.detection.pipeline import GDAL_CACHE_MB, MAX_FINDINGS, analyze_scene, scene_provenance
from core.detection.prefetch import Prefetcher, batched
from core.detection.scene_grid import GridReader, plan_tiles, resample_factor
from core.detection.stitching import Stitcher
from core.detection.tile_grid import pad_to
from core.detection.verdict import canonical_threshold, verdict_of
from core.errors import InputError
from core.geo import georef as geo
from core.i18n import _
from core.types import Scene, SceneResult

__all__ = ["ChangeScorer", "PairInfo", "PreOnGrid", "analyze_pair", "change_scene",
           "check_pair", "coregister", "fit_change_calibration", "pair_inputs", "pair_report"]

CHANGE_UNITS = "calibrated change score (0 = median no-change pixel, 1 = 99th percentile of no-change pixels)"
SAMPLE_WINDOWS = 9  #: pre-scene windows the scene statistics V_l are computed from


class _PairReader:
    """Post and pre pixels of one analysis-grid window, packed as (h, w, 8) uint8 for the prefetcher."""

    def __init__(self, post: GridReader, pre: PreOnGrid) -> None:
        self.post, self.pre = post, pre

    def read(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        a, va = self.post.read(win)  # unmarked nodata already invalid on both (GridReader, PreOnGrid)
        b, vb = self.pre.read(win)
        packed = np.concatenate([a, b, va[..., None].astype(np.uint8), vb[..., None].astype(np.uint8)], axis=2)
        return packed, np.ones(va.shape, bool)  # "inside the tile"; padding added later is marked False


def _unpack(packed: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(filled post, filled pre, both-valid mask) of a batch of packed tiles (``inside``: not padding)."""
    va = (packed[..., 6] > 0) & inside
    vb = (packed[..., 7] > 0) & inside
    post_f, pre_f = fill_invalid(packed[..., :3], va, packed[..., 3:6], vb)
    return post_f, pre_f, va & vb


def _sample(plan_windows: list[Window], k: int) -> list[Window]:
    idx = sorted({round(v) for v in np.linspace(0, len(plan_windows) - 1, min(k, len(plan_windows)))})
    return [plan_windows[i] for i in idx]


def _label_change_raster(path: Path) -> None:
    with rasterio.open(path, "r+") as ds:
        ds.set_band_description(1, "change score (calibrated)")
        ds.update_tags(1, units=CHANGE_UNITS)


def change_scene(post: Scene, pre: Scene, detector: Any, out_path: str | Path, *, shift: tuple[float, float],
                 factor: float = 1.0, tile_size: int | None = None, batch_size: int = 8,
                 progress: Callable[[int, int], None] | None = None) -> tuple[HeatmapWriter, ChangeScorer, int]:
    """Write the calibrated change heatmap of ``post`` vs ``pre`` to ``out_path`` (post grid and georef).

    Works tile by tile on the analysis grid (``factor`` × the post grid, as ``analyze_scene``):
    each tile reads its post window and the matching pre window (:class:`PreOnGrid`, residual ``shift`` in post
    pixels). Returns the closed writer (preview, stats), the scorer (levels, scene scales, calibration) and the
    number of tiles.
    """
    # the scene statistics always come from the classic grid's windows (spread over the scene, model-sized);
    # the change itself runs in the fewest large tiles a tile-invariant model allows (two images per tile: half
    # the budget), as analyze_scene does, unless a tile size is given
    grid = plan_tiles(post.height, post.width, int(tile_size or detector.tile_size), detector.rf, factor)
    budget = detector.tile_budget_px() if tile_size is None and hasattr(detector, "tile_budget_px") else None
    plan = grid if not budget else plan_tiles(post.height, post.width, int(detector.tile_size), detector.rf,
                                              factor, budget_px=budget // 2)
    th, tw = plan.tile_hw
    sx, sy = plan.grid_w / post.width, plan.grid_h / post.height
    reader = _PairReader(GridReader(post, plan),
                         PreOnGrid(post, pre, plan.grid_h, plan.grid_w, shift=(shift[0] * sx, shift[1] * sy)))
    scorer = ChangeScorer(detector, detector.meta.get("change_calibration"))
    sample = [pad_to(*reader.read(w), grid.tile, grid.tile) for w in _sample(grid.windows, SAMPLE_WINDOWS)]
    packed = np.stack([s[0] for s in sample])
    post_f, pre_f, both = _unpack(packed, np.stack([s[1] for s in sample]))
    if not both.any():
        raise InputError(_("{name} does not overlap {name2} with valid pixels (checked {sample} windows spread "
                           "over the image); choose the pre-event image that covers the same place").format(
                             name=pre.name, name2=post.name, sample=len(sample)))
    scorer.fit_scene(pre_f, both)
    if plan.shape is not None and budget:
        batch_size = max(1, min(batch_size, budget // 2 // (th * tw)))
    total = len(plan.windows)
    done = 0
    writer = HeatmapWriter(out_path, post.width, post.height, post.georef,
                           tags={"kind": "change", "source": post.name, "pre_source": pre.name,
                                 "model": getattr(detector, "name", ""), "method": METHOD})
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), writer:  # bounded GDAL block cache, as in analyze_scene
        resampler = None if plan.factor == 1.0 else RowResampler(plan.grid_h, plan.grid_w, post.height,
                                                                 post.width, writer)
        stitcher = Stitcher(plan.grid_h, plan.grid_w, resampler or writer)

        def run(batch: list[tuple[Window, np.ndarray, np.ndarray]]) -> None:
            nonlocal done
            a, b, ok = _unpack(np.stack([x[1] for x in batch]), np.stack([x[2] for x in batch]))
            heat = scorer.heat(a, b)
            for (win, _a, _b), hmap, v in zip(batch, heat, ok, strict=True):
                h, w = win.height, win.width
                stitcher.add(win, hmap[:h, :w], plan.tile_weights(win), v[:h, :w])
            done += len(batch)
            if progress is not None:
                progress(done, total)

        def pad(win: Window, rgb: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return pad_to(rgb, valid, th, tw)

        with Prefetcher(reader, plan.windows, depth=2 * batch_size, transform=pad) as pf:
            for batch in batched(pf, batch_size):
                run(batch)
        stitcher.finish()
        if resampler is not None:
            resampler.finish()
        writer.set_tags(threshold=repr(scorer.calibration["threshold"]), calibration=scorer.calibration_source,
                        levels=repr(scorer.levels))
    _label_change_raster(Path(out_path))
    return writer, scorer, total


def analyze_pair(post_scene: Scene, pre_path: str | Path, detector: Any, out_dir: str | Path, *,
                 threshold: float | None = None, change_threshold: float | None = None,
                 grade_scale: str = "copernicus-ems", progress: Callable[[int, int], None] | None = None,
                 resample_to_model_gsd: bool = True, tile_size: int | None = None, batch_size: int = 8,
                 residual_shift_policy: str = "auto") -> SceneResult:
    """Analyse a post-event scene against its pre-event image.

    Writes what :func:`~core.detection.pipeline.analyze_scene` writes for the post image (``<name>_heatmap.tif``,
    ``_overlay.png``) plus ``<name>_change.tif`` (float32 calibrated change on the post grid and georef) and
    ``<name>_change_overlay.png``. ``result.findings`` are extracted from the *change* heatmap (threshold
    ``change_threshold``, default the change calibration's) and carry post and pre source names and dates;
    ``threshold`` applies to the post image's own anomaly heatmap. The verdict is "anomalous" when there is at
    least one change finding; ``image_score`` stays the post image's anomaly score. ``result.meta`` gains
    ``pre_source`` (path), ``coregistration`` (method, residual shift px/m and whether it was applied under
    ``residual_shift_policy``: "auto", "apply" or "off", see :mod:`core.change.coreg`), ``change``
    (calibration, levels, scene scales, stats, threshold, overlay path) and ``post_only_findings`` (how many the
    single-image analysis found). The change pass runs first, so a pre image that does not overlap fails before
    anything is written. ``progress(done, total)`` counts the tiles of both passes.
    """
    from core.imagery.reader import open_scene

    t0 = time.perf_counter()
    get_scale(grade_scale)
    if change_threshold is not None:
        check_threshold(change_threshold)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pre = open_scene(pre_path)
    try:
        factor, _why = resample_factor(post_scene, getattr(detector, "gsd_m", None), resample_to_model_gsd,
                                       frame_side=getattr(detector, "frame_side", None))
        shift, coreg = residual_shift(post_scene, pre, residual_shift_policy)
        stem = safe_name(post_scene.name)
        change_path = out / f"{stem}_change.tif"

        def first(done: int, total: int) -> None:
            if progress is not None:
                progress(done, 2 * total)

        # the change pass first: a pre image that does not overlap fails before anything is written
        writer, scorer, n_change = change_scene(
            post_scene, pre, detector, change_path, factor=factor, tile_size=tile_size, batch_size=batch_size,
            shift=shift, progress=first)

        def second(done: int, total: int) -> None:
            if progress is not None:
                progress(n_change + done, n_change + total)

        res = analyze_scene(post_scene, detector, out, threshold=threshold, grade_scale=grade_scale,
                            resample_to_model_gsd=resample_to_model_gsd, progress=second, tile_size=tile_size,
                            batch_size=batch_size)
        cal = scorer.calibration
        thr = canonical_threshold(change_threshold if change_threshold is not None else cal["threshold"])
        preview, pscale = writer.preview, writer.preview_scale
        assert preview is not None
        overlay = write_overlay_png(out / f"{stem}_change_overlay.png", preview, thr)
        gsd = res.gsd_m
        prov = scene_provenance(post_scene, detector, gsd) | {"pre_source_name": pre.name,
                                                         "pre_source_date": pre.capture_time}
        findings = extract_findings(preview, pscale, thr, georef=post_scene.georef, scene_name=post_scene.name,
                                    grade_scale=grade_scale, provenance=prov,
                                    full_size=(post_scene.width, post_scene.height), max_findings=MAX_FINDINGS)
        n_post = len(res.findings)
        res.findings = findings
        res.verdict = verdict_of(len(findings))
        res.pre_scene_name = pre.name
        res.change_path = change_path
        res.meta["pre_source"] = str(Path(pre_path).resolve())
        res.meta["pre_capture_time"] = pre.capture_time
        res.meta["coregistration"] = coreg
        res.meta["post_only_findings"] = n_post
        res.meta["change"] = {
            "method": METHOD, "threshold": thr, "calibration": scorer.calibration_source,
            "calibration_stats": {k: cal.get(k) for k in ("q50", "q99", "q999", "threshold", "n_patches")},
            "levels": scorer.levels, "scene_scales": [float(s) for s in scorer.scales] if scorer.scales is not None
            else None, "stats": writer.stats, "image_score": writer.stats.get("mean"),
            "overlay_path": str(overlay), "findings_capped": len(findings) >= MAX_FINDINGS, "units": CHANGE_UNITS}
        if pre.georef is not None and post_scene.georef is not None:
            try:
                pb = geo.bounds_wgs84(pre.georef, pre.width, pre.height)
                res.meta["change"]["pre_bounds_wgs84"] = list(pb)
            except InputError:
                pass
        res.meta["timing"]["pair_total_s"] = time.perf_counter() - t0
        return res
    finally:
        pre.close()
