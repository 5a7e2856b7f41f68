"""Large tiles with a receptive-field overlap: every pixel covered, each about once, and the same heatmaps as the
whole image in one forward pass (and as the classic 512-px grid, within stated tolerances) on real imagery."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import rasterio
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from core.assets import MODELS
from core.detection.detector import Detector
from core.detection.pipeline import analyze_scene
from core.detection.scene_grid import plan_tiles
from core.detection.stitching import EDGE_WEIGHT
from core.detection.tile_cover import CPU_BUDGET_PX, axis_cover, cover_windows, exact_weights
from core.detection.tile_grid import grid_windows
from core.imagery.reader import open_scene
from core.models import ReceptiveField
from tests.support.data import need

JOPLIN_POST = "geotiff/joplin_tornado_xview2deploy/post/tile_31500-5137.tif"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5000), st.integers(256, 3000), st.integers(0, 255), st.sampled_from([1, 8, 16]))
def test_axis_cover_covers_overlaps_and_aligns(n, max_tile, overlap, align):
    tile, starts = axis_cover(n, max_tile, overlap, align)
    if n <= max_tile:
        assert (tile, starts) == (n, [0])
        return
    assert starts[0] == 0 and starts[-1] + tile == n and all(s % align == 0 for s in starts)
    assert len(starts) == 1 or max(np.diff(starts)) <= tile - overlap  # neighbours overlap by at least that
    assert tile <= max(max_tile, overlap + 2 * align)  # no bigger than asked (unless the overlap forces it)


@pytest.mark.parametrize(("h", "w", "budget", "bound"), [(2048, 2048, 2_400_000, 1.1), (8192, 8192, 2_400_000, 1.3),
                                                         (1300, 20000, 2_400_000, 1.2), (3000, 500, 600_000, 1.3)])
def test_cover_windows_compute_each_pixel_about_once(h, w, budget, bound):
    th, tw, wins = cover_windows(h, w, budget, 184, 8)
    assert th * tw <= budget
    seen = np.zeros((h, w), np.uint8)
    for win in wins:
        assert 0 <= win.row_off and win.row_off + win.height <= h and win.col_off + win.width <= w
        seen[win.row_off:win.row_off + win.height, win.col_off:win.col_off + win.width] = 1
    assert seen.all()
    overcompute = len(wins) * th * tw / (h * w)
    classic = len(grid_windows(h, w, 512, 104)) * 512 * min(512, h) / (h * w)
    assert overcompute < bound < classic  # the classic 512-px grid: 1.56 at 2048², 1.57 at 8192²
    offsets = [(x.row_off, x.col_off) for x in wins]
    assert offsets == sorted(offsets)  # row-major for the stitcher


def test_2048_square_becomes_two_whole_width_bands():
    th, tw, wins = cover_windows(2048, 2048, 2_400_000, 184, 8)
    assert (tw, len(wins)) == (2048, 2) and wins[1].row_off % 8 == 0 and wins[0].row_off + th - wins[1].row_off >= 184


def test_exact_weights_give_every_overlap_pixel_to_the_deeper_tile():
    w = exact_weights(20, 40, 6)
    assert w[5, 20] == pytest.approx(EDGE_WEIGHT, rel=1e-6) and w[6, 6] == 1.0 and w[13, 33] == 1.0
    assert w[14, 20] == pytest.approx(EDGE_WEIGHT, rel=1e-6) and w[0, 0] == pytest.approx(EDGE_WEIGHT ** 2, rel=1e-6)
    a = b = exact_weights(20, 40, 6)[10]  # the middle row of two tiles side by side, overlapping by 12 = 2·margin
    overlap_a, overlap_b = a[28:], b[:12]
    assert np.all(np.maximum(overlap_a, overlap_b) == 1.0)


def test_plan_uses_cover_only_with_a_budget_and_beyond_the_tile_size():
    rf = ReceptiveField(r=92.0, j=8.0, s=3.5)
    assert plan_tiles(2048, 2048, 512, rf).shape is None  # classic grid without a budget
    small = plan_tiles(400, 500, 512, rf, budget_px=2_400_000)
    assert small.shape is None and small.tile == 512  # a scene within one classic tile: unchanged
    p = plan_tiles(2048, 2048, 512, rf, budget_px=2_400_000)
    assert p.shape == (1120, 2048) and p.overlap == 184 and p.margin == 92 and len(p.windows) == 2
    assert p.tile_weights(p.windows[0]).shape == (1120, 2048)


def _heatmap(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as hm:
            return hm.read(1)


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    """The bundled default model (fp32) on a real 1024² Joplin post tile: whole image in one forward pass, cover
    plans (one tile; six tiles from a small budget) and the classic 512-px grid."""
    torch.set_num_threads(2)
    det = Detector.load(MODELS / "fcdd-resnet18.pt", device="cpu", precision="fp32")
    scene = open_scene(need(shared_data / JOPLIN_POST))
    out = tmp_path_factory.mktemp("cover")
    try:
        rgb, _ = scene.read(Window(0, 0, scene.width, scene.height))
        whole = np.asarray(det.calibration.pixel(det.predict(rgb[None])[0][0]))
        res = {"cover": analyze_scene(scene, det, out / "cover"),
               "classic": analyze_scene(scene, det, out / "classic", tile_size=512)}
        det.tile_budget_px = lambda: 300_000  # type: ignore[method-assign]  # forces 6 tiles and real seams
        res["seams"] = analyze_scene(scene, det, out / "seams")
    finally:
        scene.close()
    return det, whole, res


def test_whole_tile_is_the_whole_image_forward_pass(runs):
    _, whole, res = runs
    assert res["cover"].meta["tiles"] == 1 and res["classic"].meta["tiles"] == 9
    np.testing.assert_allclose(_heatmap(res["cover"].heatmap_path), whole, atol=1e-4)


def test_seams_of_a_cover_carry_the_whole_image_values(runs):
    """Tolerance: max |Δ| ≤ 0.1 % of the heatmap's range on seam rows/columns and everywhere (measured 0.05 %)."""
    _, whole, res = runs
    r = res["seams"]
    assert r.meta["tiles"] == 6 and r.meta["tile_shape"] == [480, 616]
    a = _heatmap(r.heatmap_path)
    span = float(np.percentile(whole, 99.9) - np.percentile(whole, 0.1))
    ov = r.meta["overlap"]
    rows = sorted({w.row_off for w in plan_tiles(1024, 1024, 512, ReceptiveField(99, 8, 0), budget_px=300_000).windows})
    assert len(rows) == 3
    for r0 in rows[1:]:  # the middle of each overlap is where the stitcher switches tiles
        seam = slice(r0 + ov // 2 - 8, r0 + ov // 2 + 8)
        assert float(np.abs(a[seam] - whole[seam]).max()) <= 1e-3 * span
    assert float(np.abs(a - whole).max()) <= 1e-3 * span


def test_cover_matches_the_classic_grid_within_tolerance(runs):
    """Against the classic grid (whose seams blend tile-edge artefacts): correlation > 0.9999, finding areas
    IoU > 0.95, calibrated image score within 5 %, the same number of findings ± 10 %."""
    det, _, res = runs
    new, old = res["cover"], res["classic"]
    a, b = _heatmap(new.heatmap_path), _heatmap(old.heatmap_path)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9999
    thr = det.calibration.threshold
    fa, fb = a >= thr, b >= thr
    assert fa.sum() > 1000 and (fa & fb).sum() / (fa | fb).sum() > 0.95
    assert abs(new.image_score - old.image_score) <= 0.05 * max(abs(old.image_score), 1.0)
    assert abs(len(new.findings) - len(old.findings)) <= max(1, len(old.findings) // 10)


def test_hsc_keeps_its_tile_size_and_local_maps_get_a_budget(shared_data):
    """Saliency maps (HSC) depend on the tile: no budget. FCDD and feature matching maps are local: a budget."""
    path = MODELS / "hsc-vgg16.pt"
    if not path.is_file():
        pytest.skip(f"model not in this checkout: {path}")
    assert Detector.load(path, device="cpu").tile_budget_px() is None
    for name in ("fcdd-vgg16.pt", "patchcore-vgg16.pt"):
        det = Detector.load(MODELS / name, device="cpu")
        assert det.tile_budget_px() == (CPU_BUDGET_PX if det.amp else CPU_BUDGET_PX // 2)  # fp32: twice the memory


def test_feature_matching_seams_carry_the_whole_image_values(shared_data, tmp_path):
    """The default model (PatchCore: conv trunk + kNN per cell) on a 768x512 crop cut into tiles by a small
    budget gives the whole-image forward pass's heatmap, seams included (tolerance 0.2 % of the range; measured
    0.1 %: the EDGE_WEIGHT share of a tile edge's value). Dense tiles (step < receptive field) also check that a
    pixel near the image border keeps the border tile's value."""
    torch.set_num_threads(2)
    det = Detector.load(MODELS / "patchcore-vgg16.pt", device="cpu", precision="fp32")
    src = open_scene(need(shared_data / JOPLIN_POST))
    try:
        rgb, _ = src.read(Window(0, 0, 768, 512))
    finally:
        src.close()
    path = tmp_path / "crop.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    whole = np.asarray(det.calibration.pixel(det.predict(rgb[None])[0][0]))
    det.tile_budget_px = lambda: 160_000  # type: ignore[method-assign]  # forces real seams
    scene = open_scene(path)
    try:
        res = analyze_scene(scene, det, tmp_path / "out")
    finally:
        scene.close()
    assert res.meta["tiles"] >= 4
    span = float(np.percentile(whole, 99.9) - np.percentile(whole, 0.1))
    assert float(np.abs(_heatmap(res.heatmap_path) - whole).max()) <= 2e-3 * span
