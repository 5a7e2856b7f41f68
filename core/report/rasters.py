"""Reading just the pixels a report needs: downsampled overviews, windows around findings, score rasters.

Images are opened with :func:`core.imagery.reader.open_scene` (the project's one reader) and read window by window, so a
huge raster never sits in memory. Heatmaps are float32 GeoTIFFs of calibrated scores (NaN = nodata) read with
rasterio windows or decimated reads.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from core.detection.heatmap import blend, colorize
from core.errors import CoreError
from core.imagery.sources import check_pixels
from core.types import Scene

_STRIP_PIXELS = 8_000_000  # pixels per strip when downsampling a whole scene


class SceneCache:
    """Opens each image file once per report and closes them all at the end (a context manager)."""

    def __init__(self) -> None:
        self._scenes: dict[Path, Scene | None] = {}
        self.errors: dict[Path, str] = {}

    def get(self, path: Path | None) -> Scene | None:
        """The opened scene of ``path``; None (reason in :attr:`errors`) when missing or unreadable."""
        if path is None:
            return None
        p = Path(path)
        if p not in self._scenes:
            from core.imagery.reader import open_scene

            try:
                self._scenes[p] = open_scene(p)
            except (CoreError, OSError, ValueError) as err:
                self._scenes[p] = None
                self.errors[p] = str(err)
        return self._scenes[p]

    def close(self) -> None:
        """Release every opened file."""
        for s in self._scenes.values():
            if s is not None:
                s.close()
        self._scenes.clear()

    def __enter__(self) -> SceneCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clip_window(col0: float, row0: float, col1: float, row1: float, width: int, height: int) -> Window | None:
    """Integer window covering [col0, col1) x [row0, row1) clipped to the image; None when nothing is left."""
    c0, r0 = max(0, math.floor(col0)), max(0, math.floor(row0))
    c1, r1 = min(width, math.ceil(col1)), min(height, math.ceil(row1))
    if c1 - c0 < 1 or r1 - r0 < 1:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def overview_shape(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(height, width) of a downsampled view whose longer side is at most ``max_side``."""
    f = max(1.0, max(width, height) / max_side)
    return max(1, round(height / f)), max(1, round(width / f))


def read_overview(scene: Scene, max_side: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """Whole scene downsampled (area average) to ``max_side``: (rgb uint8, valid bool), read in row strips."""
    oh, ow = overview_shape(scene.width, scene.height, max_side)
    strip = max(1, min(scene.height, _STRIP_PIXELS // max(1, scene.width)))
    rgbs, masks = [], []
    for r in range(0, scene.height, strip):
        h = min(strip, scene.height - r)
        rgb, valid = scene.read(Window(0, r, scene.width, h))
        th = max(1, round(h * oh / scene.height))
        rgbs.append(cv2.resize(rgb, (ow, th), interpolation=cv2.INTER_AREA))
        masks.append(cv2.resize(valid.astype(np.uint8) * 255, (ow, th), interpolation=cv2.INTER_AREA) > 127)
    rgb = cv2.resize(np.concatenate(rgbs), (ow, oh), interpolation=cv2.INTER_AREA)
    valid = cv2.resize(np.concatenate(masks).astype(np.uint8), (ow, oh), interpolation=cv2.INTER_NEAREST) > 0
    return rgb, valid


def _open_scores(path: Path) -> rasterio.DatasetReader:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def read_scores(path: Path | None, window: Window | None = None, max_side: int | None = None,
                full_size: tuple[int, int] | None = None) -> np.ndarray | None:
    """Calibrated scores of a heatmap GeoTIFF as float32 (NaN = nodata); None when the file is unusable.

    ``window`` is in the pixel grid of the scene, whose size is ``full_size`` (width, height); a heatmap stored
    at another size is scaled to it. ``max_side`` downsamples (average of valid pixels).
    """
    if path is None or not Path(path).is_file():
        return None
    try:
        with _open_scores(Path(path)) as ds:
            check_pixels(Path(path).name, ds.width, ds.height)
            sx = ds.width / full_size[0] if full_size else 1.0
            sy = ds.height / full_size[1] if full_size else 1.0
            if window is None:
                rw = Window(0, 0, ds.width, ds.height)
            else:
                c0, r0 = int(window.col_off * sx), int(window.row_off * sy)
                c1 = min(ds.width, max(c0 + 1, math.ceil((window.col_off + window.width) * sx)))
                r1 = min(ds.height, max(r0 + 1, math.ceil((window.row_off + window.height) * sy)))
                rw = Window(c0, r0, c1 - c0, r1 - r0)
            shape = None
            if max_side is not None and max(rw.width, rw.height) > max_side:
                shape = overview_shape(int(rw.width), int(rw.height), max_side)
            data = ds.read(1, window=rw, out_shape=shape, masked=True,
                           resampling=Resampling.average if shape else Resampling.nearest)
    except (RasterioIOError, OSError, ValueError):  # InputError (over the pixel cap) is a ValueError
        return None
    out = np.ma.filled(data.astype(np.float32), np.nan)
    out[~np.isfinite(out)] = np.nan
    return out


def blend_heat(grey: np.ndarray | None, scores: np.ndarray, threshold: float, vmax: float) -> np.ndarray:
    """RGB uint8: the project's fixed heatmap colours (``heatmap.colorize``) over a dimmed grey image.

    Below the threshold the image shows through; nodata (NaN) is hatched-free mid grey.
    """
    base = np.full(scores.shape, 160.0, np.float32) if grey is None else 0.85 * grey.astype(np.float32)
    out = blend(np.repeat(base[..., None], 3, axis=2), colorize(scores, threshold, vmax))
    out[~np.isfinite(scores)] = 128
    return out
