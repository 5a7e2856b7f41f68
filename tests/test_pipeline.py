"""The per-scene pipeline with a real (untrained, seeded) FCDD network on real imagery from ../shared/data."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from PIL import Image
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from shapely.geometry import box, shape

from core.detection import scene_grid as grid
from core.detection.calibration import Calibration
from core.detection.detector import Detector
from core.detection.pipeline import analyze_scene
from core.detection.scene_grid import plan_tiles, resample_factor
from core.errors import InputError
from core.geo import georef as geo
from core.i18n import say, use
from core.imagery.reader import open_scene
from core.imagery.sources import FrameSource
from core.models import ReceptiveField, build_model
from core.types import GeoRef, Scene
from tests.support.data import need

torch.set_num_threads(1)
JOPLIN = "geotiff/joplin_tornado_xview2deploy"


@pytest.fixture(scope="module")
def detector(shared_data):
    """An untrained fcdd-resnet18 (seeded), calibrated on a real pre-event Joplin tile as its 'normal' data."""
    torch.manual_seed(0)
    det = Detector.from_model(build_model("fcdd-resnet18"), precision="fp32")
    pre = open_scene(need(shared_data / JOPLIN / "pre" / "tile_337-9136.tif"))
    rgb, _ = pre.read(Window(0, 0, 1024, 1024))
    pre.close()
    tiles = np.stack([rgb[r:r + 512, c:c + 512] for r in (0, 512) for c in (0, 512)])
    maps, scores = det.predict(tiles)
    det.calibration = Calibration.fit(maps, scores)
    return det


@pytest.fixture(scope="module")
def joplin_run(detector, shared_data, tmp_path_factory):
    path = need(shared_data / JOPLIN / "post" / "tile_31500-5137.tif")
    scene = open_scene(path)
    calls = []
    out = tmp_path_factory.mktemp("joplin")
    try:
        res = analyze_scene(scene, detector, out, progress=lambda d, t: calls.append((d, t)), batch_size=4)
    finally:
        scene.close()
    return path, res, calls, out


def test_joplin_heatmap_keeps_crs_transform_and_shape(joplin_run):
    path, res, _, out = joplin_run
    assert res.heatmap_path == out / "tile_31500-5137_heatmap.tif"
    with rasterio.open(path) as src, rasterio.open(res.heatmap_path) as hm:
        assert hm.crs == src.crs and hm.transform == src.transform
        assert (hm.width, hm.height, hm.count, hm.dtypes[0]) == (src.width, src.height, 1, "float32")
        a = hm.read(1)
        tags = hm.tags()
    assert np.isfinite(a).all()  # no nodata in this tile
    assert float(tags["threshold"]) == pytest.approx(res.meta["threshold"])
    assert float(tags["image_score"]) == pytest.approx(res.image_score)
    assert float(tags["stat_max"]) == pytest.approx(float(a.max()))
    assert res.overlay_path == out / "tile_31500-5137_overlay.png"
    with Image.open(res.overlay_path) as im:
        assert im.size == (1024, 1024) and im.mode == "RGBA"
    assert sorted(p.name for p in out.iterdir()) == ["tile_31500-5137_heatmap.tif", "tile_31500-5137_overlay.png"]


def test_joplin_findings_lie_inside_the_tile(joplin_run, detector):
    path, res, _, _ = joplin_run
    with rasterio.open(path) as src:
        georef = GeoRef(crs=src.crs.to_string(), transform=src.transform)
    west, south, east, north = geo.bounds_wgs84(georef, 1024, 1024)
    assert res.bounds_wgs84 == pytest.approx((west, south, east, north))
    assert res.findings, "the seeded untrained network flags some regions above the calibrated threshold"
    tile = box(west, south, east, north).buffer(1e-9)
    for f in res.findings:
        assert tile.contains(shape(f.geometry))
        assert west <= f.centroid_lon <= east and south <= f.centroid_lat <= north
        assert f.mgrs.startswith("15S") and f.area_m2 > 0 and f.threshold == round(detector.calibration.threshold, 2)
        assert f.model_name == detector.name and f.source_name == "tile_31500-5137.tif"
        assert f.source_gsd == pytest.approx(res.gsd_m) and 0.4 < res.gsd_m < 0.8
    assert [f.id for f in res.findings] == [f"tile_31500-5137-F{i:03d}" for i in range(1, len(res.findings) + 1)]
    conf = [f.confidence for f in res.findings]  # monotonic in the grading statistic the ids are ordered by
    assert conf == sorted(conf, reverse=True)


def test_joplin_score_verdict_timing_progress(joplin_run, detector):
    _, res, calls, _ = joplin_run
    assert np.isfinite(res.image_score)
    assert res.verdict == ("anomalous" if res.findings else "normal")  # detection.verdict: one rule with the counts
    t = res.meta["timing"]
    # FCDD is tile-invariant: the whole 1024² tile is one forward pass (no pixel computed twice)
    assert res.meta["tiles"] == t["tiles"] == 1 and t["batches"] == 1 and res.meta["tile_shape"] == [1024, 1024]
    assert 0 < t["model_s"] <= t["total_s"] and 0 <= t["model_share"] <= 1
    assert calls == [(1, 1)]
    assert res.meta["resample"] is None and res.meta["model"]["arch"] == "fcdd-resnet18"
    assert res.to_dict()["findings"][0]["id"] == res.findings[0].id


def test_aider_jpeg_gives_plain_tiff_and_findings_without_coordinates(detector, shared_data, tmp_path):
    path = need(shared_data / "aider" / "fire" / "fire_image0001.jpg")
    scene = open_scene(path)
    assert scene.georef is None
    res = analyze_scene(scene, detector, tmp_path, threshold=0.5)
    assert (res.width, res.height) == (332, 359)
    assert res.meta["tile_size"] == 384  # smaller than a tile: one tile rounded up to 32 px, padded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(res.heatmap_path) as hm:
            assert hm.crs is None and (hm.width, hm.height) == (332, 359)
            assert np.isfinite(hm.read(1)).all()  # padding never leaks in as NaN or values outside the image
    assert res.bounds_wgs84 is None and res.georef is None
    assert res.findings
    for f in res.findings:
        assert f.geometry is None and f.centroid_lat is None and f.mgrs is None and f.area_m2 is None
        c0, r0, c1, r1 = f.bbox_px
        assert 0 <= c0 < c1 <= 332 and 0 <= r0 < r1 <= 359


def _nodata_tile(shared_data, tmp_path):
    src_path = need(shared_data / JOPLIN / "post" / "tile_32524-6161.tif")
    with rasterio.open(src_path) as src:
        rgb = src.read(window=Window(0, 0, 640, 600))
        prof = {"driver": "GTiff", "width": 640, "height": 600, "count": 3, "dtype": "uint8", "crs": src.crs,
                "transform": src.transform, "nodata": 0}  # the window starts at (0, 0): same transform
    rgb[:, 200:400, 100:350] = 0  # a nodata hole (all bands = nodata)
    p = tmp_path / "holed.tif"
    with rasterio.open(p, "w", **prof) as ds:
        ds.write(rgb)
    return p


def test_nodata_areas_get_nan_and_no_findings(detector, shared_data, tmp_path):
    scene = open_scene(_nodata_tile(shared_data, tmp_path))
    res = analyze_scene(scene, detector, tmp_path / "out", threshold=0.3)  # low: findings nearly everywhere
    with rasterio.open(res.heatmap_path) as hm:
        a = hm.read(1)
    assert np.isnan(a[200:400, 100:350]).all() and np.isfinite(a[:200]).all()
    assert np.isnan(a).sum() == 200 * 250
    assert res.findings
    # outlines follow pixel edges, so they may touch the hole's border but never cover its inside
    hole_ll = box(*geo.pixel_to_lonlat(scene.georef, 101, 399), *geo.pixel_to_lonlat(scene.georef, 349, 201))
    for f in res.findings:
        assert shape(f.geometry).intersection(hole_ll).area < 1e-3 * hole_ll.area
    around = [f for f in res.findings if shape(f.geometry).convex_hull.contains(hole_ll)]
    assert all(len(f.geometry["coordinates"]) > 1 for f in around)  # a region around the hole has it as a hole


def test_seams_vanish_on_a_constant_image(detector, tmp_path):
    """16 tiles of a constant image blend into a constant heatmap: no grid where the tiles meet."""
    p = tmp_path / "const.png"
    Image.fromarray(np.full((1300, 1400, 3), (90, 120, 60), np.uint8)).save(p)
    res = analyze_scene(open_scene(p), detector, tmp_path, threshold=100.0, tile_size=512)  # the classic grid
    assert res.meta["tiles"] == 12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(res.heatmap_path) as hm:
            a = hm.read(1)
    maps, _ = detector.predict(np.full((1, 512, 512, 3), (90, 120, 60), np.uint8))
    one = np.asarray(detector.calibration.pixel(maps[0]))
    level = float(one[256, 256])
    tile_artefact = float(np.abs(one - level).max())  # how far a single tile's own border strays
    inner = a[64:-64, 64:-64]  # away from the image's outer border (no neighbour tile there)
    dev = float(np.abs(inner - level).max())
    assert tile_artefact > 0.1 * abs(level)  # the network does have border artefacts to hide...
    assert dev < 0.02 * tile_artefact  # ...and the blend hides them where tiles meet


def test_resampling_to_the_model_gsd_maps_back_to_the_scene_grid(detector, shared_data, tmp_path):
    path = need(shared_data / JOPLIN / "post" / "tile_33548-6161.tif")
    coarse = Detector.from_model(detector.net, detector.calibration, meta={"gsd_m": 1.2, "arch": "fcdd-resnet18"})
    scene = open_scene(path)
    res = analyze_scene(scene, coarse, tmp_path / "r", threshold=1.0)
    rs = res.meta["resample"]
    assert rs["factor"] == pytest.approx(scene.gsd_m / 1.2) and rs["grid"] == [512, 512]
    assert res.meta["tiles"] == 1
    with rasterio.open(path) as src, rasterio.open(res.heatmap_path) as hm:
        assert hm.transform == src.transform and (hm.width, hm.height) == (1024, 1024)
        a = hm.read(1)
    assert np.isfinite(a).all()
    native = analyze_scene(scene, coarse, tmp_path / "n", threshold=1.0, resample_to_model_gsd=False)
    assert native.meta["resample"] is None and native.meta["tiles"] == 1  # one whole-image tile
    scene.close()


def test_output_names_are_safe_and_failures_leave_nothing(detector, tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (300, 700, 3), dtype=np.uint8)
    scene = Scene(name="../../etc/피해 passwd.jpg", width=700, height=300, source=FrameSource(rgb))
    res = analyze_scene(scene, detector, tmp_path / "o", threshold=5.0)
    assert res.heatmap_path.parent == tmp_path / "o" and res.overlay_path.parent == tmp_path / "o"
    assert ".." not in res.heatmap_path.name and "/" not in res.heatmap_path.name
    assert res.heatmap_path.name.endswith("_heatmap.tif") and res.heatmap_path.is_file()

    class DiskFails:
        """A real frame source whose disk goes away after two reads."""

        def __init__(self):
            self.inner, self.n = FrameSource(rgb), 0

        def read(self, win):
            self.n += 1
            if self.n > 2:
                raise InputError("the file became unreadable during the analysis; check the disk and retry")
            return self.inner.read(win)

        def close(self):
            pass

    bad = Scene(name="bad.jpg", width=700, height=300, source=DiskFails())
    with pytest.raises(InputError, match="unreadable"):
        analyze_scene(bad, detector, tmp_path / "f", tile_size=128)
    assert list((tmp_path / "f").iterdir()) == []
    with pytest.raises(InputError, match="threshold"):
        analyze_scene(scene, detector, tmp_path / "g", threshold=-1)
    with pytest.raises(InputError, match="grading scale"):
        analyze_scene(scene, detector, tmp_path / "g", grade_scale="nope")


def test_plan_tiles_aligns_offsets_to_the_stride():
    rf = ReceptiveField(r=99.0, j=8.0, s=0.0)
    p = plan_tiles(2000, 3000, 512, rf)
    assert p.tile == 512 and p.overlap == 104 and (p.tile - p.overlap) % 8 == 0
    assert all(w.row_off % 8 == 0 for w in p.windows[:-1]) and p.factor == 1.0
    small = plan_tiles(200, 90, 512, rf)
    assert small.tile == 224 and len(small.windows) == 1 and small.windows[0] == Window(0, 0, 90, 200)
    big_rf = plan_tiles(5000, 5000, 256, ReceptiveField(r=400.0, j=16.0, s=0.0))
    assert big_rf.overlap == 128  # capped at half a tile
    half = plan_tiles(1000, 800, 512, rf, factor=0.5)
    assert (half.grid_h, half.grid_w) == (500, 400) and half.tile == 512
    with pytest.raises(InputError):
        plan_tiles(100, 100, 8, rf)


def test_resample_factor_rules():
    g = GeoRef(crs="EPSG:32615", transform=Affine(0.3, 0.0, 360000.0, 0.0, -0.3, 4100000.0))

    def sc(gsd, georef=g, size=1000):
        return Scene(name="s", width=size, height=size, source=FrameSource(np.zeros((1, 1, 3), np.uint8)),
                     georef=georef, gsd_m=gsd)

    assert resample_factor(sc(0.3), 0.3)[0] == 1.0
    assert resample_factor(sc(0.4), 0.3)[0] == 1.0  # within 1.5x: left alone
    assert resample_factor(sc(0.15), 0.6)[0] == pytest.approx(0.25)
    assert resample_factor(sc(0.9), 0.3)[0] == pytest.approx(3.0)
    f, warn = resample_factor(sc(30.0), 0.3)
    assert f == 1.0 and "coarser" in say(warn[0])
    with use("ko"):  # stored without a language, read in the reader's
        assert "coarser" not in say(warn[0]) and "30.00" in say(warn[0])
    assert resample_factor(sc(0.15), 0.6, enabled=False)[0] == 1.0
    assert resample_factor(sc(0.15, georef=None), 0.6)[0] == 1.0
    # a photo (no georeferencing) and a model that learnt from photos scaled to a 128-px short side
    assert resample_factor(sc(None, georef=None), None, frame_side=128)[0] == pytest.approx(0.128)
    assert resample_factor(sc(None, georef=None, size=150), None, frame_side=128)[0] == 1.0  # hardly larger
    assert resample_factor(sc(0.3), 0.3, frame_side=128)[0] == 1.0  # georeferenced: its GSD decides
    assert resample_factor(sc(0.15), None)[0] == 1.0
    f, warn = resample_factor(sc(0.01, size=200), 0.5)
    assert f * 200 == pytest.approx(grid.MIN_GRID_SIDE) and warn


def test_grid_reader_downsamples_in_strips_like_a_whole_image_resize(monkeypatch):
    yy, xx = np.mgrid[0:800, 0:600]
    rgb = np.stack([(yy * 0.3) % 256, (xx * 0.4) % 256, (yy + xx) * 0.1 % 256], -1).astype(np.uint8)
    scene = Scene(name="g", width=600, height=800, source=FrameSource(rgb))
    plan = plan_tiles(800, 600, 512, ReceptiveField(r=62, j=8, s=3.5), factor=0.25)
    monkeypatch.setattr(grid, "_STRIP_PX", 600 * 40)  # force 20 strips
    reader = grid.GridReader(scene, plan)
    got, valid = reader.read(Window(0, 0, 150, 200))
    ref = cv2.resize(rgb, (150, 200), interpolation=cv2.INTER_AREA)
    assert got.shape == (200, 150, 3) and valid.all()
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_model_gsd_recorded_or_from_one_scale_training_imagery() -> None:
    from core.detection.detector import DEFAULT_MODEL, Detector, model_gsd

    assert model_gsd({"gsd_m": 0.3}) == (0.3, "recorded at training")
    g, src = model_gsd({"training": {"normal": {"gsd_m_range": [0.4, 0.5]}}})
    assert abs(g - (0.4 * 0.5) ** 0.5) < 1e-12 and "0.40–0.50" in src
    assert model_gsd({"training": {"normal": {"gsd_m_range": [0.1, 0.6]}}}) == (None, "not recorded")  # mixed
    assert model_gsd({"training": {"normal": {"gsd_m_range": None}}}) == (None, "not recorded")
    assert model_gsd({"gsd_m": float("nan")}) == (None, "not recorded")
    if DEFAULT_MODEL.is_file():  # the bundled model was trained on 0.47-0.60 m overhead imagery
        det = Detector.load(device="cpu")
        assert 0.47 < det.gsd_m < 0.60 and det.info()["gsd_source"].startswith("training imagery")
