"""Split a finding larger than a building block at the local maxima of its scores (issue 13).

A thresholded heatmap blob can cover a whole neighbourhood (the Joplin tornado's flattened blocks came out as one
finding of 18 hectares); such a finding cannot be counted, graded or handed to a field team. A region larger than
``max_px`` score pixels is cut into the zones of its local score maxima (peaks at least ``spacing_px`` apart; each
pixel goes to its nearest peak), and any zone still larger than ``max_px`` is cut along a grid of cells of
``max_px`` pixels, so no piece ever exceeds it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Largest finding on the ground, m² (about one building block, 100 m x 100 m); larger ones are split.
BLOCK_M2 = 10_000.0
#: The same without georeferencing, in full-resolution pixels (200 x 200 px, a block at 0.5 m per pixel).
BLOCK_PX = 40_000.0


def _pieces(mask: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """8-connected parts of a bool mask as (crop, col offset, row offset)."""
    n, lab, st, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out: list[tuple[np.ndarray, int, int]] = []
    for i in range(1, n):
        x, y, w, h, _ = (int(v) for v in st[i])
        out.append((lab[y:y + h, x:x + w] == i, x, y))
    return out


def _grid(mask: np.ndarray, ox: int, oy: int, max_px: float) -> list[tuple[np.ndarray, int, int]]:
    side = max(2, int(math.floor(math.sqrt(max_px))))
    out: list[tuple[np.ndarray, int, int]] = []
    h, w = mask.shape
    for r in range(0, h, side):
        for c in range(0, w, side):
            cell = mask[r:r + side, c:c + side]
            if cell.any():
                out.extend((m, ox + c + x, oy + r + y) for m, x, y in _pieces(cell))
    return out


def split_region(region: np.ndarray, scores: np.ndarray, max_px: float, spacing_px: int) -> list[
        tuple[np.ndarray, int, int]]:
    """Pieces (bool crop, col offset, row offset within ``region``) of a region; ``[(region, 0, 0)]`` when it is
    at most ``max_px`` pixels. ``scores`` is the score crop of the same shape (NaN outside data)."""
    if region.sum() <= max_px:
        return [(region, 0, 0)]
    s = np.where(region & np.isfinite(scores), scores, -np.inf).astype(np.float32)
    k = max(3, int(spacing_px) | 1)
    smooth = cv2.GaussianBlur(np.where(np.isfinite(s), s, 0).astype(np.float32), (0, 0), max(1.0, k / 6))
    smooth[~region] = -np.inf
    peaks = (smooth >= cv2.dilate(smooth, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))) & region
    n, markers = cv2.connectedComponents(peaks.astype(np.uint8), connectivity=8)
    out: list[tuple[np.ndarray, int, int]] = []
    if n > 2:
        src = np.where(markers > 0, 0, 255).astype(np.uint8)
        _, nearest = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_CCOMP)
        zones = list(_zones(region, nearest))
    else:
        zones = [(region, 0, 0)]
    for zone, zx, zy in zones:
        for m, x, y in _pieces(zone):
            out.extend([(m, zx + x, zy + y)] if m.sum() <= max_px else _grid(m, zx + x, zy + y, max_px))
    return out


def _zones(region: np.ndarray, nearest: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """The region cut by zone label (``nearest``: each pixel's nearest peak), as (crop, col, row) per zone.

    Each zone is cut from its own bounding box: a noisy map over a large region can hold thousands of peaks, and a
    full-size mask per zone made that quadratic (13,000 zones on a 1024² chip took 45 s; now well under a second).
    """
    ys, xs = np.nonzero(region)
    if not len(ys):
        return []
    zid = nearest[ys, xs]
    order = np.argsort(zid, kind="stable")
    zid, ys, xs = zid[order], ys[order], xs[order]
    cuts = np.flatnonzero(np.diff(zid)) + 1
    out = []
    for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(zid)], strict=True):
        y0, y1, x0, x1 = int(ys[a:b].min()), int(ys[a:b].max()) + 1, int(xs[a:b].min()), int(xs[a:b].max()) + 1
        out.append(((nearest[y0:y1, x0:x1] == zid[a]) & region[y0:y1, x0:x1], x0, y0))
    return out
