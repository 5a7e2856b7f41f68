"""Matplotlib figures of the report: the damage map of a scene, an overview of all scenes, score histograms.

Figures are drawn with the object API (``Figure`` + Agg canvas): no pyplot state, no backend switch, safe inside a
Streamlit server. Each function returns encoded image bytes ready for the PDF.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib import patheffects, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon
from matplotlib.ticker import MaxNLocator
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from core.detection.heatmap import LUT, blend, colorize
from core.i18n import N_, _
from core.report import _geo
from core.report._io import clean_text
from core.report.context import grade_colour, grade_key, grade_label, grade_rank, is_rejected
from core.report.extraction import ANOMALY, CHANGE
from core.report.fonts import mpl_font_family
from core.report.rasters import read_overview
from core.report.summary import ReportSummary, SceneStats
from core.types import Finding, GeoRef, Scene

MAP_LABELS = 25  #: findings labelled with their number on a scene map (highest scores first)
MAP_PIXELS = 1000  #: longest side of the imagery drawn in a scene map
_HALO = [patheffects.Stroke(linewidth=3.2, foreground="black", alpha=0.8), patheffects.Normal()]


def _rc() -> rc_context:
    return rc_context({"font.family": mpl_font_family(), "font.size": 8, "axes.titlesize": 9,
                       "axes.unicode_minus": False})


def _encode(fig: Figure, fmt: str = "jpeg") -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    kw = {"pil_kwargs": {"quality": 88}} if fmt == "jpeg" else {}
    fig.savefig(buf, format=fmt, dpi=150, facecolor="white", **kw)
    return buf.getvalue()


def nice_length(max_m: float) -> float:
    """Largest 1/2/5 x 10^k length not above ``max_m`` (metres)."""
    if not (max_m > 0 and math.isfinite(max_m)):
        return 0.0
    k = 10 ** math.floor(math.log10(max_m))
    return max(m * k for m in (1, 2, 5) if m * k <= max_m)


def _length_label(m: float) -> str:
    return f"{m / 1000:g} km" if m >= 1000 else f"{m:g} m"


def _deg_label(v: float, step: float, pos: str, neg: str) -> str:
    d = 0
    while d < 7 and abs(round(step * 10 ** d) - step * 10 ** d) > 1e-6:
        d += 1
    return f"{abs(v):.{d}f}°{pos if v >= 0 else neg}"


def _crossing(along: np.ndarray, other: np.ndarray, level: float) -> float | None:
    """Value of ``other`` where the polyline's ``along`` coordinate first crosses ``level`` (None if never)."""
    d = along - level
    for i in range(len(d) - 1):
        if np.isfinite(d[i]) and np.isfinite(d[i + 1]) and d[i] * d[i + 1] <= 0 and d[i] != d[i + 1]:
            t = d[i] / (d[i] - d[i + 1])
            return float(other[i] + t * (other[i + 1] - other[i]))
    return None


def _graticule(ax: object, georef: GeoRef, w: int, h: int) -> None:
    """Lon/lat lines over a pixel-space axis, with tick labels where they cross the bottom and left edges."""
    t = np.linspace(0, 1, 25)
    ec = np.concatenate([t * w, np.full_like(t, w), t * w, np.zeros_like(t)])
    er = np.concatenate([np.zeros_like(t), t * h, np.full_like(t, h), t * h])
    lon, lat = _geo.to_lonlat(georef, ec, er)
    xt, xl, yt, yl = [], [], [], []
    for vals, is_lon in ((lon, True), (lat, False)):
        lo, hi = float(np.nanmin(vals)), float(np.nanmax(vals))
        ticks = [v for v in MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi) if lo <= v <= hi]
        step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
        o = lat if is_lon else lon
        pad = 0.05 * (float(np.nanmax(o)) - float(np.nanmin(o)))  # lines must cross the edges to get labels
        other = np.linspace(float(np.nanmin(o)) - pad, float(np.nanmax(o)) + pad, 60)
        for v in ticks:
            lons, lats = (np.full_like(other, v), other) if is_lon else (other, np.full_like(other, v))
            c, r = _geo.from_lonlat(georef, lons, lats)
            ax.plot(c, r, color="white", lw=0.6, ls=(0, (2, 3)), alpha=0.8, zorder=3, clip_on=True)
            if is_lon and (x := _crossing(r, c, h)) is not None and 0 <= x <= w:
                xt.append(x)
                xl.append(_deg_label(v, step, "E", "W"))
            if not is_lon and (y := _crossing(c, r, 0.0)) is not None and 0 <= y <= h:
                yt.append(y)
                yl.append(_deg_label(v, step, "N", "S"))
    ax.set_xticks(xt, xl)
    ax.set_yticks(yt, yl, rotation=90, va="center")


def _north_arrow(fig: Figure, ax: object, direction: tuple[float, float], aspect: float) -> None:
    ax.apply_aspect()
    bb = ax.get_position()
    fw, fh = fig.get_size_inches()
    dx, dy = direction[0], -direction[1] * aspect
    n = math.hypot(dx, dy) or 1.0
    ux, uy = dx / n * 0.45 / (bb.width * fw), dy / n * 0.45 / (bb.height * fh)
    x0, y0 = 0.93 - ux / 2, 0.83 - uy / 2
    ax.annotate("N", xy=(x0 + ux, y0 + uy), xytext=(x0, y0), xycoords="axes fraction", ha="center", va="center",
                fontsize=10, color="black", zorder=6,
                arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 2},
                bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})


HEAT_CMAP = ListedColormap(LUT / 255.0, name="bda-heat")  #: the project's fixed heatmap colours


def _composite(rgb: np.ndarray, heat: np.ndarray | None, threshold: float, vmax: float) -> np.ndarray:
    """Imagery with the heatmap colours (``heatmap.colorize``) blended in: one image to draw, not two."""
    if heat is None:
        return rgb
    return blend(rgb, colorize(heat, threshold, vmax))


def _legend(ax: object, findings: list[Finding], threshold: float, label: str) -> None:
    counts: dict[str, tuple[Finding, int]] = {}
    for f in findings:
        if not is_rejected(f):
            first, n = counts.get(grade_key(f.grade), (f, 0))
            counts[grade_key(f.grade)] = (first, n + 1)
    ranked = sorted(counts.values(), key=lambda fn: grade_rank(fn[0].grade, fn[0].grade_scale))
    handles: list[object] = [Patch(fc="none", ec=grade_colour(f.grade, f.grade_scale), lw=1.8,
                                   label=f"{clean_text(_(grade_label(f.grade, f.grade_scale)), 30)} ({n})")
                             for f, n in ranked]
    if any(is_rejected(f) for f in findings):
        handles.append(Line2D([], [], color="#9e9e9e", ls="--", lw=1.2, label=_("rejected (not counted)")))
    handles.append(Patch(fc=HEAT_CMAP(0.5), alpha=0.8, label=_("{label}: score ≥ threshold {threshold}").format(
        label=label, threshold=f"{threshold:.2f}")))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=min(4, len(handles)),
              fontsize=7, frameon=False)


def scene_map(st: SceneStats, scene: Scene | None, summary: ReportSummary) -> bytes:
    """JPEG of one scene: imagery, the heatmap its findings come from above their threshold (``st.basis``: the
    change heatmap of a pre/post scene, else the anomaly heatmap), graded outlines, grid, scale bar, north arrow."""
    sr = st.result
    w, h = sr.width, sr.height
    threshold, vmax = st.display_threshold, st.vmax
    label = _(st.basis.label)
    aspect = st.pixel_m[1] / st.pixel_m[0] if st.pixel_m else 1.0
    with _rc():
        fig = Figure(figsize=(7.0, 6.6), layout="constrained")
        ax = fig.add_subplot()
        if scene is not None:
            rgb, valid = read_overview(scene, MAP_PIXELS)  # about the size drawn at 150 dpi
            ax.imshow(_composite(np.where(valid[..., None], rgb, 255), st.heat, threshold, vmax),
                      extent=(0, w, h, 0), interpolation="bilinear")
        else:
            ax.set_facecolor("#d9d9d9")
            ax.text(w / 2, h / 2, _("source image not available"), ha="center", va="center", color="#444444")
            if st.heat is not None:
                ax.imshow(colorize(st.heat, threshold, vmax), extent=(0, w, h, 0), interpolation="bilinear")
        ranked = sorted(sr.findings, key=lambda f: summary.obj_id.get(id(f), 0))
        for k, f in enumerate(ranked):
            if len(f.polygon_px) < 3:
                continue
            rej = is_rejected(f)
            ec = "#9e9e9e" if rej else grade_colour(f.grade, f.grade_scale)
            ax.add_patch(Polygon(f.polygon_px, closed=True, fill=False, zorder=4, lw=0.9 if rej else 1.5, ec=ec,
                                 ls="--" if rej else "-", path_effects=_HALO))
            if not rej and k < MAP_LABELS:
                c0, r0, c1, _r1 = f.bbox_px
                right = c1 < 0.9 * w
                ax.text(c1 if right else c0, max(r0, 0.04 * h), f"#{summary.obj_id.get(id(f), '?')}", fontsize=6.5,
                        color="black", zorder=5, ha="left" if right else "right", va="bottom", clip_on=True,
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_aspect(aspect)
        title = clean_text(sr.scene_name, 80) + (f" — {clean_text(sr.capture_time, 30)}" if sr.capture_time else "")
        if st.basis.kind == CHANGE:
            title += "\n" + _("change since {pre}").format(
                pre=clean_text(sr.pre_scene_name, 60) or _("the pre-event image"))
        if sr.georef is not None:
            _graticule(ax, sr.georef, w, h)
            if sr.georef.approximate:
                title += "\n" + _("location approximate ({method})").format(method=clean_text(_(sr.georef.method), 30))
        else:
            ax.set_xlabel(_("column (px)"))
            ax.set_ylabel(_("row (px)"))
            title += "\n" + _("not georeferenced: pixel coordinates, no scale or north arrow")
        ax.set_title(title)
        if st.pixel_m is not None:
            length = nice_length(w * st.pixel_m[0] / 4)
            if length > 0:
                ax.add_artist(AnchoredSizeBar(ax.transData, length / st.pixel_m[0], _length_label(length),
                                              loc="lower left", pad=0.4, borderpad=0.6, sep=3, frameon=True,
                                              size_vertical=max(h * 0.006, 1), color="black"))
        if sr.georef is not None:
            _north_arrow(fig, ax, _geo.north_vector(sr.georef, w / 2, h / 2), aspect)
        fig.colorbar(ScalarMappable(Normalize(threshold, vmax), HEAT_CMAP), ax=ax, fraction=0.035,
                     pad=0.02, label=_("calibrated change score") if st.basis.kind == CHANGE
                     else _("calibrated anomaly score"))
        _legend(ax, sr.findings, threshold, label)
        return _encode(fig)


def overview_map(summary: ReportSummary) -> bytes | None:
    """PNG of all georeferenced scene footprints with finding centroids by grade (None for fewer than two)."""
    geo = [s for s in summary.scenes if s.result.georef is not None]
    if len(geo) < 2:
        return None
    with _rc():
        fig = Figure(figsize=(7.0, 5.6), layout="constrained")
        ax = fig.add_subplot()
        lats = []
        for k, st in enumerate(geo, start=1):
            sr = st.result
            t = np.linspace(0, 1, 9)
            c = np.concatenate([t * sr.width, np.full_like(t, sr.width), (1 - t) * sr.width, np.zeros_like(t)])
            r = np.concatenate([np.zeros_like(t), t * sr.height, np.full_like(t, sr.height), (1 - t) * sr.height])
            lon, lat = _geo.to_lonlat(sr.georef, c, r)
            lats.extend(lat.tolist())
            ax.add_patch(Polygon(np.c_[lon, lat], closed=True, fc="#c6d6e8", alpha=0.35, ec="#4a6b8a", lw=0.8))
            ax.annotate(f"S{k}", (float(lon[0]), float(lat[0])), xytext=(3, -3 - 9 * ((k - 1) % 3)),
                        textcoords="offset points", color="#2d4a66", ha="left", va="top", fontsize=7)
        shown: set[str] = set()
        for _i, f in summary.counted:
            if f.centroid_lon is None or f.centroid_lat is None:
                continue
            key = grade_key(f.grade)
            label = None if key in shown else clean_text(_(grade_label(f.grade, f.grade_scale)), 30)
            ax.plot(f.centroid_lon, f.centroid_lat, "o", ms=4, mec="black", mew=0.4,
                    color=grade_colour(f.grade, f.grade_scale), label=label, zorder=3)
            shown.add(key)
        ax.autoscale_view()
        mid = float(np.nanmean(lats)) if lats else 0.0
        ax.set_aspect(1 / max(math.cos(math.radians(mid)), 0.01))
        ax.set_xlabel(_("longitude (°)"))
        ax.set_ylabel(_("latitude (°)"))
        ax.grid(True, lw=0.4, alpha=0.5)
        ax.ticklabel_format(useOffset=False)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(6))
        ax.set_title(_("Scenes (S1..Sn, as in the appendix table) and counted findings"))
        if shown:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4, frameon=False)
        return _encode(fig, "png")


_HIST_TITLES = {ANOMALY: N_("Anomaly heatmaps (single images)"),
                CHANGE: N_("Change heatmaps (pre/post pairs)")}


def histograms(summary: ReportSummary) -> bytes:
    """PNG with, per kind of finding heatmap (anomaly, change), the sampled pixel-score distribution and the peak
    scores of counted findings, each finding threshold of that kind marked; the two kinds are never mixed."""
    kinds = summary.kinds or [ANOMALY]
    kind_of = {id(f): st.basis.kind for st in summary.scenes for f in st.result.findings}
    with _rc():
        fig = Figure(figsize=(7.0, 2.8 * len(kinds) + 0.3 * (len(kinds) - 1)), layout="constrained")
        axes = fig.subplots(len(kinds), 2, squeeze=False)
        for (a1, a2), kind in zip(axes, kinds, strict=True):
            samples = summary.samples.get(kind, np.zeros(0, np.float32))
            if samples.size:
                step = max(1, samples.size // 200_000)
                a1.hist(samples[::step], bins=80, color="#5b7fa6", log=True)
            else:
                a1.text(0.5, 0.5, _("no heatmap data"), transform=a1.transAxes, ha="center")
            a1.set_xlabel(_("calibrated change score per pixel (sample)") if kind == CHANGE
                          else _("calibrated anomaly score per pixel (sample)"))
            a1.set_ylabel(_("pixels (log)"))
            peaks = [f.score_max for _i, f in summary.counted
                     if kind_of.get(id(f)) == kind and math.isfinite(f.score_max)]
            if peaks:
                a2.hist(peaks, bins=min(40, max(5, len(peaks) // 3)), color="#c0504d")
            else:
                a2.text(0.5, 0.5, _("no counted findings"), transform=a2.transAxes, ha="center")
            a2.set_xlabel(_("peak change score of counted findings") if kind == CHANGE
                          else _("peak anomaly score of counted findings"))
            a2.set_ylabel(_("findings"))
            if len(kinds) > 1:
                a1.set_title(_(_HIST_TITLES[kind]), loc="left")
            for ax in (a1, a2):
                for t in summary.thresholds(kind):
                    label = _("change threshold {t:.2f}") if kind == CHANGE else _("anomaly threshold {t:.2f}")
                    ax.axvline(t, color="black", ls="--", lw=1, label=label.format(t=t))
                if summary.thresholds(kind):
                    ax.legend(fontsize=7)
        return _encode(fig, "png")
