"""Stitching tile scores without seams: a raised-cosine weight per tile, and a stitcher that blends overlapping
tiles and streams finished row bands to a writer, so a huge raster never sits in memory whole.

- :func:`blend_weights` is a raised-cosine taper so overlapping tiles fade into each other and seams vanish.
- :class:`Stitcher` accumulates weighted tile scores and hands finished row bands to a writer (a
  :data:`BandWriter`): only about one tile height of rows is held at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rasterio.windows import Window

from core.i18n import _

#: Weight given to a tile's outermost pixels; > 0 so image-border pixels covered by a single tile keep their value.
EDGE_WEIGHT = 1e-3


def _ramp(n: int, ramp: float | None, margin: float) -> np.ndarray:
    x = np.arange(n, dtype=np.float64) + 0.5
    ramp = n / 2 if ramp is None else min(float(ramp), n / 2)  # n/2 with no margin = a Hann window
    w = np.ones(n)
    if ramp > 0:
        d = np.minimum(x, n - x)  # distance from the nearest edge
        m = min(float(margin), ramp / 2)
        edge = d < ramp
        w[edge] = np.sin(0.5 * np.pi * np.clip(d[edge] - m, 0, None) / (ramp - m)) ** 2
    return np.maximum(w, EDGE_WEIGHT)


def blend_weights(h: int, w: int, ramp: int | None = None, margin: int | None = None) -> np.ndarray:
    """Smooth 2-D tile weight (float32 ``h``×``w``): 1 in the middle, a raised-cosine fade to ~0 at the edges.

    ``ramp`` is the width of the fade in px (use the tile overlap); ``None`` fades over the whole tile (Hann
    window). Within ``margin`` px of an edge (default ``ramp // 4``) the weight stays at :data:`EDGE_WEIGHT`, so a
    network's border artefacts (zero padding inside the receptive field) are outvoted by the neighbouring tile's
    interior; the fade happens between ``margin`` and ``ramp``. Neighbours overlapping by ``ramp`` px always have
    a combined weight >= 0.5 across the overlap; the stitcher divides by the summed weight.
    """
    if h <= 0 or w <= 0:
        raise ValueError(_("weight size must be positive, got {h}x{w}").format(h=h, w=w))
    m = (ramp // 4 if ramp else 0) if margin is None else margin
    return np.outer(_ramp(h, ramp, m), _ramp(w, ramp, m)).astype(np.float32)


BandWriter = Callable[[int, np.ndarray], None]


class Stitcher:
    """Blend overlapping tile scores into one raster and stream finished row bands to ``writer(row0, band)``.

    Tiles must arrive in row-major order (as :func:`grid_windows` makes them): once a tile starting at row ``r``
    arrives, every row above ``r`` is final and is flushed. ``band`` is float32 (rows × width), the weighted mean
    of all tiles covering each pixel, NaN where no tile marked the pixel valid (nodata, padding). Memory held: about
    one tile height of rows (three float32/bool buffers of that many rows × width).
    """

    def __init__(self, height: int, width: int, writer: BandWriter) -> None:
        if height <= 0 or width <= 0:
            raise ValueError(_("stitch size must be positive, got {height}x{width}").format(
                                 height=height, width=width))
        self.height, self.width = height, width
        self._writer = writer
        self._top = 0  # first row not yet flushed
        self._acc = np.zeros((0, width), np.float32)
        self._wsum = np.zeros((0, width), np.float32)
        self._valid = np.zeros((0, width), bool)
        self.peak_rows = 0  #: largest number of rows held at once (memory check)
        self._closed = False

    @property
    def rows_flushed(self) -> int:
        """Rows already handed to the writer."""
        return self._top

    def _flush_to(self, row: int) -> None:
        n = min(row, self.height) - self._top
        if n <= 0:
            return
        n_held = self._acc.shape[0]
        k = min(n, n_held)
        band = np.full((n, self.width), np.nan, np.float32)
        if k:
            w = self._wsum[:k]
            ok = self._valid[:k] & (w > 0)
            np.divide(self._acc[:k], w, out=band[:k], where=ok)
        self._writer(self._top, band)
        self._top += n
        self._acc = self._acc[k:]
        self._wsum = self._wsum[k:]
        self._valid = self._valid[k:]

    def _ensure(self, rows: int) -> None:
        have = self._acc.shape[0]
        if rows > have:
            extra = rows - have
            self._acc = np.concatenate([self._acc, np.zeros((extra, self.width), np.float32)])
            self._wsum = np.concatenate([self._wsum, np.zeros((extra, self.width), np.float32)])
            self._valid = np.concatenate([self._valid, np.zeros((extra, self.width), bool)])
            self.peak_rows = max(self.peak_rows, rows)

    def add(self, window: Window, scores: np.ndarray, weights: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Accumulate one tile: ``scores``/``weights``/``valid`` are ``window.height``×``window.width``."""
        if self._closed:
            raise RuntimeError(_("Stitcher is finished"))
        shape = (window.height, window.width)
        if scores.shape != shape or weights.shape != shape or (valid is not None and valid.shape != shape):
            raise ValueError(_("tile arrays must be {shape}, got {shape2}, {shape3}").format(
                                 shape=shape, shape2=scores.shape, shape3=weights.shape))
        if window.row_off < self._top:
            raise ValueError(_("tiles must arrive in row-major order: row {row} is already flushed (next unflushed "
                               "row {top})").format(row=window.row_off, top=self._top))
        r1, c1 = window.row_off + window.height, window.col_off + window.width
        if r1 > self.height or c1 > self.width or window.col_off < 0:
            raise ValueError(_("window {window} lies outside the {height}x{width} raster").format(
                                 window=window, height=self.height, width=self.width))
        self._flush_to(window.row_off)
        r0 = window.row_off - self._top
        self._ensure(r0 + window.height)
        rs, cs = slice(r0, r0 + window.height), slice(window.col_off, window.col_off + window.width)
        finite = np.isfinite(scores)
        w = np.where(finite, weights, 0).astype(np.float32)
        self._acc[rs, cs] += np.where(finite, scores, 0).astype(np.float32) * w
        self._wsum[rs, cs] += w
        if valid is None:
            self._valid[rs, cs] |= finite
        else:
            self._valid[rs, cs] |= valid & finite

    def finish(self) -> None:
        """Flush all remaining rows (rows never covered by a tile come out as NaN)."""
        if not self._closed:
            self._flush_to(self.height)
            self._closed = True
