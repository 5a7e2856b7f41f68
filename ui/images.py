"""Cached images the pages draw: source previews, heatmap panels and overlays, blends, score histograms.

Every function is keyed by file path + modification time (``st.cache_data``), so moving between pages or
reopening an analysis recomputes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core.detection.heatmap import blend, colorize, read_heatmap
from core.imagery.reader import open_scene
from core.report.rasters import read_overview

PREVIEW_SIDE = 1024  #: longest side of the images drawn on the Analyze page


def mtime(path: str | Path | None) -> float:
    """Modification time of a file (0 when absent): part of every cache key, so a rewritten file is re-read."""
    try:
        return Path(path).stat().st_mtime if path else 0.0
    except OSError:
        return 0.0


@st.cache_data(max_entries=200, show_spinner=False)
def source_preview(path: str, file_mtime: float, max_side: int = PREVIEW_SIDE) -> np.ndarray:
    """The input image downsampled to ``max_side`` (uint8 RGB, nodata black)."""
    del file_mtime
    scene = open_scene(path)
    try:
        rgb, valid = read_overview(scene, max_side)
    finally:
        scene.close()
    rgb[~valid] = 0
    return rgb


@st.cache_data(max_entries=200, show_spinner=False)
def heat_preview(path: str, file_mtime: float, max_side: int = PREVIEW_SIDE) -> tuple[np.ndarray, float]:
    """(calibrated scores downsampled to ``max_side``, full-res pixels per preview pixel) of a heatmap file."""
    del file_mtime
    hm = read_heatmap(path, preview_max=max_side)
    return hm.preview, float(hm.preview_scale)


@st.cache_data(max_entries=400, show_spinner=False)
def heat_rgba(path: str, file_mtime: float, threshold: float) -> np.ndarray:
    """The heatmap preview in the fixed colour map (RGBA; transparent below ``threshold``)."""
    scores, _ = heat_preview(path, file_mtime)
    return colorize(scores, threshold)


@st.cache_data(max_entries=200, show_spinner=False)
def heat_panel(path: str, file_mtime: float, threshold: float) -> np.ndarray:
    """The heatmap on its own: scores below ``threshold`` in greys (darker = more normal), the fixed colour map
    above it, nodata black (RGB)."""
    scores, _ = heat_preview(path, file_mtime)
    with np.errstate(invalid="ignore"):
        grey = np.where(np.isfinite(scores), 30 + 110 * np.clip(scores / threshold, 0, 1), 0).astype(np.uint8)
    return blend(np.repeat(grey[..., None], 3, axis=2), heat_rgba(path, file_mtime, threshold), 1.0)


@st.cache_data(max_entries=200, show_spinner=False)
def score_histogram(path: str, file_mtime: float, bins: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges, counts) of the finite calibrated scores of a heatmap's preview (0.1-99.99 % range)."""
    scores, _ = heat_preview(path, file_mtime)
    v = scores[np.isfinite(scores)]
    if v.size == 0:
        return np.zeros(0), np.zeros(0)
    lo, hi = np.quantile(v, [0.001, 0.9999])
    hi = max(float(hi), float(lo) + 1e-3)
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(float(lo), hi))
    return edges, counts
