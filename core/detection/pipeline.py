"""Analyse one scene: tiles -> detector -> calibrated, seam-blended heatmap GeoTIFF -> findings -> SceneResult.

The scene is cut into overlapping tiles (overlap ≈ the model's receptive field, tile offsets on its stride), a
reader thread fetches the next tiles while the model scores a batch, and the calibrated score maps are blended
into a heatmap that streams to disk band by band, so memory stays bounded however large the raster is. When the
detector knows its training ground sample distance (GSD) and a georeferenced scene differs by more than 1.5×,
tiles are read on a grid at the model's GSD and the heatmap is mapped back onto the scene's own grid.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from core.detection.band_resample import RowResampler
from core.detection.findings import extract_findings, safe_name
from core.detection.grading import get_scale
from core.detection.heatmap import PREVIEW_MAX, HeatmapWriter, read_heatmap, set_georef, write_overlay_png
from core.detection.prefetch import Prefetcher, batched
from core.detection.scene_grid import GridReader, plan_tiles, resample_factor
from core.detection.stage_thread import BackgroundStage
from core.detection.stitching import Stitcher
from core.detection.tile_grid import pad_to
from core.detection.verdict import canonical_threshold, share_above, verdict_of
from core.errors import InputError
from core.geo import georef as geo
from core.i18n import _
from core.types import GeoRef, Scene, SceneResult

__all__ = ["GDAL_CACHE_MB", "MAX_FINDINGS", "AnalysisTimer", "analyze_scene", "place_result", "refind_findings",
           "safe_name", "scene_provenance"]

MAX_FINDINGS = 1000  #: findings kept per scene (highest scores first)
#: GDAL block cache during an analysis (MB). GDAL's default (5 % of RAM) fills with input blocks as a large
#: raster streams past and would dominate peak memory; each block is needed only for one row of tiles.
GDAL_CACHE_MB = 128


@dataclass
class AnalysisTimer:
    """Where the time of one analysis went (seconds) and how much work it was."""

    total_s: float = 0.0
    model_s: float = 0.0  #: inside ``detector.predict``
    read_wait_s: float = 0.0  #: waiting for the reader thread (reading is otherwise hidden behind the model)
    tail_s: float = 0.0  #: stitching and writing left after the last batch (the rest overlaps the model)
    tiles: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, float]:
        """JSON-safe form, with the model's share of the total and the throughput."""
        d = asdict(self)
        d["model_share"] = self.model_s / self.total_s if self.total_s > 0 else 0.0
        d["tiles_per_s"] = self.tiles / self.total_s if self.total_s > 0 else 0.0
        return d


def scene_provenance(scene: Scene, detector: Any, gsd: float | None) -> dict[str, Any]:
    """Source and model provenance fields copied into every finding of ``scene``."""
    return {"source_name": scene.name, "source_date": scene.capture_time, "source_gsd": gsd,
            "model_name": str(getattr(detector, "name", "")), "model_version": str(getattr(detector, "version", "")),
            "model_sha256": str(getattr(detector, "sha256", "")),
            "processed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def analyze_scene(scene: Scene, detector: Any, out_dir: str | Path, *, threshold: float | None = None,
                  grade_scale: str = "copernicus-ems", resample_to_model_gsd: bool = True,
                  progress: Callable[[int, int], None] | None = None, tile_size: int | None = None,
                  batch_size: int = 8) -> SceneResult:
    """Analyse ``scene`` with ``detector``; write ``<safe name>_heatmap.tif`` and ``_overlay.png`` into ``out_dir``.

    ``threshold`` (calibrated units) defaults to the detector's calibration. ``progress(done, total)`` is called
    after every batch of tiles. The image score is the calibrated valid-area-weighted mean of the tiles' raw image
    scores; the verdict follows :mod:`core.detection.verdict` (anomalous when a finding reaches the threshold, which is
    rounded as it is shown, :func:`~core.detection.verdict.canonical_threshold`). Errors a user can cause
    raise :class:`~core.errors.CoreError`; a failed run leaves no partial heatmap behind.
    """
    timer = AnalysisTimer()
    t_start = time.perf_counter()
    cal = detector.calibration
    thr = canonical_threshold(cal.threshold if threshold is None else threshold)
    get_scale(grade_scale)
    if batch_size < 1:
        raise InputError(_("batch size must be at least 1, got {batch_size}").format(batch_size=batch_size))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = safe_name(scene.name)
    factor, warnings = resample_factor(scene, getattr(detector, "gsd_m", None), resample_to_model_gsd,
                                       frame_side=getattr(detector, "frame_side", None))
    # an explicit tile size keeps the classic grid; otherwise a tile-invariant model gets the fewest large tiles
    budget = detector.tile_budget_px() if tile_size is None and hasattr(detector, "tile_budget_px") else None
    plan = plan_tiles(scene.height, scene.width, int(tile_size or detector.tile_size), detector.rf, factor,
                      budget_px=budget)
    if plan.shape is not None and budget:
        batch_size = max(1, min(batch_size, budget // (plan.tile_hw[0] * plan.tile_hw[1])))
    total = len(plan.windows)
    raw_sum, valid_total = 0.0, 0.0

    def pad(win: Window, rgb: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pad_to(rgb, valid, *plan.tile_hw)

    heatmap_path = out / f"{stem}_heatmap.tif"
    writer = HeatmapWriter(heatmap_path, scene.width, scene.height, scene.georef,
                           tags={"threshold": thr, "source": scene.name, "model": getattr(detector, "name", "")})
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), writer:
        resampler = None if factor == 1.0 else RowResampler(plan.grid_h, plan.grid_w, scene.height, scene.width,
                                                            writer)
        stitcher = Stitcher(plan.grid_h, plan.grid_w, resampler or writer)

        def post(item: tuple[list[tuple[Window, np.ndarray, np.ndarray]], np.ndarray, np.ndarray]) -> None:
            """Calibrate, stitch and write one batch (on the stage thread, overlapping the next batch's model)."""
            nonlocal raw_sum, valid_total
            batch, maps, scores = item
            cmaps = np.asarray(cal.pixel(maps), dtype=np.float32)
            for (win, _tile, valid), cmap, score in zip(batch, cmaps, scores, strict=True):
                h, w = win.height, win.width
                v = valid[:h, :w]
                wt = plan.tile_weights(win)
                stitcher.add(win, cmap[:h, :w], wt, v)
                # a cover plan's tiles overlap by 2r: count each pixel once, for the tile it is taken from
                n = float(wt[v].sum()) if plan.margin is not None else int(v.sum())
                raw_sum += float(score) * n
                valid_total += n

        def waited(seconds: float) -> None:
            timer.read_wait_s += seconds

        with Prefetcher(GridReader(scene, plan), plan.windows, depth=max(2, 2 * batch_size), transform=pad) as pf, \
                BackgroundStage(post, depth=2, name="tile-stitch") as stage:
            for batch in batched(pf, batch_size, on_wait=waited):
                t0 = time.perf_counter()
                maps, scores = detector.predict(np.stack([b[1] for b in batch]))
                timer.model_s += time.perf_counter() - t0
                timer.tiles += len(batch)
                timer.batches += 1
                stage.submit((batch, maps, scores))
                if progress is not None:  # on the caller's thread (a UI callback may need it)
                    progress(timer.tiles, total)
            t0 = time.perf_counter()
            stage.finish()
            timer.tail_s = time.perf_counter() - t0
        stitcher.finish()
        if resampler is not None:
            resampler.finish()
        if valid_total == 0:
            raise InputError(_("{name} has no valid pixels (everything is nodata, transparent or exactly "
                               "black); nothing to analyse").format(name=scene.name))
        raw_image = raw_sum / valid_total
        image_score = float(cal.image(raw_image))
        writer.set_tags(image_score=repr(image_score), image_score_raw=repr(raw_image))

    preview, pscale = writer.preview, writer.preview_scale
    assert preview is not None  # set when the writer closed cleanly
    overlay_path = write_overlay_png(out / f"{stem}_overlay.png", preview, thr)
    gsd = scene.gsd_m or (geo.gsd_m(scene.georef, scene.width, scene.height) if scene.georef else None)
    findings = extract_findings(preview, pscale, thr, georef=scene.georef, scene_name=scene.name,
                                grade_scale=grade_scale, provenance=scene_provenance(scene, detector, gsd),
                                full_size=(scene.width, scene.height), max_findings=MAX_FINDINGS)
    bounds = geo.bounds_wgs84(scene.georef, scene.width, scene.height) if scene.georef else None
    timer.total_s = time.perf_counter() - t_start
    verdict = verdict_of(len(findings))
    meta: dict[str, Any] = {
        "timing": timer.as_dict(), "tiles": timer.tiles, "tile_size": plan.tile, "tile_shape": list(plan.tile_hw),
        "overlap": plan.overlap,
        "batch_size": batch_size, "threshold": thr, "image_threshold": cal.image_threshold,
        "grade_scale": grade_scale, "image_score_raw": raw_image, "preview_scale": pscale,
        "heatmap_stats": writer.stats, "findings_capped": len(findings) >= MAX_FINDINGS,
        "resample": None if factor == 1.0 else {"factor": factor, "grid": [plan.grid_h, plan.grid_w],
                                                "scene_gsd_m": gsd, "model_gsd_m": detector.gsd_m},
        "model": detector.info(), "share_above_threshold": share_above(preview, thr),
        "warnings": list(scene.meta.get("warnings", [])) + warnings,
    }
    if isinstance(scene.meta.get("gps"), dict):
        meta["gps"] = dict(scene.meta["gps"])  # the map marks the position; placing the frame starts from it
    return SceneResult(scene_name=scene.name, width=scene.width, height=scene.height, image_score=image_score,
                       verdict=verdict, georef=scene.georef, bounds_wgs84=bounds, heatmap_path=heatmap_path,
                       overlay_path=overlay_path, findings=findings, source_path=scene.path,
                       capture_time=scene.capture_time, gsd_m=gsd, meta=meta)


def refind_findings(result: SceneResult, threshold: float, model: dict[str, Any], *,
                    change_threshold: float | None = None) -> SceneResult:
    """``result`` with its findings extracted again from its stored heatmap (the same preview the pipeline used),
    e.g. after an analyst moved a threshold or placed the scene on the map. ``model`` is the analysis' model info.

    A single image's findings are cut from its anomaly heatmap at ``threshold``. A pre/post result's findings come
    from its *change* heatmap, whose units differ: they are cut at ``change_threshold`` (default: the one they were
    cut at before, ``meta["change"]["threshold"]``) and keep the pre-event source; ``threshold`` is then only
    recorded as the post image's own anomaly threshold. The change overlay PNG is redrawn at the new threshold.
    """
    scale = str(result.meta.get("grade_scale", "copernicus-ems"))
    prov = {"source_name": result.scene_name, "source_date": result.capture_time, "source_gsd": result.gsd_m,
            "model_name": str(model.get("name", "")), "model_version": str(model.get("version", "")),
            "model_sha256": str(model.get("sha256", "")),
            "processed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    threshold = canonical_threshold(threshold)
    change = result.meta.get("change") if isinstance(result.meta.get("change"), dict) else None
    if result.change_path is None or change is None:
        src, thr = result.heatmap_path, threshold
    else:
        src = result.change_path
        thr = canonical_threshold(change_threshold if change_threshold is not None else change.get("threshold", 1.0))
        prov |= {"pre_source_name": result.pre_scene_name, "pre_source_date": result.meta.get("pre_capture_time")}
    hm = read_heatmap(src, preview_max=PREVIEW_MAX)
    result.findings = extract_findings(hm.preview, hm.preview_scale, thr, georef=result.georef,
                                       scene_name=result.scene_name, grade_scale=scale, provenance=prov,
                                       full_size=(result.width, result.height), max_findings=MAX_FINDINGS)
    result.meta["threshold"] = threshold
    if src is result.change_path and change is not None:
        change["threshold"] = thr
        change["findings_capped"] = len(result.findings) >= MAX_FINDINGS
        overlay = Path(src).with_name(f"{Path(src).stem}_overlay.png")  # as analyze_pair named it
        if overlay.is_file():
            write_overlay_png(overlay, hm.preview, thr)
    result.verdict = verdict_of(len(result.findings))
    return result


def place_result(result: SceneResult, georef: GeoRef, model: dict[str, Any], threshold: float) -> SceneResult:
    """Put an analysed, un-georeferenced scene where the analyst placed it: its heatmap (and change) GeoTIFFs get
    the location, its bounds and GSD are set, and its findings are extracted again so they carry coordinates,
    MGRS and areas in m²."""
    geo.validate_georef(georef, result.width, result.height)
    for path in (result.heatmap_path, result.change_path):
        if path is not None and Path(path).is_file():
            set_georef(path, georef)
    result.georef = georef
    result.bounds_wgs84 = geo.bounds_wgs84(georef, result.width, result.height)
    result.gsd_m = geo.gsd_m(georef, result.width, result.height)
    return refind_findings(result, threshold, model)
