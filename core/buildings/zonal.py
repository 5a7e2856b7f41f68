"""Per-building statistics of a calibrated score raster (heatmap or change map), rasterised in the raster's grid.

Footprints are brought into the raster's CRS and then its pixel grid, rasterised with
:func:`rasterio.features.rasterize` (pixel centres inside the polygon; a footprint smaller than that gets every
pixel it touches), and each building's scores are summarised: mean, 90th percentile (the statistic findings are
graded by, ``grading.REGION_PERCENTILE``), share of pixels at or above the map's threshold, and the mean
of a ring around the footprint (``ring_px`` wide, other footprints left out) for context. NaN (nodata) pixels
never count. A raster larger than :data:`MAX_WINDOW_PX` around the footprints is read block-averaged.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.features import rasterize
from rasterio.windows import Window

from core.detection.grading import REGION_PERCENTILE
from core.errors import ImageReadError
from core.i18n import _

#: Most pixels read from one raster at full resolution; beyond it the window is read block-averaged.
MAX_WINDOW_PX = 64_000_000
STATS = ("mean", "q90", "share", "ring", "pixels")


@dataclass(frozen=True)
class RasterGrid:
    """Where a score raster lies: CRS (None without one), transform, size."""

    crs: str | None
    transform: Affine
    width: int
    height: int


def raster_grid(path: str | Path) -> RasterGrid:
    """The grid of a score raster (:class:`ImageReadError` when it cannot be opened)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                return RasterGrid(ds.crs.to_string() if ds.crs else None, ds.transform, ds.width, ds.height)
    except RasterioError as exc:
        raise ImageReadError(_("cannot read the score raster {name}: {exc}. Re-run the analysis.").format(
            name=Path(path).name, exc=exc)) from exc


def _read(path: Path, win: tuple[int, int, int, int], factor: int) -> np.ndarray:
    """Float32 scores of window (col0, row0, col1, row1), block-averaged by ``factor`` (NaN-aware)."""
    c0, r0, c1, r1 = win
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            with rasterio.open(path) as ds:
                if factor == 1:
                    full: np.ndarray = ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0)).astype(np.float32)
                    return full
                h, w = (r1 - r0) // factor, (c1 - c0) // factor
                out = np.full((h, w), np.nan, np.float32)
                step = 16
                for k in range(0, h, step):
                    n = min(step, h - k)
                    blk = ds.read(1, window=Window(c0, r0 + k * factor, w * factor, n * factor)).astype(np.float32)
                    blk = blk.reshape(n, factor, w, factor)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        out[k:k + n] = np.nanmean(blk, axis=(1, 3))
                return out
        except RasterioError as exc:
            raise ImageReadError(_("cannot read the score raster {name}: {exc}. Re-run the analysis.").format(
                name=Path(path).name, exc=exc)) from exc


def _quantile(labels: np.ndarray, values: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Per-label linear-interpolated quantile ``q`` (0..1) of ``values`` grouped by ``labels`` (0..n-1)."""
    n = len(counts)
    out = np.full(n, np.nan)
    if not len(values):
        return out
    order = np.lexsort((values, labels))
    v = values[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    pos = q * (counts[has] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts[has] - 1)
    frac = pos - lo
    s = starts[has]
    out[has] = v[s + lo] * (1 - frac) + v[s + hi] * frac
    return out


class Zones:
    """Footprints (and their rings) rasterised once on a window of a raster grid, reused for each map of a scene.

    ``geoms_px`` are shapely geometries in full-resolution pixel (col, row) coordinates of the grid.
    """

    def __init__(self, geoms_px: np.ndarray, width: int, height: int, ring_px: float) -> None:
        self.n = len(geoms_px)
        b = shapely.bounds(geoms_px)
        pad = math.ceil(ring_px) + 1
        c0 = int(max(0, math.floor(np.nanmin(b[:, 0])) - pad)) if self.n else 0
        r0 = int(max(0, math.floor(np.nanmin(b[:, 1])) - pad)) if self.n else 0
        c1 = int(min(width, math.ceil(np.nanmax(b[:, 2])) + pad)) if self.n else 0
        r1 = int(min(height, math.ceil(np.nanmax(b[:, 3])) + pad)) if self.n else 0
        area = max(0, c1 - c0) * max(0, r1 - r0)
        f = max(1, math.ceil(math.sqrt(area / MAX_WINDOW_PX))) if area else 1
        c1, r1 = c0 + ((c1 - c0) // f) * f, r0 + ((r1 - r0) // f) * f
        self.window, self.factor = (c0, r0, c1, r1), f
        h, w = (r1 - r0) // f, (c1 - c0) // f
        self.shape = (h, w)
        self.labels = np.zeros(self.shape, np.int32)
        self.ring = np.zeros(self.shape, np.int32)
        if self.n == 0 or h == 0 or w == 0:
            return
        tr = Affine.translation(c0, r0) @ Affine.scale(f)  # window pixel -> full-resolution pixel
        # largest first, so a small building inside a large outline keeps its own pixels
        order = np.argsort(-shapely.area(geoms_px))
        shapes = [(geoms_px[k], int(k) + 1) for k in order]
        self.labels = rasterize(shapes, out_shape=self.shape, transform=tr, fill=0, dtype="int32")
        present = np.bincount(self.labels.ravel(), minlength=self.n + 1)[1:]
        tiny = np.flatnonzero(present == 0)
        if len(tiny):
            extra = rasterize([(geoms_px[k], int(k) + 1) for k in tiny], out_shape=self.shape, transform=tr,
                              fill=0, dtype="int32", all_touched=True)
            put = (extra > 0) & (self.labels == 0)
            self.labels[put] = extra[put]
        if ring_px > 0:
            rings = shapely.difference(shapely.buffer(geoms_px, ring_px), geoms_px)
            ok = ~shapely.is_empty(rings)
            self.ring = rasterize([(rings[k], int(k) + 1) for k in order if ok[k]], out_shape=self.shape,
                                  transform=tr, fill=0, dtype="int32", all_touched=True)
            self.ring[self.labels > 0] = 0

    def stats(self, path: str | Path, threshold: float) -> dict[str, np.ndarray]:
        """Per-building ``mean``, ``q90``, ``share`` (≥ threshold), ``ring`` mean and valid ``pixels`` of a map."""
        n = self.n
        nan = np.full(n, np.nan)
        if n == 0 or 0 in self.shape:
            return {"mean": nan, "q90": nan.copy(), "share": nan.copy(), "ring": nan.copy(), "pixels": np.zeros(n)}
        v = _read(Path(path), self.window, self.factor)
        fin = np.isfinite(v)
        sel = (self.labels > 0) & fin
        lab = self.labels[sel] - 1
        x = v[sel].astype(np.float64)
        cnt = np.bincount(lab, minlength=n).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(lab, x, minlength=n) / cnt
            share = np.bincount(lab, (x >= threshold).astype(np.float64), minlength=n) / cnt
            rsel = (self.ring > 0) & fin
            rl = self.ring[rsel] - 1
            rc = np.bincount(rl, minlength=n).astype(np.float64)
            ring = np.bincount(rl, v[rsel].astype(np.float64), minlength=n) / rc
        q90 = _quantile(lab, x, cnt.astype(np.int64), REGION_PERCENTILE / 100.0)
        return {"mean": mean, "q90": q90, "share": share, "ring": ring, "pixels": cnt * self.factor ** 2}


def to_pixels(geoms: np.ndarray, crs: str | None, grid: RasterGrid) -> np.ndarray:
    """Geometries in ``crs`` (None: already pixels of the grid) as full-resolution pixel (col, row) geometries."""
    if crs is None:
        return geoms
    if grid.crs is None:
        raise ImageReadError(_("the score raster has no CRS: footprints in map coordinates cannot be placed on it; "
                               "analyse georeferenced imagery, or give footprints in the image's pixels (xBD labels)"))
    from core.geo.georef import _transformer

    tr = _transformer(crs, grid.crs)
    inv = ~grid.transform

    def f(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        x, y = np.asarray(x), np.asarray(y)
        c = inv.a * x + inv.b * y + inv.c
        r = inv.d * x + inv.e * y + inv.f
        return np.column_stack([c, r])

    moved: np.ndarray = np.asarray(shapely.transform(geoms, f), dtype=object)
    return moved


def inside(geoms_px: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which pixel geometries overlap the raster extent (bool per geometry)."""
    b = np.asarray(shapely.bounds(geoms_px), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok: np.ndarray = (b[:, 2] > 0) & (b[:, 0] < width) & (b[:, 3] > 0) & (b[:, 1] < height) \
            & np.all(np.isfinite(b), 1)
    return ok


def grid_gsd(grid: RasterGrid) -> float | None:
    """Metres per pixel of a grid (None when unknown)."""
    if grid.crs is None:
        return None
    from core.geo.georef import gsd_m
    from core.types import GeoRef

    try:
        return gsd_m(GeoRef(crs=grid.crs, transform=grid.transform), grid.width, grid.height)
    except Exception:  # noqa: BLE001 - a grid without a usable metric scale just gets the default ring
        return None


__all__ = ["MAX_WINDOW_PX", "STATS", "RasterGrid", "Zones", "grid_gsd", "inside", "raster_grid", "to_pixels"]
