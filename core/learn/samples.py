"""Training data: find images, sample patches from frames and large rasters, outlier exposure and confetti.

Georeferenced scenes (GeoTIFF tiles, xBD) are sampled as random native-resolution windows (with slight scale
jitter); frames (photos, drone JPEGs) are resized as a whole and cropped, as FCDD does for natural images. A strip
at the bottom of every georeferenced scene, and a share of the frames, are held out for calibration.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from rasterio.windows import Window

from core.errors import CoreError, TrainingDataError
from core.i18n import _
from core.imagery.nodata import read_valid
from core.learn.synthetic import confetti, region
from core.types import Scene

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".jp2"}
CACHE_MAX_PIXELS = 16_000_000  # scenes up to this size are decoded once and kept; larger ones are read by window
HOLDOUT_FRACTION = 0.15


def collect_images(specs: Sequence[str | Path], what: str = "normal") -> list[Path]:
    """Expand folders (recursively), glob patterns and files into a sorted list of image paths."""
    found: list[Path] = []
    for spec in specs:
        s = str(spec)
        p = Path(s).expanduser()
        if p.is_dir():
            found += [f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_EXTS]
        elif any(c in s for c in "*?["):
            found += [Path(f) for f in sorted(glob.glob(s, recursive=True))
                      if Path(f).is_file() and Path(f).suffix.lower() in IMAGE_EXTS]
        elif p.is_file():
            found.append(p)
        else:
            raise TrainingDataError(_("{what} data not found: {s} is neither a file, a folder nor a glob that "
                                      "matches").format(what=what, s=s))
    uniq = list(dict.fromkeys(f.resolve() for f in found))
    if not uniq:
        raise TrainingDataError(_("no {what} images found in {value} (looked for {value2})").format(
                                    what=what, value=', '.join(map(str, specs)),
                                    value2=', '.join(sorted(IMAGE_EXTS))))
    return uniq


@dataclass
class _Item:
    scene: Scene
    cached: np.ndarray | None  # full RGB when small enough
    valid: np.ndarray | None
    georef: bool
    rows: tuple[int, int]  # usable row range (training part or held-out strip)
    exclude: list[tuple[int, int, int, int]] = field(default_factory=list)  # row0,col0,row1,col1 px


def _exclusion_rects(scene: Scene, bounds: Sequence[tuple[float, float, float, float]]) -> list[tuple[int, ...]]:
    from core.geo.georef import lonlat_to_pixel

    rects = []
    for w, s, e, n in bounds:
        lons = np.array([w, e, e, w])
        lats = np.array([s, s, n, n])
        cols, rows = lonlat_to_pixel(scene.georef, lons, lats)
        r0, r1 = int(math.floor(rows.min())), int(math.ceil(rows.max()))
        c0, c1 = int(math.floor(cols.min())), int(math.ceil(cols.max()))
        if r1 > 0 and c1 > 0 and r0 < scene.height and c0 < scene.width:
            rects.append((r0, c0, r1, c1))
    return rects


def _part_rows(height: int, valid: np.ndarray | None, part: str) -> tuple[int, int]:
    """Rows of a georeferenced scene for ``part``: the held-out strip is the last :data:`HOLDOUT_FRACTION` of the
    rows that hold valid pixels (a tilted orthomosaic or a reprojected tile often has nodata below its content;
    a strip of the raw rows there would leave nothing to calibrate on), the training part the rows above it."""
    lo, hi = 0, height
    if valid is not None and valid.any():
        rows = np.flatnonzero(valid.any(axis=1))
        lo, hi = int(rows[0]), int(rows[-1]) + 1
    split = lo + int((hi - lo) * (1 - HOLDOUT_FRACTION))
    return (0, split) if part == "train" else (split, hi)


class PatchPool:
    """Random square patches of ``patch`` px from a set of images."""

    def __init__(self, paths: Sequence[Path], patch: int, *, part: str = "train",
                 exclude_bounds: Sequence[tuple[float, float, float, float]] = (),
                 frame_holdout_every: int = 0, warnings: list[str] | None = None) -> None:
        from core.imagery.reader import open_scene

        self.patch = patch
        self.items: list[_Item] = []
        self.warnings = warnings if warnings is not None else []
        for i, path in enumerate(paths):
            try:
                scene = open_scene(path)
            except CoreError as exc:
                self.warnings.append(_("skipped {name}: {message}").format(name=Path(path).name, message=exc))
                continue
            georef = scene.kind in ("geotiff", "xbd") and scene.georef is not None
            if not georef and frame_holdout_every:
                is_holdout = i % frame_holdout_every == frame_holdout_every - 1
                if is_holdout != (part == "holdout"):
                    scene.close()
                    continue
            cached = valid = None
            if scene.width * scene.height <= CACHE_MAX_PIXELS:
                cached, valid = read_valid(scene)
            rows = _part_rows(scene.height, valid, part) if georef else (0, scene.height)
            if georef and rows[1] - rows[0] < patch // 2:
                scene.close()
                continue
            if cached is not None and valid is not None:
                if not georef:  # frames: keep a copy scaled so the short side is ~2 patches
                    f = min(1.0, 2.0 * patch / min(scene.width, scene.height))
                    if f < 1.0:
                        size = (max(patch, round(scene.width * f)), max(patch, round(scene.height * f)))
                        cached = cv2.resize(cached, size, interpolation=cv2.INTER_AREA)
                        valid = cv2.resize(valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
            excl = _exclusion_rects(scene, exclude_bounds) if (georef and exclude_bounds) else []
            self.items.append(_Item(scene, cached, valid, georef, rows, excl))
        if not self.items:
            raise TrainingDataError(_("none of the given images could be used for training ({reason}); give "
                                      "readable images (PNG, JPEG, GeoTIFF) with valid pixels").format(
                                          reason=self.warnings[0] if self.warnings else _("no images")))

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, rng: np.random.Generator, tries: int = 30) -> np.ndarray:
        """One random uint8 patch (patch, patch, 3)."""
        for _try in range(tries):
            it = self.items[int(rng.integers(len(self.items)))]
            out = self._sample_item(it, rng)
            if out is not None:
                return out
        raise TrainingDataError(_("could not draw a valid training patch (images mostly nodata or excluded)"))

    def _sample_item(self, it: _Item, rng: np.random.Generator) -> np.ndarray | None:
        p = self.patch
        if it.georef:
            side = int(round(p * rng.uniform(0.8, 1.25)))
            r_lo, r_hi = it.rows
            h = min(side, r_hi - r_lo)
            w = min(side, it.scene.width)
            r = int(rng.integers(r_lo, r_hi - h + 1))
            c = int(rng.integers(0, it.scene.width - w + 1))
            if any(r < r1 and r + h > r0 and c < c1 and c + w > c0 for r0, c0, r1, c1 in it.exclude):
                return None
            if it.cached is not None:
                rgb, valid = it.cached[r:r + h, c:c + w], it.valid[r:r + h, c:c + w]
            else:
                rgb, valid = read_valid(it.scene, Window(c, r, w, h))
            if valid.mean() < 0.9:
                return None
            return cv2.resize(rgb, (p, p), interpolation=cv2.INTER_AREA if side > p else cv2.INTER_LINEAR)
        img = it.cached if it.cached is not None else it.scene.read()[0]
        ih, iw = img.shape[:2]
        scale = p * rng.uniform(1.0, 1.6) / min(ih, iw)  # whole-image resize, then random crop
        size = (max(p, round(iw * scale)), max(p, round(ih * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        r = int(rng.integers(0, size[1] - p + 1))
        c = int(rng.integers(0, size[0] - p + 1))
        return img[r:r + p, c:c + p]

    def grid(self, max_patches: int = 96) -> np.ndarray:
        """Deterministic patches covering the pool (for calibration / validation)."""
        p = self.patch
        out: list[np.ndarray] = []
        for it in self.items:
            if it.georef:
                r_lo, r_hi = it.rows
                for r in range(r_lo, max(r_lo, r_hi - p) + 1, p):
                    for c in range(0, max(0, it.scene.width - p) + 1, p):
                        h, w = min(p, r_hi - r), min(p, it.scene.width - c)
                        rgb, valid = (it.cached[r:r + h, c:c + w], it.valid[r:r + h, c:c + w]) \
                            if it.cached is not None else read_valid(it.scene, Window(c, r, w, h))
                        if valid.mean() >= 0.9 and h == p and w == p:
                            out.append(rgb)
            else:
                img = it.cached if it.cached is not None else it.scene.read()[0]
                ih, iw = img.shape[:2]
                s = p / min(ih, iw)
                img = cv2.resize(img, (max(p, round(iw * s)), max(p, round(ih * s))), interpolation=cv2.INTER_AREA)
                r0, c0 = (img.shape[0] - p) // 2, (img.shape[1] - p) // 2
                out.append(img[r0:r0 + p, c0:c0 + p])
        if not out:
            raise TrainingDataError(_("no held-out normal patches could be cut for calibration; add more normal "
                                      "images"))
        idx = np.linspace(0, len(out) - 1, num=min(max_patches, len(out))).round().astype(int)
        return np.stack([out[i] for i in idx])

    def close(self) -> None:
        """Release every scene's file handles."""
        for it in self.items:
            it.scene.close()


def augment(rgb: np.ndarray, rng: np.random.Generator, overhead: bool = True) -> np.ndarray:
    """Flips (and 90° turns for overhead imagery), mild brightness/contrast/saturation jitter."""
    if rng.random() < 0.5:
        rgb = rgb[:, ::-1]
    if overhead:
        if rng.random() < 0.5:
            rgb = rgb[::-1]
        rgb = np.rot90(rgb, int(rng.integers(4)))
    x = rgb.astype(np.float32)
    x = (x - x.mean()) * rng.uniform(0.85, 1.15) + x.mean() * rng.uniform(0.85, 1.15)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.8, 1.2)
    return np.clip(x, 0, 255).astype(np.uint8)


class OneClassStream(torch.utils.data.IterableDataset[tuple[np.ndarray, int]]):
    """Endless (image uint8 HWC, label) samples: normal (0), outlier exposure / confetti anomalies (1)."""

    def __init__(self, normal: PatchPool, anomalies: PatchPool | None, *, anomaly_rate: float = 0.5,
                 confetti_share: float = 0.5, region_share: float = 0.0, seed: int = 0) -> None:
        self.normal, self.anomalies = normal, anomalies
        self.region_share = region_share
        self.anomaly_rate, self.confetti_share, self.seed = anomaly_rate, confetti_share, seed

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            yield self.draw(rng)

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """One sample; anomalies are real outliers or confetti-on-normal per ``confetti_share``."""
        if rng.random() >= self.anomaly_rate:
            return augment(self.normal.sample(rng), rng), 0
        if self.anomalies is None or rng.random() < self.confetti_share:
            base = augment(self.normal.sample(rng), rng)
            img, _mask = (region if rng.random() < self.region_share else confetti)(base, rng)
            return img, 1
        return augment(self.anomalies.sample(rng), rng, overhead=False), 1
