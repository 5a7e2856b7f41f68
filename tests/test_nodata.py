"""Unmarked black borders are nodata in every analysis, and the model never sees nodata as imagery
(core/imagery/nodata.py, core/detection/scene_grid.GridReader)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window
from shapely.geometry import box, shape

from core.detection.calibration import Calibration
from core.detection.detector import Detector
from core.detection.pipeline import analyze_scene
from core.detection.scene_grid import GridReader, plan_tiles
from core.imagery.nodata import black_nodata, edge_collar, fill_invalid_mean, unmarked_nodata
from core.imagery.reader import open_scene
from core.imagery.sources import FrameSource
from core.models import ReceptiveField, build_model
from core.types import Scene
from tests.support.data import need

CHIPS = "geotiff/joplin_tornado_xview2deploy/chips_aligned"


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A textured image with no exactly-black pixel (values 20..235)."""
    rng = np.random.default_rng(seed)
    return rng.integers(20, 236, (h, w, 3), dtype=np.uint8)


def _half_black(h: int = 256, w: int = 256) -> np.ndarray:
    rgb = _texture(h, w)
    rgb[:, w // 2:] = 0  # an unmarked nodata border: no nodata value, no alpha
    return rgb


def test_black_nodata_border(shared_data: Path) -> None:
    scene = open_scene(need(shared_data / "xbd/harvey/images/hurricane-harvey_00000224_post_disaster.png"))
    rgb, _ = scene.read()
    nod = black_nodata(rgb)
    assert 0.05 < nod.mean() < 0.4 and nod[0].all() and not nod[-1].any()  # the unmarked black top border
    dark = np.zeros((40, 40, 3), np.uint8)
    dark[::2, ::2] = 0
    dark[1::2, 1::2] = 5
    assert black_nodata(dark).sum() == 0  # isolated black pixels are not nodata


def test_a_photo_loses_only_an_edge_collar(shared_data: Path) -> None:
    """A night photo's real black (an AIDER fire frame, 1.6 % exactly black at its foot) stays imagery; a black
    collar around a photo (here added, 10 % of it) is nodata; black in the middle of a photo is imagery."""
    fire = open_scene(need(shared_data / "aider/fire/fire_image0001.jpg"))
    rgb, _ = fire.read()
    whole = Window(0, 0, fire.width, fire.height)
    assert black_nodata(rgb).mean() > 0.01 and not unmarked_nodata(fire, whole, rgb).any()
    framed = _texture(200, 200)
    framed[:20] = 0  # a letterbox along the top
    framed[90:130, 90:130] = 0  # 4 % black in the middle
    scene = Scene(name="framed.jpg", width=200, height=200, source=FrameSource(framed))
    nod = unmarked_nodata(scene, Window(0, 0, 200, 200), framed)
    assert nod[:20].all() and not nod[20:].any()
    assert np.array_equal(unmarked_nodata(scene, Window(10, 5, 50, 30), framed[5:35, 10:60]), nod[5:35, 10:60])
    assert not edge_collar(framed, min_share=0.2).any()  # a collar too small to count
    raster = Scene(name="framed.tif", width=200, height=200, kind="geotiff", source=FrameSource(framed))
    assert unmarked_nodata(raster, Window(0, 0, 200, 200), framed)[90:130, 90:130].all()  # rasters: every black


def test_fill_invalid_mean_fills_only_the_holes() -> None:
    rgb = _texture(8, 8)
    valid = np.ones((8, 8), bool)
    assert fill_invalid_mean(rgb, valid) is rgb  # nothing to fill: no copy
    valid[:, 4:] = False
    before = rgb.copy()
    out = fill_invalid_mean(rgb, valid)
    assert np.array_equal(rgb, before)  # the input is never written
    assert np.array_equal(out[:, :4], rgb[:, :4])
    mean = np.round(rgb[:, :4].reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    assert (out[:, 4:] == mean).all()
    assert fill_invalid_mean(rgb, np.zeros((8, 8), bool)) is rgb  # no valid pixel: nothing to take a colour from


@pytest.mark.parametrize("factor", [1.0, 0.5, 2.0])
def test_grid_reader_marks_black_borders_invalid_and_fills_them(factor: float) -> None:
    rgb = _half_black()
    scene = Scene(name="half.png", width=256, height=256, source=FrameSource(rgb))  # a photo: a collar
    plan = plan_tiles(256, 256, 128, ReceptiveField(r=40, j=8, s=0), factor)
    out, valid = GridReader(scene, plan).read(Window(0, 0, plan.grid_w, plan.grid_h))
    half = plan.grid_w // 2
    assert valid[:, : half - 2].all() and not valid[:, half + 2:].any()
    assert out[:, half + 2:].min() > 0  # the model is shown the valid pixels' colour, not a black edge
    assert np.ptp(out[:, half + 2:].reshape(-1, 3), axis=0).max() <= 1  # one flat colour


@pytest.fixture(scope="module")
def untrained_detector() -> Detector:
    """An untrained, seeded fcdd-resnet18 calibrated on textured imagery without black."""
    torch.manual_seed(0)
    det = Detector.from_model(build_model("fcdd-resnet18"), precision="fp32")
    maps, scores = det.predict(np.stack([_texture(256, 256, seed) for seed in range(1, 5)]))
    det.calibration = Calibration.fit(maps, scores)
    return det


def test_black_border_gets_no_heat_and_no_findings(untrained_detector: Detector, tmp_path: Path) -> None:
    scene = Scene(name="half.tif", width=256, height=256, kind="geotiff", source=FrameSource(_half_black()))
    res = analyze_scene(scene, untrained_detector, tmp_path, threshold=0.01)  # most valid pixels are above it
    with rasterio.open(res.heatmap_path) as ds:
        heat = ds.read(1, masked=True)
    assert heat.mask[:, 130:].all() and not heat.mask[:, :126].any()  # nodata in the heatmap, not "anomalous"
    assert res.findings, "the valid half should give findings at a threshold this low"
    black = box(130, 0, 256, 256)
    for f in res.findings:
        assert shape({"type": "Polygon", "coordinates": [f.polygon_px]}).intersection(black).area < 1.0


@pytest.mark.slow
def test_default_model_finds_nothing_on_a_black_border(shared_data: Path, tmp_path: Path) -> None:
    """A held-out Joplin pre-event chip, 59 % unmarked black border: the default model put 1,000 findings (the cap)
    on it while the border was scored as imagery; on the imagery itself it finds a handful."""
    from core.assets import DEFAULT_MODEL

    path = need(shared_data / CHIPS / "pre" / "1_pre.tif")
    det = Detector.load(str(need(DEFAULT_MODEL)), device="cpu")
    scene = open_scene(path)
    try:
        rgb, _ = scene.read()
        res = analyze_scene(scene, det, tmp_path)
    finally:
        scene.close()
    border = black_nodata(rgb)
    assert border.mean() > 0.5
    with rasterio.open(res.heatmap_path) as ds:
        heat = ds.read(1, masked=True)
    assert heat.mask[border].mean() > 0.99
    assert len(res.findings) <= 10, f"{len(res.findings)} findings on an intact pre-event chip"
    for f in res.findings:
        x0, y0, x1, y1 = (int(v) for v in f.bbox_px)
        assert border[y0:y1, x0:x1].mean() < 0.5


def test_pre_event_image_follows_the_same_rule() -> None:
    """The pre image of a pair is read with the same rule: a photo's letterbox is nodata, black inside it is not
    (it used to lose every exactly black patch, as a raster does)."""
    from core.change.coreg import PreOnGrid

    framed = _texture(200, 200, seed=7)
    framed[:20] = 0  # a letterbox along the top
    framed[90:130, 90:130] = 0  # real black in the middle
    post = Scene(name="post.jpg", width=200, height=200, source=FrameSource(_texture(200, 200)))
    pre = Scene(name="pre.jpg", width=200, height=200, source=FrameSource(framed))
    _rgb, valid = PreOnGrid(post, pre).read(Window(0, 0, 200, 200))
    assert not valid[:20].any() and valid[90:130, 90:130].all()
    raster = Scene(name="pre.tif", width=200, height=200, kind="geotiff", source=FrameSource(framed))
    _rgb, valid = PreOnGrid(post, raster).read(Window(0, 0, 200, 200))
    assert not valid[:20].any() and not valid[90:130, 90:130].any()
