"""Heatmap overlays for the web map: score rasters warped to Web Mercator, coloured, as PNG data URIs.

Pure functions (no folium, no streamlit); :mod:`core.mapping.webmap` puts the overlays on the map.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio.warp
from affine import Affine
from PIL import Image
from pyproj import Transformer

from core.detection.heatmap import colorize, read_heatmap
from core.errors import GeoreferenceError
from core.geo import georef as geo
from core.i18n import _
from core.types import GeoRef, Scene

MERCATOR = "EPSG:3857"
OVERLAY_MAX_PX = 1024  #: longest side of a warped heatmap overlay


@dataclass(frozen=True)
class Overlay:
    """An image ready for Leaflet: RGBA (PNG for heatmaps, WebP for imagery) on a Web Mercator grid, lat/lon bounds.

    ``bounds`` is ``((south, west), (north, east))``, the order folium's ImageOverlay wants.
    """

    png_data_uri: str  #: a data URI (PNG or WebP)
    bounds: tuple[tuple[float, float], tuple[float, float]]
    shape: tuple[int, int]  #: (height, width) of the Mercator image
    crs: str = MERCATOR


def mercator_to_latlon_bounds(left: float, bottom: float, right: float, top: float
                              ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Web Mercator box -> ``((south, west), (north, east))`` (folium order; rasterio's is west, south, east, north)."""
    w, s, e, n = rasterio.warp.transform_bounds(MERCATOR, geo.WGS84, left, bottom, right, top)
    return (s, w), (n, e)


def warp_to_mercator(scores: np.ndarray, georef: GeoRef, *, max_px: int = OVERLAY_MAX_PX
                     ) -> tuple[np.ndarray, Affine]:
    """Reproject a score raster (NaN = nodata) onto a north-up EPSG:3857 grid at most ``max_px`` on a side.

    ``scores`` is h×w, or k×h×w for k bands warped together (one pass: the bands share the coordinate work).
    Works for any CRS and for rotated transforms (drone footprints). Returns ``(scores, transform)``.
    """
    scores = np.asarray(scores, dtype=np.float32)
    h, w = scores.shape[-2:]
    src_tr = georef.transform
    cols, rows = geo.edge_pixels(w, h)
    xs = src_tr.a * cols + src_tr.b * rows + src_tr.c
    ys = src_tr.d * cols + src_tr.e * rows + src_tr.f
    try:
        mx, my = Transformer.from_crs(georef.crs, MERCATOR, always_xy=True).transform(xs, ys)
    except Exception as exc:  # pyproj raises several types for bad CRSs
        raise GeoreferenceError(_("cannot project this heatmap ({crs}) to Web Mercator: {exc}").format(
                                    crs=georef.crs, exc=exc)) from exc
    mx, my = np.asarray(mx), np.asarray(my)
    if not (np.all(np.isfinite(mx)) and np.all(np.isfinite(my))):
        raise GeoreferenceError(_("the heatmap lies outside the Web Mercator range (beyond ±85° latitude?); it "
                                  "cannot be shown on the map"))
    left, right, bottom, top = mx.min(), mx.max(), my.min(), my.max()
    res = max(right - left, top - bottom) / max(1, min(max_px, max(w, h)))
    dw, dh = max(1, math.ceil((right - left) / res)), max(1, math.ceil((top - bottom) / res))
    dst_tr = Affine(res, 0.0, left, 0.0, -res, top)
    out = np.full((*scores.shape[:-2], dh, dw), np.nan, np.float32)
    rasterio.warp.reproject(scores, out, src_transform=src_tr, src_crs=georef.crs, src_nodata=np.nan,
                            dst_transform=dst_tr, dst_crs=MERCATOR, dst_nodata=np.nan,
                            resampling=rasterio.warp.Resampling.bilinear)
    return out, dst_tr


def webp_data_uri(rgba: np.ndarray, quality: int = 80) -> str:
    """RGBA uint8 array -> ``data:image/webp;base64,...``: lossy colour, lossless alpha (transparency stays exact),
    about a tenth of PNG's size for imagery and smooth heatmaps, so a map of many scenes stays light."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(buf, format="WEBP", quality=quality, method=4)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_data_uri(rgba: np.ndarray) -> str:
    """RGBA uint8 array -> ``data:image/png;base64,...`` (deterministic bytes for identical input)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(buf, format="PNG", optimize=False, compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def heatmap_overlay(heatmap_path: str | Path, threshold: float, *, max_px: int = OVERLAY_MAX_PX) -> Overlay | None:
    """Warp a heatmap GeoTIFF to Web Mercator and colour it (:func:`core.detection.heatmap.colorize`: transparent below
    ``threshold``). None when the file carries no CRS (the scene is not georeferenced)."""
    hm = read_heatmap(heatmap_path, preview_max=max(max_px, 256) * 2)
    if hm.georef is None or hm.preview is None:
        return None
    f = hm.preview_scale
    grid = GeoRef(crs=hm.georef.crs, transform=hm.georef.transform @ Affine.scale(f))
    merc, tr = warp_to_mercator(hm.preview, grid, max_px=max_px)
    h, w = merc.shape
    bounds = mercator_to_latlon_bounds(tr.c, tr.f + tr.e * h, tr.c + tr.a * w, tr.f)
    return Overlay(webp_data_uri(colorize(merc, threshold), quality=85), bounds, (h, w))


def read_preview(scene: Scene, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole scene at most ``max_side`` pixels on its long side: ``(rgb uint8, valid bool)``.

    A raster file is never read at full resolution: one decimated read (``out_shape``; GDAL serves it from the
    file's overviews when it has them, else it samples rows and columns) at twice the preview size, then an area
    average down to it (no aliasing). A frame held in memory is area-averaged from it. Raises
    :class:`~core.errors.ImageReadError` when the file is damaged.
    """
    import cv2
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    from core.errors import ImageReadError
    from core.imagery.sources import RasterSource
    from core.report.rasters import overview_shape, read_overview

    src = scene.source
    if not isinstance(src, RasterSource):
        return read_overview(scene, max_side=max_side)
    oh, ow = overview_shape(scene.width, scene.height, max_side)
    rh, rw = min(scene.height, 2 * oh), min(scene.width, 2 * ow)
    try:
        data, valid = src.read_raw(out_shape=(rh, rw))
    except (RasterioError, OSError) as exc:
        raise ImageReadError(_("{name}: pixels of {window} cannot be read, the file is damaged there ({exc}); "
                               "export or copy it again").format(
                                 name=scene.name, window=Window(0, 0, scene.width, scene.height), exc=exc)) from exc
    rgb = src.to_rgb(data)
    if src.lut is not None and src.lut.shape[1] == 4:  # a palette's transparent entries are nodata
        valid &= src.lut[np.clip(np.nan_to_num(data[0]).astype(np.int64), 0, len(src.lut) - 1), 3] > 0
    if (rh, rw) != (oh, ow):
        rgb = cv2.resize(rgb, (ow, oh), interpolation=cv2.INTER_AREA)
        valid = cv2.resize(valid.astype(np.uint8), (ow, oh), interpolation=cv2.INTER_NEAREST) > 0
    return rgb, valid


def imagery_overlay(source_path: str | Path, georef: GeoRef, width: int, height: int, *,
                    max_px: int = OVERLAY_MAX_PX) -> Overlay | None:
    """The scene's own pixels on Web Mercator (transparent where nodata, marked or an unmarked black border): the
    imagery under the heatmaps, which
    works offline where no basemap tiles can be fetched. ``georef``/``width``/``height`` are the analysed scene's
    (so frames placed by an analyst show where they were placed). None when the source file is gone."""
    from core.errors import CoreError
    from core.imagery.nodata import preview_nodata
    from core.imagery.reader import open_scene

    try:
        scene = open_scene(source_path)
    except CoreError:
        return None
    try:
        if (scene.width, scene.height) != (width, height):
            return None  # not the image that was analysed
        rgb, valid = read_preview(scene, max(max_px, 256))
    finally:
        scene.close()
    valid = valid & ~preview_nodata(scene, rgb)  # unmarked black borders, as the analysis leaves them out
    oh, ow = valid.shape
    grid = GeoRef(crs=georef.crs, transform=georef.transform @ Affine.scale(width / ow, height / oh))
    bands = np.where(valid, np.moveaxis(rgb, -1, 0).astype(np.float32), np.nan)
    merc, tr = warp_to_mercator(bands, grid, max_px=max_px)
    stack = np.moveaxis(merc, 0, -1)
    alpha = np.all(np.isfinite(stack), axis=-1)
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., :3] = np.clip(np.nan_to_num(stack), 0, 255).astype(np.uint8)
    rgba[..., 3] = alpha * 255
    h, w = alpha.shape
    return Overlay(webp_data_uri(rgba), mercator_to_latlon_bounds(tr.c, tr.f + tr.e * h, tr.c + tr.a * w, tr.f),
                   (h, w))
