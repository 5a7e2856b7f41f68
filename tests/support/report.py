"""Builds real report inputs for the report tests: Joplin tornado tiles, heatmaps and findings.

The score rasters are not from a trained model (tests must run in seconds); they are a texture measure of the
real imagery (local standard deviation, calibrated to "1 = 99th percentile"), which lights up the tornado debris.
Everything downstream of the score raster uses the project's real components: ``core.imagery.reader.open_scene``,
``core.detection.heatmap.HeatmapWriter`` / ``write_overlay_png`` and ``core.detection.findings.extract_findings``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from core.change.coreg import residual_shift
from core.detection.findings import extract_findings
from core.detection.heatmap import HeatmapWriter, write_overlay_png
from core.geo import georef as geo
from core.imagery.reader import open_scene
from core.report import ReportContext
from core.types import SceneResult
from tests.support.data import need

JOPLIN = Path("geotiff") / "joplin_tornado_xview2deploy"
THRESHOLD = 2.0  #: anomaly threshold of the single images (and the post-only threshold of the pair)
CHANGE_THRESHOLD = 1.3  #: change threshold the pair's findings are cut at
NOTES = {
    "ko": "건물 붕괴 확인",
    "ru": "Разрушено",
    "el": "Κατεστραμμένο κτίριο",
    "html": "<script>alert('x')</script><b>bold?</b>",
    "formula": "=cmd|' /C calc'!A0",
}
MODEL = {"name": "fcdd-vgg11-joplin", "version": "0.3.1", "arch": "FCDD_CNN224_VGG",
         "sha256": "9f2c" + "ab01" * 15, "threshold": THRESHOLD,
         "threshold_method": "99.9th percentile of held-out normal pixels"}


def texture_scores(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Calibrated-looking score raster from image texture: 0 = median, 1 = 99th percentile; NaN where invalid."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(g, (15, 15))
    std = np.sqrt(np.maximum(cv2.blur(g * g, (15, 15)) - mean * mean, 0))
    std = cv2.GaussianBlur(std, (0, 0), 6)
    q50, q99 = np.percentile(std[valid], [50, 99])
    s = (1.6 * np.maximum((std - q50) / max(q99 - q50, 1e-6), 0) ** 2.5).astype(np.float32)
    s[~valid] = np.nan
    return s


def analyse(path: Path, out: Path, name: str | None = None, *, pre: Path | None = None, max_findings: int = 8,
            nodata_rows: int = 0, threshold: float = THRESHOLD) -> SceneResult:
    """A SceneResult for one real image: heatmap GeoTIFF, overlay PNG, findings (and a change map with ``pre``).

    As :func:`core.change.scene.analyze_pair` does, a result with ``pre`` takes its findings from the change map (cut at
    :data:`CHANGE_THRESHOLD`) and records ``meta["change"]``, the real co-registration of the pair
    (:func:`core.change.coreg.residual_shift`) and how many regions the post image alone gave.
    """
    scene = open_scene(path, name=name)
    try:
        rgb, valid = scene.read()
    finally:
        scene.close()
    valid = valid.copy()
    if nodata_rows:
        valid[:nodata_rows] = False
    scores = texture_scores(rgb, valid)
    stem = path.stem
    heat, overlay = out / f"{stem}_heatmap.tif", out / f"{stem}_overlay.png"
    with HeatmapWriter(heat, scene.width, scene.height, scene.georef) as w:
        w.write_rows(0, scores)
    write_overlay_png(overlay, scores, threshold)
    prov = {"source_name": path.name, "source_date": "2011-05-25T16:50:00Z", "source_gsd": scene.gsd_m,
            "model_name": MODEL["name"], "model_version": MODEL["version"], "model_sha256": MODEL["sha256"],
            "processed_at": "2026-01-01T00:00:00Z"}
    findings = extract_findings(scores, 1.0, threshold, georef=scene.georef, scene_name=scene.name,
                                min_area_px=150, provenance=prov, max_findings=max_findings)
    meta: dict[str, Any] = {"threshold": threshold}
    change = None
    if pre is not None:
        pscene = open_scene(pre)
        try:
            prgb, pvalid = pscene.read()
            post_scene = open_scene(path, name=name)
            try:
                _, coreg = residual_shift(post_scene, pscene)
            finally:
                post_scene.close()
        finally:
            pscene.close()
        diff = np.abs(cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 3)
                      - cv2.GaussianBlur(prgb.astype(np.float32), (0, 0), 3)).mean(axis=2)
        cs = (diff / max(float(np.percentile(diff, 99)), 1e-6) * 1.5).astype(np.float32)
        cs[~(valid & pvalid)] = np.nan
        change = out / f"{stem}_change.tif"
        with HeatmapWriter(change, scene.width, scene.height, scene.georef) as w:
            w.write_rows(0, cs)
        change_overlay = write_overlay_png(out / f"{stem}_change_overlay.png", cs, CHANGE_THRESHOLD)
        prov |= {"pre_source_name": pre.name, "pre_source_date": "2011-05-20"}
        meta |= {"pre_source": str(pre), "pre_capture_time": "2011-05-20", "coregistration": coreg,
                 "post_only_findings": len(findings),
                 "change": {"threshold": CHANGE_THRESHOLD, "calibration": "test: blurred RGB difference",
                            "calibration_stats": {"threshold": CHANGE_THRESHOLD},
                            "image_score": float(np.nanmean(cs)), "overlay_path": str(change_overlay)}}
        findings = extract_findings(cs, 1.0, CHANGE_THRESHOLD, georef=scene.georef, scene_name=scene.name,
                                    min_area_px=150, provenance=prov, max_findings=max_findings)
    bounds = geo.bounds_wgs84(scene.georef, scene.width, scene.height) if scene.georef else None
    return SceneResult(scene_name=scene.name, width=scene.width, height=scene.height,
                       image_score=float(np.nanmean(scores)), verdict="anomalous" if findings else "normal",
                       georef=scene.georef, bounds_wgs84=bounds, heatmap_path=heat, overlay_path=overlay,
                       findings=findings, source_path=path, capture_time="2011-05-25", gsd_m=scene.gsd_m,
                       pre_scene_name=pre.name if pre else None, change_path=change, meta=meta)


def build_context(data: Path, out: Path) -> ReportContext:
    """Three real scenes (UTM chip with pre/post change, EPSG:4326 post tile, un-georeferenced AIDER photo)."""
    post = need(data / JOPLIN / "chips_aligned" / "post" / "0_post.tif")
    pre = need(data / JOPLIN / "chips_aligned" / "pre" / "0_pre.tif")
    tile = need(data / JOPLIN / "post" / "tile_31500-5137.tif")
    aider = need(data / "aider" / "fire" / "fire_image0196.jpg")
    a = analyse(post, out, pre=pre)
    b = analyse(tile, out, nodata_rows=100)
    c = analyse(aider, out, max_findings=3)
    f = a.findings
    f[0].notes, f[0].review_status, f[0].analyst = NOTES["ko"], "confirmed", "김민준"
    f[1].notes, f[1].review_status, f[1].analyst = NOTES["ru"], "confirmed", "Иван Петров"
    f[2].notes, f[2].review_status, f[2].analyst = NOTES["el"], "confirmed", "Νίκος"
    f[3].notes, f[3].review_status, f[3].analyst = "false alarm: parking lot", "rejected", "J. Smith"
    b.findings[0].notes, b.findings[0].review_status = NOTES["html"], "confirmed"
    b.findings[1].notes = NOTES["formula"]
    return ReportContext(
        title="Joplin EF5 tornado — BDA phase 1 <test>", handling="UNCLASSIFIED // FOR OFFICIAL USE ONLY",
        scenes=[a, b, c], event="Joplin tornado 2011 / 작전 회오리", aoi="Joplin, Missouri — 20th St corridor",
        analyst="김민준 (Kim Min-jun)", organisation="Test cell", model_info=dict(MODEL),
        report_time=datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc), pre_sources={pre.name: pre},
        summary_notes="Destruction concentrated along the tornado path. 피해 집중 지역.", phase2_notes="",
        phase3_notes="Road network usable — Дороги проходимы.")


@pytest.fixture(scope="session")
def report_ctx(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> ReportContext:
    """The real-imagery report context shared by the report tests (built once per session)."""
    return build_context(shared_data, tmp_path_factory.mktemp("report-inputs"))
