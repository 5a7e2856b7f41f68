"""Pixels that hold no imagery: unmarked black borders, and what the model is shown in their place.

Reprojected tiles (xBD, co-registered chips, many mosaics and orthophotos) carry black borders that no nodata value
or alpha band marks. Every analysis path counts them as nodata, as training and calibration do: scored as imagery
they are the most anomalous thing in the scene (on two of the four held-out Joplin pre-event chips the default model
put 1,000 findings, the cap, on a black border covering 59 % of the chip). Invalid pixels are then filled with the
mean colour of the window's valid ones before the model sees them, so a hard black edge does not light up the valid
pixels beside it through the network's receptive field.

Which black is nodata (:func:`unmarked_nodata`): in rasters read window by window (GeoTIFFs, large frames) and xBD
tiles, every exactly black 3×3 patch. A photo held in memory can be dark for real (a night fire: 1.6 % of an AIDER
frame is exactly black, at the foot of the picture), so there only a *collar* counts: exactly black regions that
touch the frame's edge and together cover at least :data:`MIN_COLLAR_SHARE` of it.
"""

from __future__ import annotations

import cv2
import numpy as np
from rasterio.windows import Window

from core.imagery.sources import FrameSource
from core.types import Scene

__all__ = ["MIN_COLLAR_SHARE", "black_nodata", "edge_collar", "fill_invalid_mean", "preview_nodata", "read_valid",
           "unmarked_nodata"]

#: Least share of a photo that exactly black regions touching its edge must cover to be taken as a nodata collar.
MIN_COLLAR_SHARE = 0.05


def black_nodata(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are exactly black in all bands in patches of at least 3×3 px: the unmarked nodata borders of
    xBD tiles and many mosaics (in overhead imagery a true shadow is hardly ever exactly 0,0,0 over a whole patch;
    a photo can be, hence :func:`unmarked_nodata`)."""
    black: np.ndarray = (rgb.max(axis=2) == 0).astype(np.uint8)
    if not black.any():
        return black.astype(bool)
    opened: np.ndarray = cv2.morphologyEx(black, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return opened.astype(bool)


def edge_collar(rgb: np.ndarray, min_share: float = MIN_COLLAR_SHARE) -> np.ndarray:
    """The exactly black regions of :func:`black_nodata` that touch the image's edge, when together they cover at
    least ``min_share`` of it (a reprojection collar or a letterbox); otherwise nothing (all False)."""
    black = black_nodata(rgb)
    none = np.zeros(black.shape, bool)
    if black.mean() < min_share:
        return none
    # a black frame around the mask joins every region that touches the edge; one flood fill from it finds them
    # all (uint8 throughout: a few bytes per pixel, where labelling components would take an int32 per pixel)
    framed = cv2.copyMakeBorder(black.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    del black
    cv2.floodFill(framed, None, (0, 0), 2, flags=8)
    collar: np.ndarray = framed[1:-1, 1:-1] == 2
    return collar if collar.mean() >= min_share else none


def unmarked_nodata(scene: Scene, window: Window, rgb: np.ndarray) -> np.ndarray:
    """Pixels of ``rgb`` (the scene's pixels in ``window``) that are nodata though nothing marks them: for a photo
    held in memory its :func:`edge_collar` (computed once per frame), for anything else :func:`black_nodata`."""
    if scene.kind == "frame" and isinstance(scene.source, FrameSource):
        rs, cs = window.toslices()
        return np.asarray(scene.source.collar()[rs, cs], dtype=bool)
    return black_nodata(rgb)


def read_valid(scene: Scene, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and validity of ``scene`` (or a window of it), its :func:`unmarked_nodata` counted as invalid: what
    analysis, training and calibration read. Learning or calibrating on black borders makes black "normal" (a
    calibration on one such strip gave a zero no-change spread and a change map that was red everywhere)."""
    window = window if window is not None else Window(0, 0, scene.width, scene.height)
    rgb, valid = scene.read(window)
    return rgb, valid & ~unmarked_nodata(scene, window, rgb)


def preview_nodata(scene: Scene, rgb: np.ndarray) -> np.ndarray:
    """:func:`unmarked_nodata`'s rule on a downsampled preview of the whole ``scene`` (for a photo the collar of
    the preview's own pixels): what the map leaves transparent."""
    return edge_collar(rgb) if scene.kind == "frame" else black_nodata(rgb)


def fill_invalid_mean(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``rgb`` with its invalid pixels set to the mean colour of its valid ones (unchanged when all or none are
    valid). A copy when anything changes; the input is never written."""
    if valid.all() or not valid.any():
        return rgb
    out = rgb.copy()
    out[~valid] = np.round(rgb[valid].mean(axis=0)).astype(rgb.dtype)
    return out
