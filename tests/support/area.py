"""A generated disaster area: a grid of adjacent GeoTIFF tiles (UTM, 0.5 m) with fields, roofs and debris.

Used by the Ray engine tests and ``benchmarks/bench_ray.py``. One debris patch is put across the seam of the first
two tiles of the top row, so a damaged block cut by a tile edge can be checked to come out as one finding.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine

CRS = "EPSG:32615"
GSD = 0.5
ORIGIN = (360000.0, 4105000.0)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fields and roofs: smooth colour noise with rectangles, uint8 (size, size, 3)."""
    low = rng.integers(60, 140, (max(2, size // 64), max(2, size // 64), 3)).astype(np.float32)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 6, (size, size, 3)).astype(np.float32)
    for _ in range(size * size // 40000):
        x, y = (int(v) for v in rng.integers(0, size - 40, 2))
        w, h = (int(v) for v in rng.integers(12, 40, 2))
        img[y:y + h, x:x + w] = rng.integers(90, 200, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _debris(img: np.ndarray, rng: np.random.Generator, y: int, x: int, h: int, w: int) -> None:
    """Scatter bright, dark and coloured fragments over ``img[y:y+h, x:x+w]`` (clipped to the tile)."""
    y0, x0 = max(0, y), max(0, x)
    y1, x1 = min(img.shape[0], y + h), min(img.shape[1], x + w)
    if y1 <= y0 or x1 <= x0:
        return
    patch = rng.integers(0, 256, (y1 - y0, x1 - x0, 3)).astype(np.uint8)
    img[y0:y1, x0:x1] = patch


def tile_transform(row: int, col: int, size: int) -> Affine:
    """The transform of tile (row, col) of an area of ``size``-px tiles."""
    return Affine(GSD, 0.0, ORIGIN[0] + col * size * GSD, 0.0, -GSD, ORIGIN[1] - row * size * GSD)


def write_area(folder: Path, rows: int, cols: int, size: int, seed: int = 0, debris: int = 2) -> list[Path]:
    """Write ``rows``×``cols`` adjacent tiles of ``size``² px into ``folder``; returns their paths, row-major.

    Every tile gets ``debris`` random debris patches; the patch across the seam of tiles (0, 0) and (0, 1) sits
    at rows ``size // 3 .. + 60`` and straddles the shared edge by 40 px on each side.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in range(rows):
        for c in range(cols):
            rng = np.random.default_rng(seed * 100_003 + r * 1000 + c)
            img = _texture(rng, size)
            for _ in range(debris):
                y, x = (int(v) for v in rng.integers(size // 8, size - size // 4, 2))
                _debris(img, rng, y, x, 50, 50)
            seam = np.random.default_rng(seed + 7)
            if r == 0 and c == 0:
                _debris(img, seam, size // 3, size - 40, 60, 40)
            if r == 0 and c == 1:
                seam.integers(0, 256, (60, 40, 3))  # the left half's draw, so the halves differ like one patch
                _debris(img, seam, size // 3, 0, 60, 40)
            path = folder / f"area_r{r:02d}_c{c:02d}.tif"
            with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=CRS,
                               transform=tile_transform(r, c, size), tiled=True, blockxsize=256, blockysize=256,
                               compress="deflate", photometric="RGB") as ds:
                ds.write(img.transpose(2, 0, 1))
            paths.append(path)
    return paths
