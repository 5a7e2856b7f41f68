"""Image chips of one finding for the PDF: post-event image, heatmap, pre-event image, change heatmap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw
from rasterio.windows import Window

from core.detection.heatmap import default_vmax
from core.i18n import _
from core.report import _geo
from core.report.context import grade_colour
from core.report.rasters import SceneCache, blend_heat, clip_window, read_scores
from core.types import Finding, Scene, SceneResult

MIN_CHIP_PX = 96  #: smallest window cut around a finding, in image pixels


@dataclass
class Panel:
    """One chip of a finding block: a caption and an image, or a sentence saying why there is none."""

    caption: str
    image: Image.Image | None
    missing: str = ""


def chip_window(f: Finding, width: int, height: int) -> Window:
    """Square window around the finding's box (twice its size, at least :data:`MIN_CHIP_PX`), moved inside."""
    c0, r0, c1, r1 = f.bbox_px
    side = int(max(MIN_CHIP_PX, 2 * max(c1 - c0, r1 - r0)))
    cw, ch = min(side, width), min(side, height)
    col = int(round((c0 + c1) / 2 - cw / 2))
    row = int(round((r0 + r1) / 2 - ch / 2))
    col, row = min(max(0, col), width - cw), min(max(0, row), height - ch)
    return Window(col, row, cw, ch)


def _display(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    s = size / max(h, w)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    out = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp)
    return out, s


def _outline(img: Image.Image, pts: list[tuple[float, float]], colour: str) -> Image.Image:
    if len(pts) >= 3:
        d = ImageDraw.Draw(img)
        ring = [*pts, pts[0]]
        d.line(ring, fill="#000000", width=5, joint="curve")
        d.line(ring, fill=colour, width=3, joint="curve")
    return img


def _ring(f: Finding, win: Window, scale: float) -> list[tuple[float, float]]:
    return [((c - win.col_off) * scale, (r - win.row_off) * scale) for c, r in f.polygon_px]


def _score_panel(caption: str, path: Path | None, win: Window, sr: SceneResult, grey: np.ndarray | None,
                 f: Finding, threshold: float, vmax: float, size: int, what: str) -> Panel:
    scores = read_scores(path, win, full_size=(sr.width, sr.height))
    if scores is None:
        return Panel(caption, None, _("{what} not available").format(what=what))
    scores = cv2.resize(scores, (win.width, win.height), interpolation=cv2.INTER_NEAREST)
    disp, s = _display(blend_heat(grey, scores, threshold, vmax), size)
    return Panel(caption, _outline(Image.fromarray(disp), _ring(f, win, s), grade_colour(f.grade, f.grade_scale)))


def _pre_panel(f: Finding, sr: SceneResult, win: Window, pre: Scene | None, size: int, shape: tuple[int, int],
               reason: str) -> Panel:
    caption = _("Pre-event image")
    if pre is None:
        return Panel(caption, None, reason)
    corners_c = np.array([win.col_off, win.col_off + win.width, win.col_off + win.width, win.col_off], dtype=float)
    corners_r = np.array([win.row_off, win.row_off, win.row_off + win.height, win.row_off + win.height], dtype=float)
    ring = np.array(f.polygon_px, dtype=float).reshape(-1, 2)
    if sr.georef is not None and pre.georef is not None:
        lon, lat = _geo.to_lonlat(sr.georef, corners_c, corners_r)
        pc, pr = _geo.from_lonlat(pre.georef, lon, lat)
        rlon, rlat = _geo.to_lonlat(sr.georef, ring[:, 0], ring[:, 1])
        ring_c, ring_r = _geo.from_lonlat(pre.georef, rlon, rlat)
    elif sr.georef is None and pre.georef is None and (pre.width, pre.height) == (sr.width, sr.height):
        pc, pr, ring_c, ring_r = corners_c, corners_r, ring[:, 0], ring[:, 1]
        caption = _("Pre-event image (same pixel grid assumed)")
    else:
        return Panel(caption, None, _("pre-event image cannot be aligned (georeferencing missing on one side)"))
    if not (np.isfinite(pc).all() and np.isfinite(pr).all()):
        return Panel(caption, None, _("pre-event image does not cover this finding"))
    c0, r0, c1, r1 = float(pc.min()), float(pr.min()), float(pc.max()), float(pr.max())
    fw, fh = max(1, round(c1 - c0)), max(1, round(r1 - r0))
    part = clip_window(c0, r0, c1, r1, pre.width, pre.height)
    if part is None:
        return Panel(caption, None, _("pre-event image does not cover this finding"))
    rgb, valid = pre.read(part)
    canvas = np.full((fh, fw, 3), 128, np.uint8)
    oy, ox = part.row_off - round(r0), part.col_off - round(c0)
    ys, xs = slice(max(0, oy), min(fh, oy + part.height)), slice(max(0, ox), min(fw, ox + part.width))
    sub = rgb[ys.start - oy: ys.stop - oy, xs.start - ox: xs.stop - ox]
    canvas[ys, xs] = np.where(valid[ys.start - oy: ys.stop - oy, xs.start - ox: xs.stop - ox, None], sub, 128)
    disp = cv2.resize(canvas, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    sx, sy = shape[1] / (c1 - c0 or 1), shape[0] / (r1 - r0 or 1)
    pts = [((c - c0) * sx, (r - r0) * sy) for c, r in zip(ring_c, ring_r, strict=True)]
    return Panel(caption, _outline(Image.fromarray(disp), pts, grade_colour(f.grade, f.grade_scale)))


def finding_panels(f: Finding, sr: SceneResult, cache: SceneCache, pre_path: Path | None,
                   anomaly_threshold: float, change_threshold: float | None = None, size: int = 320) -> list[Panel]:
    """Chips of one finding, side by side.

    A single image: post-event image, anomaly heatmap (the findings' heatmap, coloured from
    ``anomaly_threshold`` up). A pre/post scene (``sr.change_path`` set): post-event image, pre-event image, change
    heatmap (the findings' heatmap, coloured from ``change_threshold`` up) and the post-only anomaly heatmap for
    reference (from ``anomaly_threshold`` up). A scene naming a pre-event image without a change heatmap gets the
    pre-event chip after the anomaly heatmap. Each unavailable chip is a :class:`Panel` with a reason.
    """
    win = chip_window(f, sr.width, sr.height)
    scene = cache.get(sr.source_path)
    grey = None
    panels: list[Panel] = []
    if scene is None:
        why = _("source image not available") if sr.source_path is None or sr.source_path not in cache.errors \
            else _("source image unreadable: {error}").format(error=cache.errors[sr.source_path])
        panels.append(Panel(_("Post-event image"), None, why))
        shape = (size, size)
    else:
        rgb, valid = scene.read(win)
        rgb = np.where(valid[..., None], rgb, 128).astype(np.uint8)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        disp, s = _display(rgb, size)
        shape = disp.shape[:2]
        panels.append(Panel(_("Post-event image"), _outline(Image.fromarray(disp), _ring(f, win, s),
                                                            grade_colour(f.grade, f.grade_scale))))
    pre_panel = None
    if sr.pre_scene_name or pre_path is not None:
        pre = cache.get(pre_path)
        reason = _("pre-event image file not available") if pre_path is None else \
            _("pre-event image unreadable: {error}").format(error=cache.errors.get(Path(pre_path), _("unknown error")))
        pre_panel = _pre_panel(f, sr, win, pre, size, shape, reason)
    if sr.change_path is not None:
        ct = change_threshold if change_threshold is not None else anomaly_threshold
        if pre_panel is not None:
            panels.append(pre_panel)
        panels.append(_score_panel(_("Change heatmap ≥ {thr:.2f} (findings)").format(thr=ct), sr.change_path, win, sr,
                                   grey, f,
                                   ct, default_vmax(ct), size, _("change heatmap")))
        panels.append(_score_panel(_("Post-only anomaly heatmap ≥ {thr:.2f} (reference)").format(
                                       thr=anomaly_threshold),
                                   sr.heatmap_path, win, sr, grey, f, anomaly_threshold,
                                   default_vmax(anomaly_threshold), size, _("heatmap")))
        return panels
    panels.append(_score_panel(_("Anomaly heatmap ≥ {thr:.2f}").format(thr=anomaly_threshold), sr.heatmap_path, win,
                               sr, grey, f,
                               anomaly_threshold, default_vmax(anomaly_threshold), size, _("heatmap")))
    if pre_panel is not None:
        panels.append(pre_panel)
    return panels
