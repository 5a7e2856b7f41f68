"""The tile grid over a scene: row-major windows that overlap by about the model's receptive field, and border
tiles padded up to the tile size.

- :func:`grid_windows` cuts an image into row-major tiles; the last partial tile of a row/column is shifted back
  inside the image (ceil), so every pixel is covered.
- :func:`pad_to` brings border tiles and small images up to the tile size (padding is marked invalid).

The fewest large tiles a model can take are chosen by :mod:`core.detection.tile_cover`; tiles are read ahead by
:mod:`core.detection.prefetch` and blended back by :mod:`core.detection.stitching`.
"""

from __future__ import annotations

import math

import numpy as np
from rasterio.windows import Window

from core.i18n import _


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
