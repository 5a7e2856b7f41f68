"""Resampling a heatmap band by band from the model's grid to the scene's grid (bilinear), as a band writer that
sits between :class:`~core.detection.stitching.Stitcher` and the heatmap file."""

from __future__ import annotations

import numpy as np

from core.detection.stitching import BandWriter
from core.i18n import _


class RowResampler:
    """Stream bands from one grid to a grid of another size (bilinear, pixel centres aligned).

    Used when a scene is analysed at the model's ground sample distance: the stitched heatmap arrives in bands of
    the model grid (``src_h``×``src_w``) and is mapped back to the scene grid (``dst_h``×``dst_w``) band by band,
    holding only the few source rows that straddle a band edge. Call as a band writer, then :meth:`finish`.
    """

    def __init__(self, src_h: int, src_w: int, dst_h: int, dst_w: int, writer: BandWriter) -> None:
        self.src_h, self.src_w, self.dst_h, self.dst_w = src_h, src_w, dst_h, dst_w
        self._writer = writer
        # source row (float) for each destination row centre; clamped to the valid source range
        pos = (np.arange(dst_h) + 0.5) * (src_h / dst_h) - 0.5
        self._pos = np.clip(pos, 0, src_h - 1)
        self._lo = np.floor(self._pos).astype(np.int64)
        self._hi = np.minimum(self._lo + 1, src_h - 1)
        self._frac = (self._pos - self._lo).astype(np.float32)
        self._buf = np.zeros((0, dst_w), np.float32)  # source rows, already resampled in width
        self._buf_top = 0  # source row index of self._buf[0]
        self._src_next = 0
        self._dst_next = 0

    def _cols(self, band: np.ndarray) -> np.ndarray:
        if self.src_w == self.dst_w:
            return band.astype(np.float32, copy=False)
        pos = np.clip((np.arange(self.dst_w) + 0.5) * (self.src_w / self.dst_w) - 0.5, 0, self.src_w - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, self.src_w - 1)
        f = (pos - lo).astype(np.float32)
        return _lerp(band[:, lo], band[:, hi], f[None, :])

    def __call__(self, row0: int, band: np.ndarray) -> None:
        """Take the next source band (rows ``row0..``) and emit every destination row it completes."""
        if row0 != self._src_next:
            raise ValueError(_("bands must arrive in order: expected row {src_next}, got {row0}").format(
                                 src_next=self._src_next, row0=row0))
        self._src_next += band.shape[0]
        self._buf = np.concatenate([self._buf, self._cols(band)])
        avail = self._src_next  # source rows [0, avail) seen
        d1 = self._dst_next
        while d1 < self.dst_h and self._hi[d1] < avail:
            d1 += 1
        if d1 > self._dst_next:
            idx = slice(self._dst_next, d1)
            lo = self._lo[idx] - self._buf_top
            hi = self._hi[idx] - self._buf_top
            out = _lerp(self._buf[lo], self._buf[hi], self._frac[idx][:, None])
            self._writer(self._dst_next, out)
            self._dst_next = d1
        keep_from = self._lo[self._dst_next] if self._dst_next < self.dst_h else self._src_next
        drop = min(int(keep_from) - self._buf_top, self._buf.shape[0])
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_top += drop

    def finish(self) -> None:
        """Check that every destination row was written."""
        if self._dst_next != self.dst_h:
            raise ValueError(_("resampler got {src_next}/{src_h} source rows; only {dst_next}/{dst_h} output rows "
                               "written").format(
                                 src_next=self._src_next, src_h=self.src_h, dst_next=self._dst_next,
                                 dst_h=self.dst_h))


def _lerp(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Linear interpolation that keeps a value when its partner is NaN but the weight on the partner is 0."""
    out = a * (1 - f) + b * f
    out = np.where(f == 0, a, out)
    return np.where(f == 1, b, out).astype(np.float32)
