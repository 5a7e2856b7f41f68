"""Windows over a scene, reading ahead while the model runs, and stitching tile scores without seams.

- :func:`grid_windows` cuts an image into row-major tiles that overlap by about the model's receptive field; the
  last partial tile of a row/column is shifted back inside the image (ceil), so every pixel is covered.
- :func:`pad_to` brings border tiles and small images up to the tile size (padding is marked invalid).
- :func:`blend_weights` is a raised-cosine taper so overlapping tiles fade into each other and seams vanish.
- :class:`Prefetcher` reads the next windows in a thread while the caller runs the model.
- :class:`Stitcher` accumulates weighted tile scores and hands finished row bands to a writer, so a huge raster
  never sits in memory whole: only about one tile height of rows is held at a time.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import numpy as np
from rasterio.windows import Window

from core.i18n import _

#: Weight given to a tile's outermost pixels; > 0 so image-border pixels covered by a single tile keep their value.
EDGE_WEIGHT = 1e-3


def _starts(n: int, tile: int, stride: int) -> list[int]:
    """Window offsets along one axis of length ``n`` (windows of ``tile`` px every ``stride`` px, last one shifted)."""
    if n <= tile:
        return [0]
    count = math.ceil((n - tile) / stride) + 1
    starts = [i * stride for i in range(count - 1)]
    last = n - tile
    if not starts or starts[-1] != last:
        starts.append(last)
    return starts


def grid_windows(height: int, width: int, tile: int, overlap: int) -> list[Window]:
    """Row-major windows of ``tile``×``tile`` px covering every pixel of a ``height``×``width`` image.

    Neighbouring windows overlap by ``overlap`` px (more for the last one of a row/column, which is shifted back
    inside the image). Along an axis shorter than ``tile`` the single window spans the whole axis, so windows are
    clipped to the image; the caller pads them up to the tile size with :func:`pad_to`.
    """
    if height <= 0 or width <= 0:
        raise ValueError(_("image size must be positive, got {height}x{width}").format(height=height, width=width))
    if tile <= 0:
        raise ValueError(_("tile size must be positive, got {tile}").format(tile=tile))
    if not 0 <= overlap < tile:
        raise ValueError(_("overlap must be in [0, tile), got {overlap} for tile {tile}").format(
                             overlap=overlap, tile=tile))
    stride = tile - overlap
    rows = _starts(height, tile, stride)
    cols = _starts(width, tile, stride)
    h, w = min(tile, height), min(tile, width)
    return [Window(c, r, w, h) for r in rows for c in cols]


def pad_to(rgb: np.ndarray, valid: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad a tile at the bottom/right to ``h``×``w``; padded pixels mirror the image and are marked invalid.

    Mirroring (rather than zeros) keeps the network from seeing an artificial black edge, whose response would
    otherwise bleed into the real pixels next to it.
    """
    th, tw = rgb.shape[:2]
    if th > h or tw > w:
        raise ValueError(_("tile {th}x{tw} is larger than the padding target {h}x{w}").format(
                             th=th, tw=tw, h=h, w=w))
    if (th, tw) == (h, w):
        return rgb, valid
    pads = ((0, h - th), (0, w - tw))
    rgb_p = np.pad(rgb, pads + ((0, 0),) * (rgb.ndim - 2), mode="symmetric")
    valid_p = np.zeros((h, w), dtype=bool)
    valid_p[:th, :tw] = valid
    return rgb_p, valid_p


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


class _Reader(Protocol):
    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]: ...


_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetcher:
    """Read windows in a background thread, ``depth`` ahead of the consumer.

    Iterating yields ``(window, rgb, valid)`` in window order. ``transform(window, rgb, valid)`` (optional) runs in
    the reader thread too (resampling, padding). An exception raised while reading is re-raised in the consumer at
    the point where that window would have been yielded. Leaving the loop early (``break``, an exception, or
    :meth:`close` / the ``with`` block) stops the reader promptly; the thread never outlives :meth:`close`.
    """

    def __init__(self, source: _Reader, windows: list[Window], depth: int = 2,
                 transform: Callable[[Window, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
                 ) -> None:
        if depth < 1:
            raise ValueError(_("prefetch depth must be >= 1, got {depth}").format(depth=depth))
        self._source = source
        self._windows = list(windows)
        self._transform = transform
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    def __len__(self) -> int:
        return len(self._windows)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for win in self._windows:
                if self._stop.is_set():
                    return
                rgb, valid = self._source.read(win)
                if self._transform is not None:
                    rgb, valid = self._transform(win, rgb, valid)
                if not self._put((win, rgb, valid)):
                    return
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(_Failure(exc))

    def start(self) -> Prefetcher:
        """Start the reader thread (iteration starts it on demand)."""
        if not self._started:
            self._started = True
            self._thread = threading.Thread(target=self._run, name="tile-prefetch", daemon=True)
            self._thread.start()
        return self

    def __iter__(self) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        if self._started:
            raise RuntimeError(_("a Prefetcher can be iterated only once"))
        self.start()
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the reader and wait for it to finish (idempotent)."""
        self._stop.set()
        while True:  # unblock a reader waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def alive(self) -> bool:
        """True while the reader thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def batched(items: Iterable[Any], n: int, on_wait: Callable[[float], None] | None = None) -> Iterator[list[Any]]:
    """Consecutive lists of up to ``n`` items (the last may be shorter). ``on_wait(seconds)`` is told how long each
    item took to arrive (with a :class:`Prefetcher`: the time the model waited for the reader)."""
    if n < 1:
        raise ValueError(_("batch size must be at least 1, got {n}").format(n=n))
    batch: list[Any] = []
    it = iter(items)
    while True:
        t0 = time.perf_counter()
        item = next(it, _END)
        if on_wait is not None:
            on_wait(time.perf_counter() - t0)
        if item is _END:
            break
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


_END = object()
