"""GeoTIFF / COG scenes: band choice, one stretch per scene, validity, truncation check, raster georef.

A raster is never read whole: the only whole-scene read is a decimated sample (``out_shape``, served from overviews
when the file has them) or, for very large rasters without overviews, a grid of small windows. It feeds the 2-98 %
stretch of 16-bit / float data and the "is any pixel valid?" check, and is skipped entirely for plain uint8 rasters
without nodata, alpha or an internal mask (those open instantly whatever their size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.transform import from_gcps
from rasterio.windows import Window

from core.errors import CoreError, GeoreferenceError, ImageReadError, InputError
from core.geo import georef as geo
from core.i18n import N_, Message, _, message
from core.imagery.exif import exif_datetime
from core.imagery.sources import RasterSource, check_pixels, check_size, percentile_stretch
from core.types import GeoRef, Scene

#: Long side of the decimated read used for the stretch and the "any valid pixel?" check.
SAMPLE_SIDE = 1024
#: Rasters up to this many pixels (or with overviews) are sampled by one decimated read; larger ones by a grid.
DECIMATE_MAX_PIXELS = 50_000_000


def choose_bands(ds: Any) -> tuple[tuple[int, ...], int | None, np.ndarray | None, str]:
    """(bands used as R,G,B or grey, alpha band, palette LUT, note) from colour interpretation and band count."""
    ci = list(ds.colorinterp)
    n = ds.count
    alpha = ci.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in ci else None
    if all(c in ci for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        bands = tuple(ci.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue))
        extra = [b for b in range(1, n + 1) if b not in bands and b != alpha]
        note = f"bands {bands} used as R,G,B" + (f"; bands {extra} ignored" if extra else "")
        return bands, alpha, None, note
    colour = [b for b in range(1, n + 1) if b != alpha]
    if ci[0] == ColorInterp.palette:
        cmap = ds.colormap(1)
        lut = np.zeros((max(cmap) + 1, 4), dtype=np.uint8)
        for k, rgba in cmap.items():
            lut[k] = rgba
        return (1,), alpha, lut, "palette band expanded to RGB"
    if len(colour) < 3:
        note = "single band shown as grey" + (f"; band {colour[1]} ignored" if len(colour) > 1 else "")
        return (colour[0],), alpha, None, note
    bands = tuple(colour[:3])
    dropped = colour[3:]
    if n == 4 and alpha is None:
        note = "4 bands without alpha: read as R,G,B,NIR (NAIP order); NIR band 4 dropped"
    else:
        note = f"colour interpretation names no R,G,B: bands {bands} used as R,G,B" + (
            f"; bands {dropped} ignored" if dropped else "")
    return bands, alpha, None, note


def raster_scene(p: Path, ds: Any, name: str, kind: str, extra_warnings: list[str | Message] | None = None
                 ) -> Scene:
    """A Scene over the open rasterio dataset ``ds`` of ``p`` (georeferenced only when ``kind == "geotiff"``)."""
    width, height = ds.width, ds.height
    check_pixels(name, width, height)
    check_size(name, width, height)
    bands, alpha, lut, band_note = choose_bands(ds)
    dtype = np.dtype(ds.dtypes[bands[0] - 1])
    flags = ds.mask_flag_enums
    masked = alpha is not None or any(flags[b - 1] != [MaskFlags.all_valid] for b in bands)
    stretched = lut is None and dtype != np.uint8
    src = RasterSource(p, width, height, bands, lut=lut, masked=masked, check_finite=dtype.kind == "f")
    meta: dict[str, Any] = {"format": ds.driver, "dtype": str(dtype), "warnings": list(extra_warnings or []),
                            "bands": {"count": ds.count, "used": list(bands), "alpha": alpha,
                                      "colorinterp": [c.name for c in ds.colorinterp], "note": band_note}}
    try:
        _read_last_block(ds)
        if masked or stretched or src.check_finite:
            data, valid = _sample(src, ds)
            if not valid.any():
                raise InputError(_("{name} contains no valid pixels: every pixel is nodata, transparent or NaN").format(
                                     name=name))
            if stretched:
                src.stretch = [percentile_stretch(data[i], valid) for i in range(data.shape[0])]
                meta["stretch"] = [list(s) for s in src.stretch]
    except CoreError:
        src.close()
        raise
    except Exception as exc:  # RasterioError or a raw GDAL CPLE_* error
        src.close()
        raise ImageReadError(_("{name} is truncated or corrupt: reading its pixels failed ({exc}); export or copy "
                               "the file again").format(name=name, exc=exc)) from exc
    georef = _raster_georef(ds, meta) if kind == "geotiff" else None
    tags = ds.tags()
    capture = exif_datetime(tags.get("TIFFTAG_DATETIME") or tags.get("ACQUISITIONDATETIME"))
    return Scene(name=name, width=width, height=height, source=src, path=p, kind=kind, georef=georef,
                 capture_time=capture, gsd_m=geo.gsd_m(georef, width, height) if georef else None, meta=meta)


def _raster_georef(ds: Any, meta: dict[str, Any]) -> GeoRef | None:
    if ds.crs is not None and not ds.transform.is_identity:
        crs, t, note, approx = ds.crs, ds.transform, "", False
    else:
        gcps, crs = ds.gcps
        t = from_gcps(gcps)
        note, approx = f"affine fitted to {len(gcps)} ground control points", True
        if crs is None:
            meta["warnings"].append(message(N_("raster has a CRS but no geotransform: treated as un-georeferenced")))
            return None
    crs_str = crs.to_string() if crs.to_epsg() is not None else crs.to_wkt()
    georef = GeoRef(crs=crs_str, transform=t, method="raster", approximate=approx, note=note)
    if abs(t.b) > 1e-12 * abs(t.a) or abs(t.d) > 1e-12 * abs(t.e):
        meta["transform_rotated"] = True
        meta["warnings"].append(message(N_("the raster's geotransform is rotated or sheared: map overlays are "
                                           "reprojected north-up and may be slightly approximate")))
    try:
        geo.validate_georef(georef, ds.width, ds.height)
    except GeoreferenceError as exc:
        meta["warnings"].append(message(N_("georeferencing ignored: {message}"), message=exc))
        return None
    return georef


def _read_last_block(ds: Any) -> None:
    bh, bw = ds.block_shapes[0]
    row0 = ((ds.height - 1) // bh) * bh
    col0 = ((ds.width - 1) // bw) * bw
    ds.read(1, window=Window(col0, row0, ds.width - col0, ds.height - row0))


def _sample(src: RasterSource, ds: Any) -> tuple[np.ndarray, np.ndarray]:
    """Band values and validity of a small whole-scene sample: a decimated read, or a grid of windows when the
    raster is huge and has no overviews. Values keep their band axis first; the mask matches the trailing axes.
    """
    w, h = src.width, src.height
    scale = max(w, h) / SAMPLE_SIDE
    if scale <= 1:
        return src.read_raw()
    out_shape = (max(1, round(h / scale)), max(1, round(w / scale)))
    if ds.overviews(src.bands[0]) or w * h <= DECIMATE_MAX_PIXELS:
        data, valid = src.read_raw(out_shape=out_shape)
    else:
        n, size = 8, min(128, w, h)
        parts = []
        for i in range(n):
            for j in range(n):
                row = min(h - size, int((i + 0.5) * h / n - size / 2))
                col = min(w - size, int((j + 0.5) * w / n - size / 2))
                parts.append(src.read_raw(Window(max(col, 0), max(row, 0), size, size)))
        data = np.concatenate([d.reshape(d.shape[0], -1) for d, _ in parts], axis=1)
        valid = np.concatenate([v.ravel() for _, v in parts])
        if valid.any():
            return data, valid
        data, valid = src.read_raw(out_shape=out_shape)
    if valid.any() or not src.masked:
        return data, valid
    # Valid pixels thinner than the decimation step (a strip, a small island) fall between nearest-neighbour
    # samples: an averaged mask sees every one of them before the raster is declared empty.
    anywhere = ds.dataset_mask(out_shape=out_shape, resampling=Resampling.average) > 0
    if src.check_finite:
        anywhere &= np.all(np.isfinite(data), axis=0)
    return data, anywhere
