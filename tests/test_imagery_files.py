"""open_scene on generated good, odd and broken files (written to tmp dirs, never committed)."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import ExifTags, Image, TiffImagePlugin
from pyproj import Transformer
from rasterio.control import GroundControlPoint
from rasterio.windows import Window

from core.errors import CoreError, ImageReadError, InputError
from core.geo import georef as geo
from core.i18n import say
from core.imagery import reader as imagery
from core.imagery.reader import open_scene

UTM = Affine(0.5, 0.0, 366000.0, 0.0, -0.5, 4104000.0)


def _tif(path: Path, data: np.ndarray, **kw: object) -> Path:
    """Write a (bands, h, w) array as a GeoTIFF; kw go to rasterio (crs, transform, nodata, photometric...)."""
    prof = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2],
            "dtype": data.dtype.name} | kw
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(data)
    return path


def _error(path: Path, kind: type[CoreError], match: str) -> CoreError:
    with pytest.raises(kind, match=match) as info:
        open_scene(path)
    assert isinstance(info.value, CoreError)
    return info.value


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------- unusable files


def test_missing_file_and_directory(tmp_path: Path) -> None:
    _error(tmp_path / "nope.jpg", InputError, "not found")
    _error(tmp_path, InputError, "not a file")


def test_zero_bytes(tmp_path: Path) -> None:
    p = tmp_path / "empty.tif"
    p.write_bytes(b"")
    _error(p, InputError, "empty")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    p = tmp_path / "photo.jpg"
    p.write_text("this is not a photo, it is a note\n")
    err = _error(p, ImageReadError, "not an image")
    assert "text" in str(err)


def test_truncated_jpeg(tmp_path: Path) -> None:
    full = tmp_path / "full.jpg"
    Image.fromarray(_noise(256, 256)).save(full, quality=90)
    p = tmp_path / "cut.jpg"
    p.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    _error(p, ImageReadError, "truncated")


def test_truncated_geotiff(tmp_path: Path) -> None:
    full = _tif(tmp_path / "full.tif", _noise(256, 256).transpose(2, 0, 1).copy(), crs="EPSG:32615", transform=UTM)
    p = tmp_path / "cut.tif"
    p.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])  # header intact, pixel data cut
    _error(p, ImageReadError, "truncated or corrupt")
    head = tmp_path / "head.tif"
    head.write_bytes(full.read_bytes()[:100])  # even the header is cut
    _error(head, ImageReadError, "cannot be read|truncated")


def test_one_pixel_png_is_too_small(tmp_path: Path) -> None:
    p = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(p)
    _error(p, InputError, r"too small to analyse, at least 32x32")
    q = _tif(tmp_path / "thin.tif", np.ones((3, 100, 31), np.uint8), crs="EPSG:32615", transform=UTM)
    _error(q, InputError, "too small")


def _png_header_only(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    err = _error(_png_header_only(tmp_path / "bomb.png", 20000, 10000), InputError, "tiled GeoTIFF")
    assert "200 megapixels" in str(err)


def test_frames_over_max_frame_pixels_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "big.png"
    Image.fromarray(_noise(64, 64)).save(p)
    monkeypatch.setattr(imagery, "MAX_FRAME_PIXELS", 4000)
    err = _error(p, InputError, "convert it to a tiled GeoTIFF")
    assert "64x64" in str(err)


def test_all_nodata_geotiff(tmp_path: Path) -> None:
    p = _tif(tmp_path / "void.tif", np.zeros((3, 64, 64), np.uint8), crs="EPSG:32615", transform=UTM, nodata=0)
    _error(p, InputError, "contains no valid pixels")
    q = _tif(tmp_path / "nan.tif", np.full((1, 64, 64), np.nan, np.float32), crs="EPSG:32615", transform=UTM)
    _error(q, InputError, "contains no valid pixels")


# --------------------------------------------------------------------------------------------- odd but readable


def test_palette_png_with_and_without_transparency(tmp_path: Path) -> None:
    idx = (np.arange(64 * 64).reshape(64, 64) % 4).astype(np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 250]
    im = Image.fromarray(idx, mode="P")
    im.putpalette(palette)
    im.save(tmp_path / "pal.png")
    im.save(tmp_path / "pal_t.png", transparency=3)
    lut = np.array(palette, np.uint8).reshape(4, 3)
    rgb, valid = open_scene(tmp_path / "pal.png").read()
    np.testing.assert_array_equal(rgb, lut[idx])
    assert valid.all()
    rgb, valid = open_scene(tmp_path / "pal_t.png").read()
    np.testing.assert_array_equal(valid, idx != 3)
    np.testing.assert_array_equal(rgb[valid], lut[idx][valid])


def test_la_png_alpha_is_the_mask(tmp_path: Path) -> None:
    arr = np.zeros((48, 40, 2), np.uint8)
    arr[..., 0] = 120
    arr[10:20, :, 1] = 255
    Image.fromarray(arr, mode="LA").save(tmp_path / "la.png")
    scene = open_scene(tmp_path / "la.png")
    rgb, valid = scene.read()
    assert rgb.shape == (48, 40, 3) and (rgb == 120).all()
    assert valid[10:20].all() and valid.sum() == 10 * 40


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    scene = open_scene(tmp_path / "cmyk.jpg")
    rgb, _ = scene.read()
    assert scene.meta["mode"] == "CMYK"
    assert rgb[..., 0].mean() > 230 and rgb[..., 1].mean() < 30 and rgb[..., 2].mean() < 30


def test_16bit_png_is_percentile_stretched(tmp_path: Path) -> None:
    values = (np.arange(64 * 64).reshape(64, 64) * 15 + 100).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    rgb, valid = open_scene(tmp_path / "deep.png").read()
    lo, hi = np.percentile(values, [2, 98])
    expected = np.clip((values - lo) * 255.0 / (hi - lo), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(rgb[..., 0].astype(int), expected.astype(int), atol=1)
    assert (rgb[..., 0] == rgb[..., 2]).all() and valid.all()
    assert (rgb[..., 0] == 0).mean() == pytest.approx(0.02, abs=0.005)  # 2 % clipped black, 2 % white
    assert (rgb[..., 0] == 255).mean() == pytest.approx(0.02, abs=0.005)


def test_float32_geotiff_with_nan_and_inf(tmp_path: Path) -> None:
    data = np.stack([np.linspace(-5, 5, 96 * 80, dtype=np.float32).reshape(96, 80)] * 3)
    data[0, 3, 4] = np.nan
    data[1, 50, 60] = np.inf
    data[2, 70, 10] = -np.inf
    p = _tif(tmp_path / "f.tif", data, crs="EPSG:32615", transform=UTM)
    scene = open_scene(p)
    assert scene.kind == "geotiff" and scene.meta["dtype"] == "float32" and len(scene.meta["stretch"]) == 3
    rgb, valid = scene.read()
    assert not valid[3, 4] and not valid[50, 60] and not valid[70, 10]
    assert valid.sum() == valid.size - 3
    assert rgb[valid].min() == 0 and rgb[valid].max() == 255
    # one mapping per scene: the same pixel reads the same through different windows
    a, _ = scene.read(Window(30, 40, 20, 20))
    b, _ = scene.read(Window(35, 45, 40, 40))
    np.testing.assert_array_equal(a[5:, 5:], b[:15, :15])
    np.testing.assert_array_equal(a, rgb[40:60, 30:50])


def test_uint16_single_band_geotiff_is_grey(tmp_path: Path) -> None:
    data = (np.arange(64 * 64, dtype=np.uint16).reshape(1, 64, 64) * 7)
    scene = open_scene(_tif(tmp_path / "g.tif", data, crs="EPSG:32615", transform=UTM))
    rgb, _ = scene.read()
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and np.all(np.diff(rgb[..., 0].ravel().astype(int)) >= 0)


def test_paletted_geotiff_expands_its_colour_map(tmp_path: Path) -> None:
    idx = (np.arange(40 * 40).reshape(1, 40, 40) % 3).astype(np.uint8)
    p = _tif(tmp_path / "pal.tif", idx, crs="EPSG:32615", transform=UTM, photometric="palette")
    with rasterio.open(p, "r+") as ds:
        ds.write_colormap(1, {0: (255, 0, 0, 255), 1: (0, 255, 0, 255), 2: (0, 0, 255, 255)})
    scene = open_scene(p)
    rgb, valid = scene.read()
    lut = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    np.testing.assert_array_equal(rgb, lut[idx[0]])
    assert valid.all() and "palette" in scene.meta["bands"]["note"]


def test_five_band_raster_picks_rgb_by_colour_interpretation(tmp_path: Path) -> None:
    data = np.stack([np.full((40, 40), v, np.uint8) for v in (10, 20, 30, 40, 50)])
    p = _tif(tmp_path / "ms.tif", data, crs="EPSG:32615", transform=UTM)
    from rasterio.enums import ColorInterp as CI
    with rasterio.open(p, "r+") as ds:
        ds.colorinterp = [CI.undefined, CI.blue, CI.green, CI.red, CI.undefined]
    scene = open_scene(p)
    rgb, _ = scene.read()
    assert tuple(rgb[0, 0]) == (40, 30, 20)
    assert scene.meta["bands"]["used"] == [4, 3, 2] and "ignored" in scene.meta["bands"]["note"]


def test_geotiff_without_crs_is_an_unreferenced_frame(tmp_path: Path) -> None:
    p = _tif(tmp_path / "plain.tif", _noise(64, 80).transpose(2, 0, 1).copy())
    scene = open_scene(p)
    assert scene.georef is None and scene.kind == "frame"
    assert any("no coordinate reference system" in w for w in map(say, scene.meta["warnings"]))
    np.testing.assert_array_equal(scene.read()[0], _noise(64, 80))
    # a float three-band TIFF Pillow cannot decode still opens, through rasterio
    q = _tif(tmp_path / "plainf.tif", np.random.default_rng(1).random((3, 50, 60)).astype(np.float32))
    fscene = open_scene(q)
    assert fscene.georef is None and fscene.kind == "frame" and fscene.read()[0].shape == (50, 60, 3)


def test_rotated_transform_is_kept_and_noted(tmp_path: Path) -> None:
    t = Affine.translation(366000, 4104000) @ Affine.rotation(20) @ Affine.scale(0.5, -0.5)
    scene = open_scene(_tif(tmp_path / "rot.tif", _noise(64, 64).transpose(2, 0, 1).copy(), crs="EPSG:32615",
                            transform=t))
    assert scene.georef is not None and scene.meta["transform_rotated"] is True
    np.testing.assert_allclose(tuple(scene.georef.transform), tuple(t))
    assert any("rotated" in w for w in map(say, scene.meta["warnings"]))
    assert scene.gsd_m == pytest.approx(0.5, rel=3e-3)
    lon, lat = geo.pixel_to_lonlat(scene.georef, 64, 64)
    x, y = t @ (64, 64)
    ref_lon, ref_lat = Transformer.from_crs("EPSG:32615", "EPSG:4326", always_xy=True).transform(x, y)
    assert float(lon) == pytest.approx(ref_lon, abs=1e-10) and float(lat) == pytest.approx(ref_lat, abs=1e-10)


def test_gcp_georeferenced_tiff(tmp_path: Path) -> None:
    p = _tif(tmp_path / "gcp.tif", _noise(64, 64).transpose(2, 0, 1).copy())
    gcps = [GroundControlPoint(row=r, col=c, x=366000 + 0.5 * c, y=4104000 - 0.5 * r)
            for r, c in ((0, 0), (0, 64), (64, 0), (64, 64))]
    with rasterio.open(p, "r+") as ds:
        ds.gcps = (gcps, rasterio.CRS.from_epsg(32615))
    scene = open_scene(p)
    assert scene.kind == "geotiff" and scene.georef.approximate and "control points" in scene.georef.note
    np.testing.assert_allclose(tuple(scene.georef.transform), tuple(UTM), atol=1e-6)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = _noise(48, 64)
    exif = Image.Exif()
    exif[274] = 6  # rotate 90° clockwise to display
    Image.fromarray(arr).save(tmp_path / "rot.png", exif=exif)
    scene = open_scene(tmp_path / "rot.png")
    assert (scene.width, scene.height) == (48, 64) and scene.meta["exif_orientation"] == 6
    np.testing.assert_array_equal(scene.read()[0], np.rot90(arr, k=-1))


def _gps_jpeg(path: Path, lat: object) -> Path:
    exif = Image.Exif()
    exif[272] = "FC6310"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update({1: "N", 2: (lat, 0.0, 0.0), 3: "W", 4: (94.0, 20.0, 55.5)})
    Image.fromarray(_noise(64, 64)).save(path, exif=exif)
    return path


@pytest.mark.parametrize("lat", [200.0, TiffImagePlugin.IFDRational(0, 0)])
def test_corrupt_gps_is_ignored_with_a_warning(tmp_path: Path, lat: object) -> None:
    scene = open_scene(_gps_jpeg(tmp_path / "gps.jpg", lat))
    assert scene.georef is None and "gps" not in scene.meta
    assert any("GPS" in w and "ignored" in w for w in map(say, scene.meta["warnings"]))
    rgb, valid = scene.read()
    assert rgb.shape == (64, 64, 3) and valid.all()


def test_content_not_extension_decides(tmp_path: Path) -> None:
    png_named_tif = tmp_path / "really_png.tif"
    Image.fromarray(_noise(40, 40)).save(png_named_tif, format="PNG")
    assert open_scene(png_named_tif).meta["format"] == "PNG"
    tif_named_jpg = _tif(tmp_path / "really_tif.jpg", _noise(40, 40).transpose(2, 0, 1).copy(), crs="EPSG:32615",
                         transform=UTM)
    assert open_scene(tif_named_jpg).kind == "geotiff"


def test_errors_carry_actionable_messages(tmp_path: Path) -> None:
    p = tmp_path / "x.jpg"
    p.write_bytes(b"%PDF-1.4 fake")
    assert "PDF" in str(_error(p, ImageReadError, "not an image"))
    assert math.isfinite(imagery.MAX_FRAME_PIXELS) and imagery.MAX_FRAME_PIXELS == 180_000_000


def test_damaged_block_in_the_middle_fails_the_read_not_the_process(tmp_path: Path) -> None:
    p = _tif(tmp_path / "tiles.tif", _noise(256, 256).transpose(2, 0, 1).copy(), crs="EPSG:32615", transform=UTM,
             tiled=True, blockxsize=64, blockysize=64, compress="deflate", interleave="pixel")
    with rasterio.open(p) as ds:
        offset = int(ds.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
    raw = bytearray(p.read_bytes())
    raw[offset:offset + 200] = b"\xff" * 200
    p.write_bytes(bytes(raw))
    scene = open_scene(p)  # header and last block are intact: opening stays instant
    scene.read(Window(0, 0, 64, 64))
    with pytest.raises(ImageReadError, match="damaged"):
        scene.read(Window(64, 64, 64, 64))
