"""Heatmap GeoTIFF writing (streamed, atomic, georeferenced), preview, colour map and overlay PNG."""

from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image

from core.detection.heatmap import BLOCK, LUT, HeatmapWriter, colorize, default_vmax, read_heatmap, write_overlay_png
from core.detection.stitching import Stitcher, blend_weights
from core.detection.tile_grid import grid_windows
from core.errors import InputError
from core.types import GeoRef

UTM = GeoRef(crs="EPSG:32615", transform=Affine(0.5, 0.0, 360000.0, 0.0, -0.5, 4100000.0))


def _field(h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f = np.sin(yy / 29) * np.cos(xx / 31) * 2
    f[10:40, 20:90] = np.nan
    return f


def _write_in_bands(path, f, georef, sizes=(1, 7, 300, 255, 1000), **kw):
    h, w = f.shape
    with HeatmapWriter(path, w, h, georef, **kw) as hw:
        r, i = 0, 0
        while r < h:
            n = min(sizes[i % len(sizes)], h - r)
            hw.write_rows(r, f[r:r + n])
            r, i = r + n, i + 1
    return hw


def test_writer_round_trip_with_crs_transform_and_format(tmp_path):
    f = _field(613, 517)
    out = tmp_path / "a_heatmap.tif"
    hw = _write_in_bands(out, f, UTM, tags={"threshold": 1.5})
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32615
        assert ds.transform == UTM.transform
        assert (ds.width, ds.height, ds.count, ds.dtypes[0]) == (517, 613, 1, "float32")
        assert ds.profile["tiled"] and ds.block_shapes[0] == (BLOCK, BLOCK)
        assert ds.compression.value.lower() == "deflate"
        assert ds.tags()["threshold"] == "1.5"
        assert np.isnan(ds.nodata)
        assert ds.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        got = ds.read(1)
    assert np.array_equal(np.isnan(got), np.isnan(f))
    assert np.allclose(got[~np.isnan(f)], f[~np.isnan(f)])
    hm = read_heatmap(out)
    assert hm.georef is not None and hm.georef.transform == UTM.transform and "32615" in hm.georef.crs
    assert np.allclose(hm.stats["mean"], np.nanmean(f), atol=1e-5)
    assert hm.stats["max"] == pytest.approx(np.nanmax(f), abs=1e-6)
    assert hw.preview is not None and hw.preview_scale == 1.0
    assert np.array_equal(np.isnan(hw.preview), np.isnan(f))
    assert [p.name for p in tmp_path.iterdir()] == ["a_heatmap.tif"]  # no temp file left behind
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # normal permissions, not the temp file's 0600


def test_plain_tiff_without_georef(tmp_path):
    f = _field(100, 80)
    out = tmp_path / "frame_heatmap.tif"
    _write_in_bands(out, f, None)
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning):
        ds = rasterio.open(out)
    with ds:
        assert ds.crs is None
        assert ds.transform.is_identity
    assert read_heatmap(out).georef is None


def test_preview_is_block_mean_and_bounded(tmp_path):
    h, w = 3000, 4500
    f = np.full((h, w), 2.0, np.float32)
    f[:1500] = 1.0
    f[:, -300:] = np.nan
    hw = _write_in_bands(tmp_path / "big.tif", f, UTM, preview_max=1000)
    p = hw.preview
    assert hw.preview_scale == 5 and p.shape == (600, 900) and max(p.shape) <= 1000
    assert np.allclose(p[:300, :840], 1.0) and np.allclose(p[300:, :840], 2.0)
    assert np.isnan(p[:, -60:]).all()
    hm = read_heatmap(tmp_path / "big.tif", preview_max=1000)
    assert hm.scores is None and hm.preview_scale == 5
    assert np.allclose(hm.preview, p, equal_nan=True)
    assert hw.heatmap().preview is p


def test_writer_is_atomic_on_error_and_on_missing_rows(tmp_path):
    out = tmp_path / "x.tif"
    with pytest.raises(RuntimeError, match="boom"), HeatmapWriter(out, 10, 10, UTM) as hw:
        hw.write_rows(0, np.zeros((5, 10), np.float32))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="incomplete"), HeatmapWriter(out, 10, 10, UTM) as hw:
        hw.write_rows(0, np.zeros((5, 10), np.float32))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="in order"), HeatmapWriter(out, 10, 10, UTM) as hw:
        hw.write_rows(3, np.zeros((5, 10), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_writer_as_stitcher_sink_streams_a_large_raster(tmp_path):
    """The stitcher hands bands straight to the writer; nothing full-size is ever allocated."""
    h, w, t, ov = 2100, 1500, 256, 32
    wt = blend_weights(t, t, ramp=ov)
    tile = np.full((t, t), 0.25, np.float32)
    with HeatmapWriter(tmp_path / "s.tif", w, h, UTM) as hw:
        st = Stitcher(h, w, hw)
        for win in grid_windows(h, w, t, ov):
            st.add(win, tile[:win.height, :win.width], wt[:win.height, :win.width])
        st.finish()
    assert st.peak_rows <= t
    with rasterio.open(tmp_path / "s.tif") as ds:
        a = ds.read(1)
    assert np.abs(a - 0.25).max() < 1e-6


def test_colorize_is_fixed_in_calibrated_units():
    thr = 2.0
    s = np.array([[np.nan, 1.99, 2.0, 5.0, 100.0]], np.float32)
    rgba = colorize(s, thr)
    assert rgba.shape == (1, 5, 4) and rgba.dtype == np.uint8
    assert rgba[0, 0, 3] == 0 and rgba[0, 1, 3] == 0  # NaN and below threshold transparent
    assert rgba[0, 2, 3] > 0 and tuple(rgba[0, 2, :3]) == tuple(LUT[0])
    assert tuple(rgba[0, 3, :3]) == tuple(LUT[255]) == tuple(rgba[0, 4, :3])  # 5.0 = 2.5 x thr = top
    assert default_vmax(thr) == 5.0
    # same score, same colour, whatever else is in the image (no per-image stretch)
    a = colorize(np.array([[3.0, 3.1]], np.float32), thr)
    b = colorize(np.array([[3.0, 50.0]], np.float32), thr)
    assert (a[0, 0] == b[0, 0]).all()
    # colour darkens / reddens monotonically with the score
    ramp = colorize(np.linspace(2, 5, 50, dtype=np.float32)[None], thr)[0]
    assert (np.diff(ramp[:, 1].astype(int)) <= 0).all() and (np.diff(ramp[:, 3].astype(int)) >= 0).all()
    with pytest.raises(InputError):
        colorize(np.zeros((2, 2)), 1.0, vmax=0.5)
    with pytest.raises(InputError):
        colorize(np.zeros(4), 1.0)


def test_overlay_png(tmp_path):
    s = np.zeros((40, 60), np.float32)
    s[10:20, 10:30] = 3.0
    s[30:, :] = np.nan
    p = write_overlay_png(tmp_path / "o" / "x_overlay.png", s, 1.0)
    im = Image.open(p)
    assert im.mode == "RGBA" and im.size == (60, 40)
    a = np.asarray(im)
    assert (a[10:20, 10:30, 3] > 0).all() and a[..., 3].sum() == a[10:20, 10:30, 3].sum()
    assert sorted(x.name for x in p.parent.iterdir()) == ["x_overlay.png"]


def test_read_heatmap_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_heatmap(tmp_path / "missing.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError):
        read_heatmap(bad)


def test_blend_is_the_one_alpha_blend() -> None:
    from core.detection.heatmap import blend

    rgb = np.full((4, 6, 3), 100, np.uint8)
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (250, 0, 0, 255)  # opaque red in the top-left quarter-cell, nothing elsewhere
    out = blend(rgb, rgba)
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    assert (out[:2, :2] == (250, 0, 0)).all() and (out[2:, :] == 100).all() and (out[:, 2:] == 100).all()
    half = blend(rgb, rgba, opacity=0.5)
    assert tuple(half[0, 0]) == (175, 50, 50)  # opacity scales the layer's own alpha
    assert (blend(rgb, rgba, opacity=0.0) == rgb).all()
