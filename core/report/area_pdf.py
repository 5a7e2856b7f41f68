"""The area section of the PDF: the mosaic heatmap with the merged findings numbered, the extent, counts by grade.

Printed after the executive summary when the report's context carries an :class:`~core.report.area.AreaSection`
(an analysis of two or more georeferenced scenes); the per-scene sections follow unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from matplotlib import patheffects, rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon as MplPolygon
from pyproj import CRS, Transformer
from shapely.geometry import shape

from core.detection.heatmap import colorize
from core.i18n import N_, _
from core.report._io import clean_text
from core.report.area import AreaSection
from core.report.context import ReportContext, grade_colour, grade_label
from core.report.figures import _encode
from core.report.fonts import mpl_font_family
from core.report.layout import GREY, ReportPDF
from core.report.texts import fmt, fmt_area, fmt_latlon

AREA_TITLE = N_("1b. Area summary (all scenes as one area)")
AREA_PIXELS = 1400  #: longest side of the mosaic drawn in the overview figure
AREA_LABELS = 40  #: area findings numbered on the figure (worst grades and highest scores first)
AREA_ROWS = 60  #: area findings listed in the PDF table (all are in area_findings.csv)
_HALO = [patheffects.Stroke(linewidth=3.0, foreground="black", alpha=0.8), patheffects.Normal()]


def read_mosaic(section: AreaSection,
                max_side: int = AREA_PIXELS) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
    """The mosaic downsampled (area average from the COG's overviews) to ``max_side``: (scores with NaN,
    extent left, right, bottom, top in the mosaic CRS); None without a readable mosaic."""
    if section.mosaic is None:
        return None
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(section.mosaic) as ds:
            k = max(1.0, max(ds.width, ds.height) / max_side)
            shape_ = (max(1, round(ds.height / k)), max(1, round(ds.width / k)))
            data = ds.read(1, out_shape=shape_, resampling=Resampling.average, masked=True)
            b = ds.bounds
    except (RasterioError, OSError):
        return None
    return np.ma.filled(data.astype(np.float32), np.nan), (b.left, b.right, b.bottom, b.top)


def area_figure(section: AreaSection, threshold: float) -> bytes | None:
    """Overview figure: the mosaic (grey where analysed, heat above ``threshold``), the merged findings outlined
    in their grade's colour and numbered as in the area table; None without a readable mosaic."""
    got = read_mosaic(section)
    if got is None:
        return None
    heat, ext = got
    to_crs = Transformer.from_crs("EPSG:4326", section.crs, always_xy=True)

    def fwd(xy: np.ndarray) -> np.ndarray:
        x, y = to_crs.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    valid = np.isfinite(heat)
    base = np.where(valid[..., None], np.array([0.86, 0.86, 0.86, 1.0]), np.array([1.0, 1.0, 1.0, 0.0]))
    rgba = colorize(heat, threshold).astype(np.float32) / 255.0
    with rc_context({"font.family": mpl_font_family(), "font.size": 8, "axes.unicode_minus": False}):
        w, h = ext[1] - ext[0], ext[3] - ext[2]
        aspect = h / w if w > 0 else 1.0
        fig = Figure(figsize=(7.2, max(2.5, min(9.0, 7.2 * aspect + 0.8))))
        ax = fig.add_subplot(1, 1, 1)
        ax.imshow(base, extent=ext, interpolation="nearest")
        ax.imshow(rgba, extent=ext, interpolation="nearest")
        grades: dict[str, str] = {}
        for m in section.findings:
            geom = shapely.transform(shape(m["geometry"]), fwd)
            colour = grade_colour(m["grade"], m["grade_scale"])
            grades.setdefault(_(grade_label(m["grade"], m["grade_scale"])), colour)
            for poly in getattr(geom, "geoms", [geom]):
                if poly.is_empty or not hasattr(poly, "exterior"):
                    continue
                ax.add_patch(MplPolygon(np.asarray(poly.exterior.coords), closed=True, fill=False, edgecolor=colour,
                                        linewidth=1.4 if len(m["scenes"]) > 1 else 0.9))
            if m["obj_id"] <= AREA_LABELS:
                p = geom.representative_point()
                ax.text(p.x, p.y, str(m["obj_id"]), color="white", fontsize=6.5, ha="center", va="center",
                        path_effects=_HALO)
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        if CRS.from_user_input(section.crs).is_geographic:
            ax.set_xlabel(_("longitude (°)"))
            ax.set_ylabel(_("latitude (°)"))
        else:
            ax.set_xlabel(_("x (m, {crs})").format(crs=section.crs))
            ax.set_ylabel(_("y (m, {crs})").format(crs=section.crs))
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.tick_params(labelsize=6)
        if grades:
            ax.legend(handles=[Line2D([], [], color=c, lw=2, label=lab) for lab, c in grades.items()],
                      loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(4, len(grades)), fontsize=6.5,
                      frameon=False)
        fig.tight_layout()
        return _encode(fig)


def area_threshold(ctx: ReportContext, section: AreaSection) -> float:
    """The threshold the mosaic is drawn at: the report's one threshold, else the lowest of the area findings'."""
    t = ctx.threshold()
    if t is None:
        ts = [float(m["threshold"]) for m in section.findings if math.isfinite(float(m["threshold"]))]
        t = min(ts) if ts else 1.0
    return t


def area_section(pdf: ReportPDF, ctx: ReportContext, section: AreaSection) -> None:
    """The area pages (see module doc)."""
    pdf.h1(_(AREA_TITLE))
    w, s, e, n = section.extent_wgs84
    pdf.key_values([
        (_("Scenes in the area"), _("{n} georeferenced scene(s)").format(n=len(section.scenes))),
        (_("Extent (WGS84)"), _("west {w:.5f}, south {s:.5f}, east {e:.5f}, north {n:.5f}").format(
            w=w, s=s, e=e, n=n)),
        (_("Centre (lat, lon)"), fmt_latlon((s + n) / 2, (w + e) / 2)),
        (_("Mosaic CRS"), clean_text(section.crs, 60)),
        (_("Area covered"), (f"{section.area_m2 / 1e6:,.3f} km²" if section.area_m2 is not None else "—")),
        (_("Area findings"), _("{n} ({joined} joined across scene seams, from {per_scene} per-scene findings); "
                               "{rejected} rejected by an analyst and not counted").format(
            n=len(section.findings), joined=section.joined, per_scene=section.per_scene,
            rejected=section.rejected)),
    ])
    pdf.para(_("A damaged block cut by a tile or scene edge is found once in each scene; here findings of "
               "different scenes that touch across a seam are one area finding, counted once, with the worst grade "
               "of its parts. The per-scene sections that follow count each scene's part on its own."),
             size=8, colour=GREY)
    rows = [[_("Grade"), _("Area findings"), _("Area")]]
    rows += [[clean_text(_(label), 40), str(count), fmt_area(area)] for label, count, area in section.by_grade()]
    rows.append([_("Total"), str(len(section.findings)), fmt_area(sum(float(m["area_m2"]) for m in section.findings))])
    pdf.grid(rows, (60, 30, 40), size=8.5)
    fig = area_figure(section, area_threshold(ctx, section))
    if fig is not None:
        pdf.figure(fig, _("Area mosaic of the scenes' heatmaps (grey: analysed, colour: above the threshold {thr}) "
                          "with the area findings outlined by grade and numbered as in the table below (thick "
                          "outline: joined across a seam).").format(thr=fmt(area_threshold(ctx, section))),
                   max_h=150)
    elif section.sparse_cover is not None:
        pdf.para(_("The scenes lie far apart (they cover {cover} of the area's extent), so the analysis made no area "
                   "mosaic; the counts above are computed from the scenes' findings, and each scene's map is in its "
                   "own section.").format(cover=f"{section.sparse_cover:.1%}"), size=8.5, colour=GREY)
    else:
        pdf.para(_("No area mosaic was found in the analysis folder (analysed with --no-area, or the file was "
                   "moved); the counts above are computed from the scenes' findings."), size=8.5, colour=GREY)
    if section.findings:
        shown = section.findings[:AREA_ROWS]
        rows2 = [["#", _("Area finding"), _("Grade"), _("Peak"), _("Area m²"), _("Lat, Lon"), _("Scenes")]]
        rows2 += [[str(m["obj_id"]), m["id"], clean_text(_(grade_label(m["grade"], m["grade_scale"])), 30),
                   fmt(m["score_max"]), fmt(m["area_m2"], 0), fmt_latlon(m["centroid_lat"], m["centroid_lon"]),
                   clean_text(", ".join(m["scenes"]), 200)] for m in shown]
        pdf.grid(rows2, (9, 24, 26, 14, 18, 34, 55), size=6.8)
        if len(section.findings) > len(shown):
            pdf.para(_("The first {shown} of {n} area findings are listed; all are in area_findings.csv and "
                       "area_findings.geojson.").format(shown=len(shown), n=len(section.findings)), size=8,
                     colour=GREY)
