"""The grid a scene is analysed on: its scale (resampled to the model's GSD or not), its tiles, and reading them.

:func:`resample_factor` decides the analysis grid's scale, :func:`plan_tiles` cuts it into overlapping tiles (the
classic grid of ``tile_size`` tiles, or for tile-invariant models the fewest large tiles of
:mod:`core.detection.tile_cover`) with their stitching weights (:class:`TilePlan`), and :class:`GridReader` reads a
window of that grid from the scene. The local pipeline (:mod:`core.detection.pipeline`), the pre/post change
analysis and the Ray engine's tasks all plan and read scenes through here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from rasterio.windows import Window

from core.detection.stitching import blend_weights
from core.detection.tile_cover import cover_windows, exact_weights
from core.detection.tile_grid import grid_windows
from core.errors import InputError
from core.geo import georef as geo
from core.i18n import N_, Message, _, message
from core.imagery.nodata import fill_invalid_mean, read_valid
from core.types import Scene

RESAMPLE_TRIGGER = 1.5  #: resample when scene and model GSD differ by more than this factor
MAX_UPSAMPLE = 4.0  #: never enlarge a scene more than this to reach the model's GSD
MIN_GRID_SIDE = 32  #: smallest side (px) of the grid a scene is analysed on
TILE_MULTIPLE = 32  #: small scenes get a tile rounded up to this multiple instead of the full tile size
_STRIP_PX = 16_000_000  #: native pixels read at once when downsampling a large window


@dataclass(frozen=True)
class TilePlan:
    """How a scene is tiled: the analysis grid (the scene's, or resampled to the model's GSD) and its windows."""

    tile: int
    overlap: int
    grid_h: int
    grid_w: int
    factor: float  #: analysis-grid pixels per scene pixel (1.0: no resampling)
    windows: list[Window]
    shape: tuple[int, int] | None = None  #: (h, w) of every tile of a cover plan; None: ``tile``×``tile``
    margin: int | None = None  #: cover plan: depth (px) inside a tile from which its values are exact

    @property
    def tile_hw(self) -> tuple[int, int]:
        """(height, width) every tile is padded to."""
        return self.shape or (self.tile, self.tile)

    def tile_weights(self, win: Window) -> np.ndarray:
        """Stitching weights of the tile at ``win`` (``win``'s size). A cover plan does not ramp the sides on the
        image border (see :func:`~core.detection.tile_cover.exact_weights`); the classic blend is the same for all."""
        if self.margin is None:
            return _blend(*self.tile_hw, self.overlap)[:win.height, :win.width]
        interior = (win.row_off > 0, win.row_off + win.height < self.grid_h, win.col_off > 0,
                    win.col_off + win.width < self.grid_w)
        return _exact(win.height, win.width, self.margin, interior)


@functools.lru_cache(maxsize=64)
def _exact(h: int, w: int, margin: int, interior: tuple[bool, bool, bool, bool]) -> np.ndarray:
    out = exact_weights(h, w, margin, interior)
    out.flags.writeable = False  # shared between tiles and runs
    return out


@functools.lru_cache(maxsize=16)
def _blend(h: int, w: int, overlap: int) -> np.ndarray:
    out = blend_weights(h, w, ramp=overlap)
    out.flags.writeable = False
    return out


def resample_factor(scene: Scene, model_gsd: float | None, enabled: bool = True, *,
                    frame_side: int | None = None) -> tuple[float, list[Message]]:
    """Analysis-grid pixels per scene pixel (``scene GSD / model GSD``), and warnings for the user (language-free
    :data:`core.i18n.Message` records, put in words where shown).

    1.0 unless resampling is enabled, the model records its GSD, the scene is georeferenced with a known GSD, and
    the two differ by more than :data:`RESAMPLE_TRIGGER`. Enlarging is capped at :data:`MAX_UPSAMPLE`.

    A photo without georeferencing has no GSD. A model that learnt from photos only (``frame_side``: the short side
    its photos were scaled to, :attr:`core.detection.detector.Detector.frame_side`) sees a photo at that scale, as
    in training and evaluation; other models see it at its own resolution.
    """
    warnings: list[Message] = []
    if enabled and scene.georef is None and frame_side:
        f = frame_side / max(1, min(scene.width, scene.height))
        return (f, warnings) if f < 1 / RESAMPLE_TRIGGER else (1.0, warnings)
    if not enabled or not model_gsd or scene.georef is None:
        return 1.0, warnings
    gsd = scene.gsd_m or geo.gsd_m(scene.georef, scene.width, scene.height)
    if not (gsd and math.isfinite(gsd) and gsd > 0):
        return 1.0, warnings
    f = gsd / model_gsd
    if 1 / RESAMPLE_TRIGGER <= f <= RESAMPLE_TRIGGER:
        return 1.0, warnings
    if f > MAX_UPSAMPLE:
        warnings.append(message(N_("scene GSD {gsd} m is {factor}x coarser than the model's {model_gsd} m; analysed "
                                   "at native resolution (enlarging that much adds no detail): treat the results with "
                                   "caution"), gsd=f"{gsd:.2f}", factor=f"{f:.1f}", model_gsd=f"{model_gsd:.2f}"))
        return 1.0, warnings
    short = min(scene.width, scene.height)
    if short * f < MIN_GRID_SIDE:
        f = MIN_GRID_SIDE / short
        warnings.append(message(N_("scene is very fine ({gsd} m) and small; analysed at {used} m instead of the "
                                   "model's {model_gsd} m so that at least {px} px remain"),
                                gsd=f"{gsd:.3f}", used=f"{gsd / f:.2f}", model_gsd=f"{model_gsd:.2f}",
                                px=MIN_GRID_SIDE))
    return f, warnings


def plan_tiles(height: int, width: int, tile_size: int, rf: Any, factor: float = 1.0,
               budget_px: int | None = None) -> TilePlan:
    """Tile plan for a ``height``×``width`` scene analysed at ``factor`` × its resolution.

    Overlap = the receptive field ``rf.r`` (at most half a tile), rounded so tile offsets are multiples of the
    map stride ``rf.j`` (neighbouring tiles then share one feature grid). A grid smaller than a tile gets one tile
    rounded up to a multiple of 32 px (padded by the reader).

    ``budget_px`` (pixels per tile; only for models whose heatmap does not depend on the tile, see
    :attr:`core.models.base.OneClassNet.tile_invariant`): a grid larger than ``tile_size`` is covered by the
    fewest tiles of at most that many pixels, overlapping by twice the receptive field, so each pixel is computed
    about once and takes its whole-image value (:mod:`core.detection.tile_cover`).
    """
    if tile_size < 32:
        raise InputError(_("tile size {tile_size} px is too small; use at least 32 (the model default is 512)").format(
                             tile_size=tile_size))
    gh, gw = max(1, round(height * factor)), max(1, round(width * factor))
    if budget_px is not None and max(gh, gw) > tile_size:
        return _cover_plan(gh, gw, rf, factor, budget_px)
    tile = min(int(tile_size), max(64, math.ceil(max(gh, gw) / TILE_MULTIPLE) * TILE_MULTIPLE))
    r = float(getattr(rf, "r", 0) or 0)
    j = max(1, int(round(float(getattr(rf, "j", 1) or 1))))
    overlap = min(int(math.ceil(r)), tile // 2)
    stride = max(j, ((tile - overlap) // j) * j)
    overlap = max(0, tile - stride)
    return TilePlan(tile=tile, overlap=overlap, grid_h=gh, grid_w=gw, factor=float(factor),
                    windows=grid_windows(gh, gw, tile, overlap))


def _cover_plan(gh: int, gw: int, rf: Any, factor: float, budget_px: int) -> TilePlan:
    """A :func:`core.detection.tile_cover.cover_windows` plan: overlap 2·r rounded up to the map stride, margin r."""
    j = max(1, int(round(float(getattr(rf, "j", 1) or 1))))
    margin = int(math.ceil(float(getattr(rf, "r", 0) or 0)))
    overlap = int(math.ceil(2 * margin / j)) * j
    th, tw, windows = cover_windows(gh, gw, budget_px, overlap, j)
    return TilePlan(tile=max(th, tw), overlap=overlap, grid_h=gh, grid_w=gw, factor=float(factor), windows=windows,
                    shape=(th, tw), margin=margin)


class GridReader:
    """Reads windows of the analysis grid from the scene (resampling when the grid is not the scene's own).

    Downsampling uses area averaging and reads large windows in strips; enlarging is bilinear. Validity is
    resampled the same way and thresholded at 0.5.
    """

    def __init__(self, scene: Scene, plan: TilePlan) -> None:
        self.scene, self.plan = scene, plan
        self.sy = scene.height / plan.grid_h  # scene px per grid px
        self.sx = scene.width / plan.grid_w

    def read(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 and validity of ``win`` (analysis-grid coordinates).

        Unmarked black borders count as nodata (:func:`~core.imagery.nodata.unmarked_nodata`, decided on the
        scene's own pixels) and every invalid pixel is filled with the mean colour of the window's valid ones, so
        the model never sees nodata as imagery (:mod:`core.imagery.nodata`).
        """
        if self.plan.factor == 1.0:
            return self._scene_read(win)
        rgb, valid = self._resampled(win)
        return fill_invalid_mean(rgb, valid), valid  # the pixels that fell below half valid in resampling

    def _scene_read(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        """Scene pixels of ``win`` (scene coordinates), black borders invalid, invalid pixels filled."""
        rgb, valid = read_valid(self.scene, win)
        return fill_invalid_mean(rgb, valid), valid

    def _resampled(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        r0 = min(self.scene.height - 1, int(math.floor(win.row_off * self.sy)))
        r1 = max(r0 + 1, min(self.scene.height, int(math.ceil((win.row_off + win.height) * self.sy))))
        c0 = min(self.scene.width - 1, int(math.floor(win.col_off * self.sx)))
        c1 = max(c0 + 1, min(self.scene.width, int(math.ceil((win.col_off + win.width) * self.sx))))
        down = self.plan.factor < 1
        # large downsampling windows are read in strips so a window never costs more than ~_STRIP_PX pixels
        rows_per = max(1, _STRIP_PX // max(1, c1 - c0)) if down else r1 - r0
        out_rows = np.linspace(0, win.height, num=max(2, math.ceil((r1 - r0) / rows_per) + 1)).round().astype(int)
        rgbs, valids = [], []
        for o0, o1 in zip(out_rows[:-1], out_rows[1:], strict=True):
            if o1 <= o0:
                continue
            s0 = r0 + round(o0 / win.height * (r1 - r0))
            s1 = max(s0 + 1, r0 + round(o1 / win.height * (r1 - r0)))
            rgb, valid = self._scene_read(Window(c0, s0, c1 - c0, s1 - s0))
            interp = cv2.INTER_AREA if down else cv2.INTER_LINEAR
            rgbs.append(cv2.resize(rgb, (win.width, o1 - o0), interpolation=interp))
            v = cv2.resize(valid.astype(np.float32), (win.width, o1 - o0), interpolation=interp)
            valids.append(v >= 0.5)
        return np.concatenate(rgbs), np.concatenate(valids)
