"""Finding chips and maps: windows inside the image, pre-event chips aligned across CRSs, map grid labels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from rasterio.warp import Resampling, calculate_default_transform, reproject

from core.report.chips import MIN_CHIP_PX, chip_window, finding_panels
from core.report.context import ReportContext
from core.report.figures import _crossing, nice_length, scene_map
from core.report.rasters import SceneCache, read_scores
from core.report.summary import summarise
from core.types import Finding, SceneResult
from tests.support.report import JOPLIN


def _box_finding(c0: int, r0: int, c1: int, r1: int) -> Finding:
    return Finding(id="f", scene_name="s", polygon_px=[(c0, r0), (c1, r0), (c1, r1), (c0, r1)],
                   bbox_px=(c0, r0, c1, r1), area_px=float((c1 - c0) * (r1 - r0)), score_mean=3.0, score_max=4.0,
                   threshold=2.0, confidence=0.8, grade="damaged")


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 3000), h=st.integers(1, 3000), data=st.data())
def test_chip_window_inside_image_and_around_finding(w: int, h: int, data: st.DataObject) -> None:
    c0 = data.draw(st.integers(0, w - 1))
    r0 = data.draw(st.integers(0, h - 1))
    c1 = data.draw(st.integers(c0 + 1, w))
    r1 = data.draw(st.integers(r0 + 1, h))
    win = chip_window(_box_finding(c0, r0, c1, r1), w, h)
    assert 0 <= win.col_off and 0 <= win.row_off and win.col_off + win.width <= w and win.row_off + win.height <= h
    assert win.width == min(w, max(MIN_CHIP_PX, 2 * max(c1 - c0, r1 - r0)))
    if win.width >= c1 - c0 and win.height >= r1 - r0 and max(c1 - c0, r1 - r0) * 2 <= min(w, h):
        (wr0, wr1), (wc0, wc1) = win.toranges()
        assert wc0 <= c0 and c1 <= wc1 and wr0 <= r0 and r1 <= wr1


def test_nice_length_and_crossing() -> None:
    assert nice_length(160) == 100 and nice_length(480) == 200 and nice_length(0.7) == 0.5 and nice_length(0) == 0
    assert _crossing(np.array([0.0, 10.0]), np.array([5.0, 7.0]), 5.0) == pytest.approx(6.0)
    assert _crossing(np.array([0.0, 1.0]), np.array([5.0, 7.0]), 5.0) is None


def _warp_to_utm(src_path: Path, dst_path: Path) -> None:
    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:32615", src.width, src.height,
                                                               *src.bounds)
        profile = src.profile | {"crs": "EPSG:32615", "transform": transform, "width": width, "height": height}
        with rasterio.open(dst_path, "w", **profile) as dst:
            for b in range(1, src.count + 1):
                reproject(rasterio.band(src, b), rasterio.band(dst, b), resampling=Resampling.bilinear)


def _grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L").resize((128, 128)), dtype=np.float64)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_pre_event_chip_is_aligned_across_crs(report_ctx: ReportContext, tmp_path: Path,
                                              shared_data: Path) -> None:
    """The same tile warped to UTM as 'pre' image: its chip must show the same ground as the post chip."""
    sr: SceneResult = report_ctx.scenes[1]  # EPSG:4326 tile
    pre = tmp_path / "tile_utm.tif"
    _warp_to_utm(shared_data / JOPLIN / "post" / "tile_31500-5137.tif", pre)
    with SceneCache() as cache:
        for f in sr.findings[:3]:
            panels = finding_panels(f, sr, cache, pre, 2.0)
            assert [p.caption for p in panels] == ["Post-event image", "Anomaly heatmap ≥ 2.00", "Pre-event image"]
            post_img, heat_img, pre_img = (p.image for p in panels)
            assert post_img is not None and heat_img is not None and pre_img is not None, panels[2].missing
            assert pre_img.size == post_img.size
            aligned = _corr(_grey(post_img), _grey(pre_img))
            shifted = _corr(_grey(post_img), np.roll(_grey(pre_img), 20, axis=1))
            assert aligned > 0.8 and aligned > shifted + 0.1, (aligned, shifted)


def _coloured(img: Image.Image) -> float:
    """Share of a chip's pixels painted with heatmap colours (grey imagery below the threshold is unsaturated)."""
    rgb = np.asarray(img.convert("RGB")).astype(int)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > 40).mean())


def test_change_and_pre_chips_of_the_compared_scene(report_ctx: ReportContext) -> None:
    """A pre/post scene: before and after side by side, then the change heatmap its findings come from (coloured
    from the change threshold), then the post-only anomaly heatmap, labelled as a reference at its own threshold.
    Each heatmap chip is coloured exactly where its own raster is above its own threshold."""
    sr = report_ctx.scenes[0]
    told_apart = 0
    with SceneCache() as cache:
        for f in sr.findings[:4]:
            panels = finding_panels(f, sr, cache, report_ctx.pre_source(sr), 2.0, 1.3)
            assert [p.caption for p in panels] == ["Post-event image", "Pre-event image",
                                                   "Change heatmap ≥ 1.30 (findings)",
                                                   "Post-only anomaly heatmap ≥ 2.00 (reference)"]
            assert all(p.image is not None for p in panels)
            win = chip_window(f, sr.width, sr.height)
            above = {}
            for panel, path, t in ((panels[2], sr.change_path, 1.3), (panels[3], sr.heatmap_path, 2.0)):
                scores = read_scores(path, win, full_size=(sr.width, sr.height))
                above[path] = float(np.nanmean(scores >= t))
                assert abs(_coloured(panel.image) - above[path]) < 0.02, (panel.caption, above[path])
            told_apart += abs(above[sr.change_path] - above[sr.heatmap_path]) > 0.04
    assert told_apart  # the two rasters differ in these chips, so a swapped input would fail above


def test_scene_map_renders_for_every_kind_of_scene(report_ctx: ReportContext) -> None:
    s = summarise(report_ctx)
    with SceneCache() as cache:
        for st_ in s.scenes:
            data = scene_map(st_, cache.get(st_.result.source_path), s)
            with Image.open(io.BytesIO(data)) as im:
                assert im.format == "JPEG" and min(im.size) > 500
                arr = np.asarray(im.convert("RGB"))
            assert arr.std() > 20  # imagery was drawn, not an empty frame
