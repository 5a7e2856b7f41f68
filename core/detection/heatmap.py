"""Heatmap files: a calibrated float32 GeoTIFF written band by band, its preview, and a fixed colour map.

Scores are in calibrated units (:mod:`core.detection.calibration`): 0 ≈ a median normal pixel, 1 = the model's 99th
percentile of normal pixels, NaN = nodata. The colour map is fixed in those units relative to the threshold, so
the same colour means the same score in every image (never a per-image min-max stretch).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from core.errors import ImageReadError, InputError
from core.i18n import _
from core.imagery.sources import check_pixels
from core.types import GeoRef, Heatmap

PREVIEW_MAX = 2048  #: longest side of the in-memory preview, px
BLOCK = 256  #: GeoTIFF tile size; rows are buffered to whole block rows before writing
UNITS = "calibrated anomaly score (0 = median normal pixel, 1 = 99th percentile of normal pixels)"

#: Colour ramp from the threshold (u=0) to ``vmax`` (u=1): pale yellow -> orange -> deep red (ColorBrewer YlOrRd).
_ANCHORS = ((0.0, (255, 237, 160)), (0.2, (254, 217, 118)), (0.4, (253, 141, 60)),
            (0.7, (227, 26, 28)), (1.0, (128, 0, 38)))
#: Default top of the colour ramp as a multiple of the threshold: the start of the "destroyed" band.
VMAX_FACTOR = 2.5


def _lut() -> np.ndarray:
    u = np.linspace(0, 1, 256)
    xs = [a for a, _ in _ANCHORS]
    return np.stack([np.interp(u, xs, [c[i] for _, c in _ANCHORS]) for i in range(3)], axis=1).round().astype(
        np.uint8)


LUT = _lut()


def default_vmax(threshold: float) -> float:
    """Top of the colour ramp for a threshold: ``2.5 × threshold`` (``threshold + 1.5`` if threshold <= 0)."""
    return threshold * VMAX_FACTOR if threshold > 0 else threshold + 1.5


def blend(rgb: np.ndarray, rgba: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """``rgba`` (e.g. :func:`colorize`) laid over ``rgb`` (H×W×3) at ``opacity`` × its own alpha; ``rgba`` is
    resized to ``rgb`` by nearest neighbour when the sizes differ. The project's one alpha blend (the Analyze page's
    overlay, the report's figures and chips). Returns uint8 RGB."""
    h, w = rgb.shape[:2]
    if rgba.shape[:2] != (h, w):
        rows = np.minimum((np.arange(h) * (rgba.shape[0] / h)).astype(np.intp), rgba.shape[0] - 1)
        cols = np.minimum((np.arange(w) * (rgba.shape[1] / w)).astype(np.intp), rgba.shape[1] - 1)
        rgba = rgba[rows][:, cols]
    a = rgba[..., 3:4].astype(np.float32) * (float(opacity) / 255.0)
    out = rgb.astype(np.float32) * (1 - a) + rgba[..., :3].astype(np.float32) * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def colorize(scores: np.ndarray, threshold: float, vmax: float | None = None) -> np.ndarray:
    """Calibrated scores (H×W, NaN = nodata) -> RGBA uint8 (H×W×4) with a fixed colour map.

    Below ``threshold`` and NaN: fully transparent. From ``threshold`` to ``vmax`` (default
    :func:`default_vmax`) the colour runs pale yellow -> deep red and opacity 150 -> 230; above ``vmax`` it stays
    at the top colour. The mapping depends only on the score and the threshold, never on the image's range.
    """
    s = np.asarray(scores, dtype=np.float32)
    if s.ndim != 2:
        raise InputError(_("scores must be a 2-D array, got shape {shape}").format(shape=s.shape))
    top = default_vmax(threshold) if vmax is None else float(vmax)
    if not top > threshold:
        raise InputError(_("colour-map top vmax={top} must be above the threshold {threshold}").format(
                             top=top, threshold=threshold))
    with np.errstate(invalid="ignore", over="ignore"):
        on = np.isfinite(s) & (s >= threshold)
        u = np.clip((s - threshold) / (top - threshold), 0, 1)
    u = np.where(on, u, 0)  # NaN and ±inf are off: u is 0 there, never NaN
    out = np.empty(s.shape + (4,), np.uint8)
    out[..., :3] = LUT[np.round(u * 255).astype(np.uint8)]
    out[..., 3] = np.where(on, np.round(150 + 80 * u), 0).astype(np.uint8)
    return out


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()  #: what open() would have given; mkstemp's 0600 would hide files from others


def _atomic_target(path: Path) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)
    return tmp


def write_overlay_png(path: str | Path, scores: np.ndarray, threshold: float, vmax: float | None = None) -> Path:
    """Write :func:`colorize` of ``scores`` as an RGBA PNG (atomic: temp file + rename); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgba = colorize(scores, threshold, vmax)
    tmp = _atomic_target(path)
    try:
        # zlib level 1: 4-6× faster than the default 6 on a 2048² overlay (the last serial step of an analysis),
        # for a file about 3× larger (a few hundred kB, local)
        Image.fromarray(rgba, "RGBA").save(tmp, format="PNG", optimize=False, compress_level=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class _Preview:
    """Block-mean downsampling (NaN-aware) of rows streamed top to bottom."""

    def __init__(self, width: int, height: int, max_side: int) -> None:
        self.f = max(1, math.ceil(max(width, height) / max_side))
        self.pw, self.ph = math.ceil(width / self.f), math.ceil(height / self.f)
        self.width = width
        self._sum = np.zeros((self.ph, self.pw), np.float64)
        self._cnt = np.zeros((self.ph, self.pw), np.int32)

    def add(self, row0: int, band: np.ndarray) -> None:
        n = band.shape[0]
        b = band
        if self.pw * self.f != self.width:
            b = np.full((n, self.pw * self.f), np.nan, np.float32)
            b[:, :self.width] = band
        b = b.reshape(n, self.pw, self.f)
        ok = np.isfinite(b)
        s = np.where(ok, b, 0).sum(axis=2, dtype=np.float64)
        c = ok.sum(axis=2, dtype=np.int32)
        prow = (row0 + np.arange(n)) // self.f
        starts = np.flatnonzero(np.r_[True, prow[1:] != prow[:-1]])
        self._sum[prow[starts]] += np.add.reduceat(s, starts, axis=0)
        self._cnt[prow[starts]] += np.add.reduceat(c, starts, axis=0)

    def result(self) -> np.ndarray:
        out = np.full((self.ph, self.pw), np.nan, np.float32)
        np.divide(self._sum, self._cnt, out=out, where=self._cnt > 0, casting="unsafe")
        return out


class HeatmapWriter:
    """Write a calibrated float32 heatmap GeoTIFF row band by row band; keep a downsampled preview while streaming.

    The file is tiled 256×256, deflate-compressed with floating-point predictor 3, nodata NaN, and carries the
    input's CRS and transform (a plain TIFF without CRS when ``georef`` is None). It is written under a temporary
    name in the same folder and renamed into place only when every row was written and the block exits cleanly,
    so a reader never sees half a heatmap. Rows must be written in order; use the writer as a
    :class:`core.detection.stitching.Stitcher` band writer (it is callable as ``writer(row0, band)``).
    """

    def __init__(self, path: str | Path, width: int, height: int, georef: GeoRef | None, *,
                 preview_max: int = PREVIEW_MAX, tags: dict[str, Any] | None = None) -> None:
        if width <= 0 or height <= 0:
            raise InputError(_("heatmap size must be positive, got {width}x{height}").format(
                                 width=width, height=height))
        self.path = Path(path)
        self.width, self.height, self.georef = width, height, georef
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self._preview = _Preview(width, height, preview_max)
        self._ds: Any = None
        self._tmp: str | None = None
        self._buf: list[np.ndarray] = []
        self._buf_row = 0  # first row held in the buffer
        self._next = 0  # next row expected
        self._n = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._min = math.inf
        self._max = -math.inf
        self.preview: np.ndarray | None = None
        self.preview_scale: float = float(self._preview.f)

    def __enter__(self) -> HeatmapWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _atomic_target(self.path)
        profile: dict[str, Any] = {
            "driver": "GTiff", "width": self.width, "height": self.height, "count": 1, "dtype": "float32",
            "nodata": float("nan"), "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate",
            # zlevel 1: 2.5× less CPU than the default 6 for a 3 % larger file (a 2048² heatmap: 0.11 vs 0.28 CPU-s)
            "predictor": 3, "zlevel": 1, "BIGTIFF": "IF_SAFER"}
        if self.georef is not None:
            profile["crs"] = CRS.from_user_input(self.georef.crs)
            profile["transform"] = self.georef.transform
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            self._ds = rasterio.open(self._tmp, "w", **profile)
        return self

    def set_tags(self, **tags: Any) -> None:
        """Add dataset tags written at close (e.g. ``image_score``, ``threshold``, model name)."""
        self.tags.update({str(k): str(v) for k, v in tags.items()})

    def __call__(self, row0: int, band: np.ndarray) -> None:
        """Same as :meth:`write_rows` (so the writer can be a stitcher's band sink)."""
        self.write_rows(row0, band)

    def write_rows(self, row0: int, band: np.ndarray) -> None:
        """Write rows ``row0 .. row0 + len(band)`` (float32, width = heatmap width); rows must come in order."""
        if self._ds is None:
            raise RuntimeError(_("HeatmapWriter is not open; use it as a context manager"))
        band = np.asarray(band, dtype=np.float32)
        if band.ndim != 2 or band.shape[1] != self.width:
            raise ValueError(_("band must be (rows, {width}), got {shape}").format(
                                 width=self.width, shape=band.shape))
        if row0 != self._next:
            raise ValueError(_("rows must be written in order: expected row {next}, got {row0}").format(
                                 next=self._next, row0=row0))
        if row0 + band.shape[0] > self.height:
            raise ValueError(_("band rows {row0}..{value} exceed the height {height}").format(
                                 row0=row0, value=row0 + band.shape[0], height=self.height))
        self._next += band.shape[0]
        self._preview.add(row0, band)
        fin = band[np.isfinite(band)]
        if fin.size:
            self._n += fin.size
            self._sum += float(fin.sum(dtype=np.float64))
            self._sumsq += float(np.square(fin, dtype=np.float64).sum())
            self._min = min(self._min, float(fin.min()))
            self._max = max(self._max, float(fin.max()))
        self._buf.append(band)
        held = self._next - self._buf_row
        full = (held // BLOCK) * BLOCK if self._next < self.height else held
        if full:
            self._write_buffer(full)

    def _write_buffer(self, rows: int) -> None:
        data = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
        out, rest = data[:rows], data[rows:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            self._ds.write(out[None], window=Window(0, self._buf_row, self.width, rows))
        self._buf_row += rows
        self._buf = [rest] if rest.shape[0] else []

    @property
    def stats(self) -> dict[str, float]:
        """Streaming statistics of the finite scores written so far."""
        n = self._n
        mean = self._sum / n if n else float("nan")
        var = max(self._sumsq / n - mean * mean, 0.0) if n else float("nan")
        return {"valid_px": float(n), "valid_fraction": n / (self.width * self.height),
                "mean": mean, "std": math.sqrt(var) if n else float("nan"),
                "min": self._min if n else float("nan"), "max": self._max if n else float("nan")}

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        ok = exc_type is None
        try:
            if ok and self._next != self.height:
                raise ValueError(_("heatmap incomplete: {next} of {height} rows written").format(
                                     next=self._next, height=self.height))
            if ok and self._buf:
                self._write_buffer(self._next - self._buf_row)
            if ok:
                stat_tags = {f"stat_{k}": repr(v) for k, v in self.stats.items()}
                self._ds.update_tags(**stat_tags, **self.tags)
            if ok:
                self._ds.set_band_description(1, "anomaly score (calibrated)")
                self._ds.update_tags(1, units=UNITS)
        except BaseException:
            ok = False
            raise
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._ds.close()
            self._ds = None
            if ok:
                os.replace(self._tmp, self.path)
                self.preview = self._preview.result()
            elif self._tmp and os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def heatmap(self, image_score: float = float("nan")) -> Heatmap:
        """The :class:`Heatmap` record of the finished file (preview, scale and stats; full scores stay on disk)."""
        if self.preview is None:
            raise RuntimeError(_("the heatmap is not finished yet"))
        return Heatmap(width=self.width, height=self.height, path=self.path, preview=self.preview,
                       preview_scale=self.preview_scale, georef=self.georef, image_score=image_score,
                       stats=self.stats)


def read_heatmap(path: str | Path, *, preview_max: int | None = None) -> Heatmap:
    """Open a heatmap GeoTIFF written by :class:`HeatmapWriter`.

    With ``preview_max`` None the full score array is read into ``scores`` (also used as the preview). Otherwise,
    when the raster's longest side exceeds ``preview_max``, only a block-mean preview (NaN-aware, the same as the
    writer's) is built, reading one block row at a time (``scores`` None).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(_("heatmap file not found: {path}").format(path=path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                if ds.count < 1:
                    raise ImageReadError(_("{name} has no bands; it is not a heatmap written by this tool").format(
                                             name=path.name))
                georef = None
                if ds.crs is not None:
                    georef = GeoRef(crs=ds.crs.to_string(), transform=ds.transform)
                tags = ds.tags()
                w, h = ds.width, ds.height
                check_pixels(path.name, w, h)
                pv = _Preview(w, h, max(w, h) if preview_max is None else preview_max)
                if pv.f == 1:
                    scores = ds.read(1, masked=False).astype(np.float32)
                    preview = scores
                else:
                    scores = None
                    step = BLOCK * pv.f
                    for r in range(0, h, step):
                        n = min(step, h - r)
                        pv.add(r, ds.read(1, window=Window(0, r, w, n)).astype(np.float32))
                    preview = pv.result()
    except RasterioError as exc:
        raise ImageReadError(_("cannot read heatmap {name}: {exc}. Re-run the analysis to rewrite it.").format(
                                 name=path.name, exc=exc)) from exc
    stats = {k[len("stat_"):]: float(v) for k, v in tags.items() if k.startswith("stat_")}
    image_score = float(tags.get("image_score", "nan"))
    return Heatmap(width=w, height=h, path=path, scores=scores, preview=preview, preview_scale=float(pv.f),
                   georef=georef, image_score=image_score, stats=stats)


def set_georef(path: str | Path, georef: GeoRef) -> None:
    """Give an existing heatmap GeoTIFF ``georef``'s CRS and transform in place (pixels untouched), e.g. once an
    analyst has placed an un-georeferenced frame on the map, so exports and map overlays carry the location."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path, "r+") as ds:
                ds.crs = CRS.from_user_input(georef.crs)
                ds.transform = georef.transform
    except (RasterioError, OSError) as exc:
        raise ImageReadError(_("could not write the location into {name}: {exc}").format(
                                 name=Path(path).name, exc=exc)) from exc
