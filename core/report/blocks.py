"""One block per top finding: what it is, where it is, and its chips side by side."""

from __future__ import annotations

import io

from PIL import ImageColor

from core.errors import CoreError
from core.i18n import _
from core.report._io import clean_text
from core.report.chips import Panel, finding_panels
from core.report.context import ReportContext, grade_colour, grade_label, is_confirmed
from core.report.extraction import ANOMALY, CHANGE, finding_kind
from core.report.layout import FONT, GREY, ReportPDF
from core.report.rasters import SceneCache
from core.report.summary import DISPLAY_THRESHOLD, ReportSummary, SceneStats
from core.report.texts import NOT_VALIDATED, fmt, fmt_latlon, title
from core.types import Finding, SceneResult

CHIP_GAP = 3.0  #: mm between chips


def _jpeg(panel: Panel) -> bytes:
    buf = io.BytesIO()
    panel.image.convert("RGB").save(buf, format="JPEG", quality=88)  # type: ignore[union-attr]
    return buf.getvalue()


def _chip_row(pdf: ReportPDF, panels: list[Panel], w: float) -> None:
    y0 = pdf.get_y()
    heights = [w * p.image.height / p.image.width if p.image is not None else w for p in panels]
    h = max(heights)
    bottom = y0 + h
    for k, p in enumerate(panels):
        x = pdf.l_margin + k * (w + CHIP_GAP)
        if p.image is not None:
            pdf.image(io.BytesIO(_jpeg(p)), x=x, y=y0, w=w, h=heights[k])
        else:
            pdf.set_fill_color(236, 236, 236)
            pdf.rect(x, y0, w, h, style="F")
            pdf.set_xy(x + 3, y0 + h / 2 - 5)
            pdf.set_font(FONT, "", 7)
            pdf.set_text_color(*GREY)
            pdf.multi_cell(w - 6, 3.4, clean_text(p.missing, 200), align="C")
        pdf.set_xy(x, y0 + h + 0.8)
        pdf.set_font(FONT, "", 7)
        pdf.set_text_color(*GREY)
        pdf.multi_cell(w, 3.2, p.caption, align="C", new_x="LEFT", new_y="NEXT")
        bottom = max(bottom, pdf.get_y())
    pdf.set_text_color(0, 0, 0)
    pdf.set_xy(pdf.l_margin, max(y0 + h + 8, bottom + 4))


def _details(f: Finding, sr: SceneResult | None) -> list[str]:
    change = finding_kind(f, sr) == CHANGE
    kind = _("change score") if change else _("anomaly score")
    thr = _("change threshold") if change else _("threshold")
    if f.centroid_lat is None or f.centroid_lon is None:
        where = _("no georeferencing: no coordinates or ground area (pixel box {box}, {px} px)").format(
            box=", ".join(str(int(v)) for v in f.bbox_px), px=fmt(f.area_px, 0))
    else:
        where = (_("MGRS {mgrs}   ·   lat, lon {latlon}{approx}   ·   area {area} m²").format(
            mgrs=clean_text(f.mgrs) or "—", latlon=fmt_latlon(f.centroid_lat, f.centroid_lon),
            approx=_(" (approximate)") if f.location_approximate else "", area=fmt(f.area_m2, 0)))
    lines = [where,
             _("{kind} mean {mean} / peak {peak} ({thr} {threshold})   ·   status {status}").format(
                 kind=kind, mean=fmt(f.score_mean), peak=fmt(f.score_max), thr=thr, threshold=fmt(f.threshold),
                 status=clean_text(_(f.review_status), 20))
             + (_(" by {analyst}").format(analyst=clean_text(f.analyst, 60)) if f.analyst else "")
             + ("" if is_confirmed(f) else f" — {_(NOT_VALIDATED)}")]
    src = f.source_name or (sr.source_path.name if sr and sr.source_path else f.scene_name)
    date = f.source_date or (sr.capture_time if sr else None)
    line = _("source {name}").format(name=clean_text(src, 100)) + (f" ({clean_text(date, 30)})" if date else "")
    pre = f.pre_source_name or (sr.pre_scene_name if sr else None)
    if pre and change:
        pre_date = f.pre_source_date or (sr.meta.get("pre_capture_time") if sr else None)
        line += "   ·   " + _("compared with pre-event {name}").format(name=clean_text(pre, 100)) + \
            (f" ({clean_text(pre_date, 30)})" if pre_date else "")
    lines.append(line)
    return lines


def finding_block(pdf: ReportPDF, obj_id: int, f: Finding, sr: SceneResult | None, panels: list[Panel]) -> None:
    """Title line, location and score details, analyst note, then the chips."""
    n = max(1, len(panels))
    w = min(60.0, (pdf.epw - (n - 1) * CHIP_GAP) / n)
    chip_h = max((w * p.image.height / p.image.width if p.image is not None else w) for p in panels) if panels \
        else 0.0
    note = clean_text(f.notes, 1200)
    need = 8 + 4 * 4.2 + (4.2 * (1 + len(note) // 110) if note else 0) + chip_h + 14
    if pdf.will_page_break(need):
        pdf.add_page()
    y = pdf.get_y()
    pdf.set_fill_color(*ImageColor.getrgb(grade_colour(f.grade, f.grade_scale)))
    pdf.rect(pdf.l_margin, y + 1, 3.2, 3.2, style="F")
    pdf.set_x(pdf.l_margin + 5)
    pdf.set_font(FONT, "B", 9.5)
    pdf.multi_cell(0, 5, f"#{obj_id}  {clean_text(f.id, 100)}  —  "
                         f"{clean_text(_(grade_label(f.grade, f.grade_scale)), 40)}  ·  "
                         + _("confidence {c}").format(c=fmt(f.confidence)), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 7.8)
    for line in _details(f, sr):
        pdf.multi_cell(0, 4.0, line, new_x="LMARGIN", new_y="NEXT")
    if note:
        pdf.set_font(FONT, "B", 7.8)
        label = _("Analyst note: ")
        pdf.cell(pdf.get_string_width(label) + 0.5, 4.0, label)
        pdf.set_font(FONT, "", 7.8)
        pdf.multi_cell(0, 4.0, note, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    if panels:
        _chip_row(pdf, panels, w)
    pdf.set_draw_color(200, 200, 200)
    pdf.line(pdf.l_margin, pdf.get_y() - 3, pdf.l_margin + pdf.epw, pdf.get_y() - 3)


def _anomaly_threshold(st: SceneStats | None) -> float:
    """Threshold of a scene's anomaly heatmap for its chip (1.0 when none is recorded)."""
    if st is None:
        return DISPLAY_THRESHOLD
    if st.basis.kind == ANOMALY:
        return st.display_threshold
    return st.anomaly_threshold if st.anomaly_threshold is not None else DISPLAY_THRESHOLD


def finding_details(pdf: ReportPDF, ctx: ReportContext, s: ReportSummary, cache: SceneCache) -> None:
    """Blocks for the top ``ctx.top_n`` counted findings by peak score."""
    pdf.h1(title("details"))
    top = s.counted[: ctx.top_n]
    if not top:
        pdf.para(_("No counted findings.") if ctx.top_n else _("Finding details were not requested (top_n = 0)."))
        return
    rest = len(s.counted) - len(top)
    chips = _("post-event image and its anomaly heatmap") if CHANGE not in s.kinds else (
        _("for a pre/post scene: post-event image, pre-event image, change heatmap (the findings' source) and the "
          "post-only anomaly heatmap for reference")
        + (_("; for a single image: post-event image and anomaly heatmap") if ANOMALY in s.kinds else ""))
    pdf.para(_("The {n} counted finding(s) with the highest peak score").format(n=len(top))
             + (_("; the other {rest} are in the table of section 2.").format(rest=rest) if rest else ".")
             + " " + _("Chips: {chips}. Each heatmap is coloured as on the maps, pale yellow at its own threshold "
                       "(given under the chip) to dark red at 2.5 times it; change and anomaly scores are different "
                       "units. Outlines are coloured by grade.").format(chips=chips), size=8, colour=GREY)
    pdf.ln(1)
    for obj_id, f in top:
        sr = s.scene_of.get(id(f))
        st = s.stats_of.get(id(f))
        try:
            panels = finding_panels(f, sr, cache, ctx.pre_source(sr), _anomaly_threshold(st), st.basis.threshold
                                    if st and st.basis.kind == CHANGE else None) if sr and st else []
        except (CoreError, OSError, ValueError) as err:  # a file damaged since the analysis: say so, go on
            panels = [Panel(_("Image chips"), None, _("chips could not be read: {error}").format(error=err))]
        finding_block(pdf, obj_id, f, sr, panels)
