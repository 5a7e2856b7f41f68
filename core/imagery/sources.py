"""Pixel sources behind :class:`core.types.Scene`: in-memory frames and window-by-window rasters.

Both return ``(rgb uint8 H×W×3, valid bool H×W)`` for a :class:`rasterio.windows.Window` that lies inside the image
(``ValueError`` otherwise: callers clip). Both are safe to read from several threads at once: frames are immutable
arrays; rasters open one rasterio dataset per thread (GDAL handles must not be shared between threads).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from core.errors import ImageReadError, InputError
from core.i18n import _

#: Smallest side an image may have to be analysed.
MIN_SIDE = 32
#: Environment variable setting the most pixels (width x height) any raster or image may have; read from the
#: file's header before any pixel is read, tiled GeoTIFFs and heatmaps included.
ENV_MAX_PIXELS = "BDA_MAX_PIXELS"
#: Default of ``$BDA_MAX_PIXELS``: 2.5 gigapixels, a 50,000 x 50,000 orthomosaic.
DEFAULT_MAX_PIXELS = 2_500_000_000


def max_pixels() -> int:
    """The pixel cap: ``$BDA_MAX_PIXELS`` (a number such as ``4e9``) or :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(ENV_MAX_PIXELS, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value >= 1):  # also NaN
        raise InputError(_("{env_max_pixels}={raw!r} is not a pixel count; set it to a number such as 4e9 (or "
                           "unset it for the default {default_max_pixels:.2g})").format(
                             env_max_pixels=ENV_MAX_PIXELS, raw=raw, default_max_pixels=DEFAULT_MAX_PIXELS))
    return int(min(value, 2**62))


def check_pixels(name: str, width: int, height: int) -> None:
    """:class:`InputError` when a ``width`` x ``height`` image has more pixels than :func:`max_pixels` allows."""
    cap = max_pixels()
    if int(width) * int(height) > cap:
        raise InputError(_("{name} is {width}x{height} pixels ({value:.2f} gigapixels), more than the {value2:.2f} "
                           "gigapixels this server reads from one file; cut it into tiles (e.g. gdal_retile.py) or "
                           "ask the administrator to raise {env_max_pixels}").format(
                             name=name, width=width, height=height, value=width * height / 1e9, value2=cap / 1e9,
                             env_max_pixels=ENV_MAX_PIXELS))
#: Percentiles of the linear stretch applied to 16-bit / float imagery.
STRETCH_PERCENTILES = (2.0, 98.0)


def check_size(name: str, width: int, height: int) -> None:
    """:class:`InputError` when the image is smaller than ``MIN_SIDE`` on either side."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InputError(_("{name} is {width}x{height} pixels: too small to analyse, at least "
                           "{min_side}x{min_side} is needed").format(
                             name=name, width=width, height=height, min_side=MIN_SIDE))


def check_window(window: Window, width: int, height: int) -> None:
    """Raise ``ValueError`` unless ``window`` is non-empty and lies entirely inside a ``width``x``height`` image."""
    if window.height <= 0 or window.width <= 0:
        raise ValueError(_("window {window} is empty; height and width must be positive").format(window=window))
    r0, c0 = window.row_off, window.col_off
    if r0 < 0 or c0 < 0 or r0 + window.height > height or c0 + window.width > width:
        raise ValueError(_("window {window} extends outside the "
                           "{width}x{height} image; clip it to the image first").format(
                             window=window, width=width, height=height))


def percentile_stretch(values: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float]:
    """(low, high) 2nd/98th percentiles of the finite (and valid) values; high > low guaranteed."""
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(v)
    if valid is not None:
        keep &= valid
    v = v[keep]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, STRETCH_PERCENTILES))
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def apply_stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map [lo, hi] -> [0, 255] as uint8 (clipped; NaN -> 0)."""
    with np.errstate(invalid="ignore"):
        out = (np.asarray(values, dtype=np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.nan_to_num(np.clip(out, 0.0, 255.0), nan=0.0).astype(np.uint8)


class FrameSource:
    """A decoded frame held in memory (uint8 RGB plus an optional validity mask)."""

    def __init__(self, rgb: np.ndarray, valid: np.ndarray | None = None) -> None:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(_("frame must be uint8 HxWx3, got {dtype} {shape}").format(
                                 dtype=rgb.dtype, shape=rgb.shape))
        self.rgb = rgb
        self.rgb.flags.writeable = False
        self.valid = valid
        if valid is not None:
            self.valid.flags.writeable = False
        self._collar: np.ndarray | None = None

    @property
    def height(self) -> int:
        """Rows of the frame."""
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """Columns of the frame."""
        return int(self.rgb.shape[1])

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Copy of the window's pixels and validity mask."""
        check_window(window, self.width, self.height)
        rs, cs = window.toslices()
        valid = self.valid[rs, cs].copy() if self.valid is not None else np.ones((window.height, window.width), bool)
        return self.rgb[rs, cs].copy(), valid

    def collar(self) -> np.ndarray:
        """The frame's unmarked black collar (:func:`core.imagery.nodata.edge_collar`), computed on first use."""
        if self._collar is None:
            from core.imagery.nodata import edge_collar

            self._collar = edge_collar(self.rgb)
            self._collar.flags.writeable = False
        return self._collar

    def close(self) -> None:
        """Nothing to release (the array is freed with the scene)."""


class RasterSource:
    """Reads RGB windows of a raster file through rasterio, never holding the whole raster in memory.

    ``bands`` are the 1-based band indexes used as (R, G, B) (one index for grey/palette rasters). ``stretch`` holds
    one (low, high) pair per used band for non-uint8 data, computed once per scene so every window shares the same
    mapping. ``lut`` is a palette (N×4 uint8 RGBA) for paletted rasters. ``masked`` says whether GDAL's dataset mask
    (nodata / alpha / internal mask) must be read.
    """

    def __init__(self, path: str | Path, width: int, height: int, bands: tuple[int, ...], *,
                 stretch: list[tuple[float, float]] | None = None, lut: np.ndarray | None = None,
                 masked: bool = True, check_finite: bool = False) -> None:
        self.path = str(path)
        self.width, self.height = int(width), int(height)
        self.bands = tuple(int(b) for b in bands)
        self.stretch = stretch
        self.lut = lut
        self.masked = masked
        self.check_finite = check_finite
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []

    def _dataset(self) -> Any:
        ds = getattr(self._local, "ds", None)
        if ds is None or ds.closed:
            with self._lock:
                ds = rasterio.open(self.path)
                self._open.append(ds)
            self._local.ds = ds
        return ds

    def read_raw(self, window: Window | None = None,
                 out_shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Band values (k×h×w, file dtype) and validity mask, optionally decimated to ``out_shape``."""
        ds = self._dataset()
        shape = None if out_shape is None else (len(self.bands), *out_shape)
        data = ds.read(list(self.bands), window=window, out_shape=shape)
        if self.masked:
            valid = ds.dataset_mask(window=window, out_shape=out_shape) > 0
        else:
            valid = np.ones(data.shape[1:], dtype=bool)
        if self.check_finite:
            valid &= np.all(np.isfinite(data), axis=0)
        return data, valid

    def to_rgb(self, data: np.ndarray) -> np.ndarray:
        """k×h×w band values -> h×w×3 uint8 using this scene's palette or stretch."""
        if self.lut is not None:
            idx = np.clip(np.nan_to_num(data[0], nan=0).astype(np.int64), 0, len(self.lut) - 1)
            return self.lut[idx, :3]
        if self.stretch is not None:
            bands = [apply_stretch(data[i], *self.stretch[i]) for i in range(data.shape[0])]
        else:
            bands = [data[i].astype(np.uint8, copy=False) for i in range(data.shape[0])]
        if len(bands) == 1:
            bands = bands * 3
        return np.ascontiguousarray(np.stack(bands, axis=-1))

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 and validity of ``window`` (read from the file, bounded memory)."""
        check_window(window, self.width, self.height)
        try:
            data, valid = self.read_raw(window)
        except Exception as exc:  # RasterioIOError / GDAL CPLE_* on a damaged block: say so, never a raw error
            raise ImageReadError(_("{name}: pixels of {window} cannot be read, the file is damaged there ({exc}); "
                                   "export or copy it again").format(
                                     name=Path(self.path).name, window=window, exc=exc)) from exc
        rgb = self.to_rgb(data)
        if self.lut is not None and self.lut.shape[1] == 4:
            idx = np.clip(data[0].astype(np.int64), 0, len(self.lut) - 1)
            valid &= self.lut[idx, 3] > 0
        return rgb, valid

    def close(self) -> None:
        """Close every per-thread dataset handle (a later read reopens the file)."""
        with self._lock:
            for ds in self._open:
                ds.close()
            self._open.clear()
