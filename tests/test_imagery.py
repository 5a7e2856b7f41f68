"""open_scene on the real GeoTIFFs of ../shared/data, a large generated raster, threads and placement."""

from __future__ import annotations

import json
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window
from shapely.geometry import shape

from core.errors import GeoreferenceError, InputError
from core.geo import georef as geo
from core.imagery.reader import open_scene, place_scene, place_scene_bounds
from core.types import GeoRef
from tests.support.data import need

JOPLIN = Path("geotiff/joplin_tornado_xview2deploy")


def _independent_bounds(path: Path) -> tuple[float, float, float, float]:
    """WGS84 bounds straight from the file with pyproj (no core code involved)."""
    with rasterio.open(path) as ds:
        left, bottom, right, top = ds.bounds
        crs = ds.crs.to_string()
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return tr.transform_bounds(left, bottom, right, top, densify_pts=21)


@pytest.fixture(scope="module")
def footprint_centroids(shared_data: Path) -> np.ndarray:
    path = need(shared_data / JOPLIN / "vector" / "joplin.geojson")
    data = json.loads(path.read_text())
    return np.array([shape(f["geometry"]).centroid.coords[0] for f in data["features"]])


@pytest.mark.parametrize(("sub", "crs"), [("post", "EPSG:4326"), ("pre", "EPSG:26915"),
                                          ("chips_aligned/pre", "EPSG:32615"), ("chips_aligned/post", "EPSG:32615")])
def test_joplin_tiles_land_on_their_building_footprints(shared_data: Path, footprint_centroids: np.ndarray,
                                                        sub: str, crs: str) -> None:
    tiles = sorted(need(shared_data / JOPLIN / sub).glob("*.tif"))
    assert tiles
    for tile in tiles:
        scene = open_scene(tile)
        assert scene.kind == "geotiff" and (scene.width, scene.height) == (1024, 1024)
        assert scene.georef is not None and scene.georef.crs == crs and scene.georef.method == "raster"
        assert not scene.georef.approximate
        bounds = geo.bounds_wgs84(scene.georef, scene.width, scene.height)
        np.testing.assert_allclose(bounds, _independent_bounds(tile), atol=1e-9)
        w, s, e, n = bounds
        lon, lat = footprint_centroids[:, 0], footprint_centroids[:, 1]
        inside = int(((lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)).sum())
        assert inside >= 50, f"{tile.name}: only {inside} building centroids inside its bounds"
        assert 0.5 < scene.gsd_m < 0.75
        scene.close()


@pytest.mark.parametrize(("a", "b"), [("pre/tile_337-9136.tif", "chips_aligned/pre/0_pre.tif"),
                                      ("post/tile_31500-5137.tif", "chips_aligned/post/0_post.tif")])
def test_joplin_tiles_in_different_crss_show_the_same_ground(shared_data: Path, a: str, b: str) -> None:
    """Sample both tiles at the same lon/lat grid: pixels correlate, and far less once shifted by 10 m."""
    sa, sb = open_scene(need(shared_data / JOPLIN / a)), open_scene(need(shared_data / JOPLIN / b))
    ba, bb = geo.bounds_wgs84(sa.georef, 1024, 1024), geo.bounds_wgs84(sb.georef, 1024, 1024)
    w, s, e, n = max(ba[0], bb[0]), max(ba[1], bb[1]), min(ba[2], bb[2]), min(ba[3], bb[3])
    lon, lat = (g.ravel() for g in np.meshgrid(np.linspace(w, e, 82)[5:-5], np.linspace(s, n, 82)[5:-5]))

    def grey_at(scene, lons, lats):  # noqa: ANN001, ANN202
        c, r = geo.lonlat_to_pixel(scene.georef, lons, lats)
        img = scene.read()[0].mean(axis=2)
        return img[np.clip(r.astype(int), 0, 1023), np.clip(c.astype(int), 0, 1023)]

    ga = grey_at(sa, lon, lat)
    aligned = np.corrcoef(ga, grey_at(sb, lon, lat))[0, 1]
    shifted = np.corrcoef(ga, grey_at(sb, lon + 10 / 88_800, lat))[0, 1]  # ~10 m east at 37°N
    assert aligned > 0.75 and aligned > shifted + 0.3, (aligned, shifted)


def test_naip_rgbn_drops_nir(shared_data: Path) -> None:
    path = need(shared_data / "geotiff/opengeos_naip/m_4709963_se_14_1_20200831.tif")
    scene = open_scene(path)
    assert scene.georef.crs == "EPSG:26914" and scene.gsd_m == pytest.approx(5.0, rel=0.01)
    assert scene.meta["bands"]["used"] == [1, 2, 3] and "NIR" in scene.meta["bands"]["note"]
    rgb, valid = scene.read(Window(200, 100, 256, 128))
    assert rgb.dtype == np.uint8 and rgb.shape == (128, 256, 3) and valid.shape == (128, 256)
    with rasterio.open(path) as ds:
        ref = ds.read([1, 2, 3], window=Window(200, 100, 256, 128)).transpose(1, 2, 0)
    np.testing.assert_array_equal(rgb, ref)


def test_webodm_rgba_alpha_becomes_the_mask(shared_data: Path) -> None:
    path = need(shared_data / "geotiff/webodm/orthophoto.tif")
    scene = open_scene(path)
    rgb, valid = scene.read()
    with rasterio.open(path) as ds:
        alpha = ds.read(4)
        ref = ds.read([1, 2, 3]).transpose(1, 2, 0)
    np.testing.assert_array_equal(valid, alpha > 0)
    assert 0 < (~valid).sum() < valid.size  # some, not all, transparent
    np.testing.assert_array_equal(rgb[valid], ref[valid])
    assert scene.meta["bands"]["alpha"] == 4 and scene.georef.crs == "EPSG:32615"


def test_landsat_nodata_zero_is_masked(shared_data: Path) -> None:
    path = need(shared_data / "geotiff/rasterio/RGB.byte.tif")
    scene = open_scene(path)
    rgb, valid = scene.read()
    assert rgb.shape == (718, 791, 3)
    with rasterio.open(path) as ds:
        data = ds.read()
    np.testing.assert_array_equal(valid, (data != 0).any(axis=0))  # invalid = nodata in every band
    assert 0.5 < valid.mean() < 0.8
    assert scene.georef.crs == "EPSG:32618" and scene.gsd_m == pytest.approx(300, rel=0.01)
    w, s, e, n = geo.bounds_wgs84(scene.georef, scene.width, scene.height)
    assert -79 < w < e < -76 and 23 < s < n < 26  # the Bahamas


@pytest.mark.parametrize(("rel", "crs", "lonlat", "gsd"), [
    ("geotiff/rasterio/cogeo.tif", "EPSG:3857", (128.6, 37.6), 0.47),  # Pyeongchang, 0.6 m Web Mercator
    ("geotiff/deepforest_pypi/OSBS_029.tif", "EPSG:32617", (-82.0, 29.7), 0.1),  # Florida, 10 cm
    ("geotiff/localtileserver_pypi/landsat7.tif", "EPSG:3857", (-122.3, 37.8), 23.7),  # SF Bay
])
def test_other_real_rasters(shared_data: Path, rel: str, crs: str, lonlat: tuple[float, float], gsd: float) -> None:
    scene = open_scene(need(shared_data / rel))
    assert scene.kind == "geotiff" and scene.georef.crs == crs
    assert scene.gsd_m == pytest.approx(gsd, rel=0.05)
    w, s, e, n = geo.bounds_wgs84(scene.georef, scene.width, scene.height)
    assert w - 0.5 < lonlat[0] < e + 0.5 and s - 0.5 < lonlat[1] < n + 0.5
    rgb, valid = scene.read(Window(0, 0, 64, 64))
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3)
    full, fvalid = scene.read()
    assert 20 < full[fvalid].mean() < 230 and full[fvalid].std() > 5  # a real picture, not a flat fill
    scene.close()


def test_windows_outside_the_image_raise_value_error(shared_data: Path) -> None:
    scene = open_scene(need(shared_data / "geotiff/rasterio/RGB.byte.tif"))
    for bad in (Window(0, -1, 10, 10), Window(0, 0, 10, 719), Window(780, 700, 20, 10), Window(0, 0, 5, 0)):
        with pytest.raises(ValueError):
            scene.read(bad)


@pytest.fixture(scope="module")
def big_raster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6000x6000 RGB tiled GeoTIFF whose pixel values encode their position; nodata=1 (never used)."""
    path = tmp_path_factory.mktemp("big") / "big.tif"
    size = 6000
    prof = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8", "crs": "EPSG:32615",
            "transform": Affine(0.5, 0.0, 366000.0, 0.0, -0.5, 4104000.0), "tiled": True, "blockxsize": 512,
            "blockysize": 512, "compress": "deflate", "predictor": 2, "zlevel": 1, "nodata": 1}
    cols = np.arange(size)[None, :]
    with rasterio.open(path, "w", **prof) as ds:
        for r in range(0, size, 512):
            h = min(512, size - r)
            rows = np.arange(r, r + h)[:, None]
            ds.write(_pattern(rows, cols), window=Window(0, r, size, h))
    return path


def _pattern(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    shape = np.broadcast_shapes(rows.shape, cols.shape)
    r = np.broadcast_to(cols % 251 + 2, shape)  # >= 2: never nodata
    g = np.broadcast_to(rows % 251 + 2, shape)
    b = (rows // 256 * 7 + cols // 256 * 3) % 250 + 2
    return np.stack([r, g, np.broadcast_to(b, shape)]).astype(np.uint8)


def test_large_raster_opens_without_reading_it_whole(big_raster: Path) -> None:
    tracemalloc.start()
    t0 = time.perf_counter()
    scene = open_scene(big_raster)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (scene.width, scene.height) == (6000, 6000)
    assert elapsed < 3.0, f"open took {elapsed:.2f} s"
    assert peak < 25e6, f"open allocated {peak / 1e6:.0f} MB (the raster is 108 MB)"
    tracemalloc.start()
    rgb, valid = scene.read(Window(5123, 4321, 300, 256))
    _, peak_read = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_read < 10e6
    expected = _pattern(np.arange(4321, 4321 + 256)[:, None], np.arange(5123, 5123 + 300)[None, :])
    np.testing.assert_array_equal(rgb, expected.transpose(1, 2, 0))
    assert valid.all()
    scene.close()


def test_raster_reads_are_thread_safe(big_raster: Path) -> None:
    scene = open_scene(big_raster)
    windows = [Window(c, r, 200, 200) for r in range(0, 5800, 1100) for c in range(0, 5800, 1300)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(scene.read, windows))
    for w, (rgb, _) in zip(windows, results, strict=True):
        rows, cols = w.toranges()
        exp = _pattern(np.arange(*rows)[:, None], np.arange(*cols)[None, :])
        np.testing.assert_array_equal(rgb, exp.transpose(1, 2, 0))
    scene.close()
    rgb, _ = scene.read(Window(0, 0, 8, 8))  # a closed source reopens lazily
    assert rgb.shape == (8, 8, 3)
    scene.close()


def test_place_scene_and_bounds(shared_data: Path) -> None:
    scene = open_scene(need(shared_data / "drone/dronetm_cc_by/freetown-1-example.jpg"))
    assert scene.georef is None
    placed = place_scene(scene, center_lat=8.4657, center_lon=-13.2317, gsd_m=0.05, yaw_deg=15)
    assert placed.georef.method == "user" and placed.georef.approximate and placed.gsd_m == 0.05
    lon, lat = geo.pixel_to_lonlat(placed.georef, scene.width / 2, scene.height / 2)
    assert float(lat) == pytest.approx(8.4657, abs=1e-9) and float(lon) == pytest.approx(-13.2317, abs=1e-9)
    assert geo.gsd_m(placed.georef, scene.width, scene.height) == pytest.approx(0.05, rel=3e-3)
    assert scene.georef is None  # the original is untouched
    boxed = place_scene_bounds(scene, -13.233, 8.464, -13.230, 8.467)
    np.testing.assert_allclose(geo.bounds_wgs84(boxed.georef, scene.width, scene.height),
                               (-13.233, 8.464, -13.230, 8.467), atol=1e-12)
    with pytest.raises(GeoreferenceError):
        place_scene_bounds(scene, -13.23, 8.464, -13.233, 8.467)
    np.testing.assert_array_equal(placed.read()[0], scene.read()[0])


def test_georef_argument_overrides(shared_data: Path) -> None:
    g = GeoRef("EPSG:32615", Affine(0.5, 0.0, 366000.0, 0.0, -0.5, 4104000.0))
    scene = open_scene(need(shared_data / "drone/dronetm_cc_by/agung-2-example.jpg"), georef=g, name="agung")
    assert scene.name == "agung" and scene.georef.method == "user" and scene.georef.approximate
    assert scene.gsd_m == pytest.approx(0.5, rel=3e-3)
    with pytest.raises(GeoreferenceError):
        open_scene(need(shared_data / "drone/dronetm_cc_by/agung-2-example.jpg"),
                   georef=GeoRef("EPSG:4326", Affine(1.0, 0.0, 170.0, 0.0, -1.0, 45.0)))


def _uint16_raster(path: Path, data: np.ndarray, nodata: int | None = 0) -> Path:
    prof = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1, "dtype": "uint16",
            "crs": "EPSG:32615", "transform": Affine(0.5, 0.0, 366000.0, 0.0, -0.5, 4104000.0), "nodata": nodata,
            "tiled": True, "blockxsize": 256, "blockysize": 256}
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(data[None])
    return path


def test_huge_raster_without_overviews_is_sampled_by_a_window_grid(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from core.imagery import raster as imagery_raster
    monkeypatch.setattr(imagery_raster, "DECIMATE_MAX_PIXELS", 0)  # treat a 1500² raster like a 40000² one
    monkeypatch.setattr(imagery_raster, "SAMPLE_SIDE", 64)
    values = np.random.default_rng(5).integers(100, 4000, (1500, 1500)).astype(np.uint16)
    scene = open_scene(_uint16_raster(tmp_path / "u16.tif", values))
    (lo, hi), = scene.meta["stretch"]
    ref_lo, ref_hi = np.percentile(values, [2, 98])
    assert lo == pytest.approx(ref_lo, rel=0.05) and hi == pytest.approx(ref_hi, rel=0.05)


def test_thin_valid_strip_is_not_declared_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.imagery import raster as imagery_raster
    monkeypatch.setattr(imagery_raster, "DECIMATE_MAX_PIXELS", 0)
    monkeypatch.setattr(imagery_raster, "SAMPLE_SIDE", 64)
    values = np.zeros((1500, 1500), np.uint16)
    values[:, 3:8] = 1500  # 5 px wide: missed by the window grid and by nearest-neighbour decimation
    scene = open_scene(_uint16_raster(tmp_path / "strip.tif", values))
    rgb, valid = scene.read(Window(0, 700, 12, 10))
    assert valid[:, 3:8].all() and not valid[:, :3].any() and not valid[:, 8:].any()
    empty = _uint16_raster(tmp_path / "empty.tif", np.zeros((1500, 1500), np.uint16))
    with pytest.raises(InputError, match="no valid pixels"):
        open_scene(empty)
