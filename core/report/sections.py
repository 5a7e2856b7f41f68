"""The sections of the damage report, in reading order: cover, summary, damage table, appendix.

Finding detail blocks live in :mod:`core.report.blocks`, method and limitations in :mod:`core.report.method`.
All user text goes through ``clean_text`` and is printed literally (fpdf2 without markdown/HTML), so names and
notes containing markup appear as typed.
"""

from __future__ import annotations

import math
from typing import Any

from core.detection.verdict import VERDICT_RULE, confidence_note, judge
from core.errors import CoreError
from core.i18n import _
from core.report._io import clean_text
from core.report.context import ReportContext, grade_label, is_confirmed
from core.report.extraction import ANOMALY, CHANGE, change_meta, coregistration_meta
from core.report.figures import histograms, overview_map, scene_map
from core.report.layout import FONT, GREY, ReportPDF
from core.report.method import pre_date, threshold_rows
from core.report.rasters import SceneCache
from core.report.summary import ReportSummary
from core.report.texts import NOT_VALIDATED, TITLES, fmt, fmt_area, fmt_latlon, fmt_share, title

__all__ = ["NOT_VALIDATED", "TITLES", "appendix", "cover", "damage_table", "fmt", "fmt_area", "fmt_latlon",
           "fmt_share", "summary"]


def cover(pdf: ReportPDF, ctx: ReportContext, s: ReportSummary) -> None:
    """Title page: identification, handling, imagery sources, model."""
    pdf.add_page()
    pdf.set_y(28)
    pdf.para(_("BOMB / DISASTER DAMAGE ASSESSMENT — PHASE 1 (PHYSICAL DAMAGE)"), size=9, colour=GREY)
    pdf.ln(1)
    pdf.set_font(FONT, "B", 20)
    pdf.multi_cell(0, 9, clean_text(ctx.title, 300), new_x="LMARGIN", new_y="NEXT")
    if ctx.event:
        pdf.para(ctx.event, size=13, h=6.5)
    pdf.ln(4)
    pdf.key_values([
        (_("Event / operation"), clean_text(ctx.event, 300)),
        (_("Area of interest"), clean_text(ctx.aoi, 600)),
        (_("Report date-time"), ctx.report_time_utc.strftime("%Y-%m-%d %H:%M UTC")),
        (_("Analyst"), clean_text(ctx.analyst, 200)),
        (_("Reviewed by"), clean_text(", ".join(sorted({f.analyst for f in ctx.findings() if f.analyst}))
                                      or _("no finding reviewed yet"), 400)),
        (_("Organisation"), clean_text(ctx.organisation, 200)),
        (_("Handling"), clean_text(ctx.handling, 200)),
        (_("Findings"), _("{counted} counted ({confirmed} confirmed by an analyst), {rejected} rejected and not "
                          "counted").format(counted=len(s.counted), confirmed=s.confirmed, rejected=len(s.rejected))),
    ])
    pdf.h2(_("Imagery sources"))
    rows = [["S#", _("Image"), _("Role"), _("Captured"), "GSD", _("Georeferencing")]]
    unknown = _("unknown")
    for k, st in enumerate(s.scenes, start=1):
        sr = st.result
        g = sr.georef
        approximate = _(", approximate") if g is not None and g.approximate else ""
        geo = _("none (pixel coordinates only)") if g is None else \
            f"{clean_text(g.crs, 40)} ({_(g.method)}{approximate})"
        gsd = sr.gsd_m if sr.gsd_m is not None else (st.pixel_m[0] if st.pixel_m else None)
        rows.append([f"S{k}", clean_text(sr.scene_name, 120), _("post-event (analysed)"),
                     clean_text(sr.capture_time) or unknown, f"{fmt(gsd)} m" if gsd else unknown, geo])
        if sr.pre_scene_name:
            pre = ctx.pre_source(sr)
            pre_crs = coregistration_meta(sr).get("pre_crs")
            role = (_("pre-event for S{k} (change compared)") if st.basis.kind == CHANGE
                    else _("pre-event for S{k}")).format(k=k)
            rows.append(["", clean_text(pre.name if pre else sr.pre_scene_name, 120), role,
                         pre_date(st) or unknown, "—",
                         (clean_text(pre_crs, 40) if pre_crs else _("as the post-event image") if st.basis.kind ==
                          CHANGE else "—") + ("" if pre else _("; file not available to the report"))])
    pdf.grid(rows, (9, 58, 34, 30, 16, 39), size=7)
    if ctx.basemap_sources:
        pdf.h2(_("Map backgrounds (offline basemaps)"))
        for line in ctx.basemap_sources:
            pdf.para(clean_text(line, 400), size=8)
    pdf.h2(_("Detector"))
    pdf.key_values([
        (_("Model"), _("{name} (version {version})").format(name=ctx.model("name"), version=ctx.model("version"))),
        (_("Architecture"), ctx.model("arch")),
        (_("Checkpoint SHA-256"), ctx.model("sha256")),
        *(threshold_rows(ctx, s) or [(_("Finding threshold"), _("not recorded"))]),
    ], size=8.5)


def summary(pdf: ReportPDF, ctx: ReportContext, s: ReportSummary, cache: SceneCache) -> None:
    """Counts and areas per grade, share of the area assessed, the maps."""
    pdf.h1(title("summary"))
    n, scenes = len(s.counted), len(s.scenes)
    failed = [st.result for st in s.scenes if st.result.error]
    area_txt = (_("The area assessed is {area} (valid imagery of {n} georeferenced scene(s))").format(
                    area=fmt_area(s.assessed_area_m2), n=scenes - s.scenes_without_area) if s.assessed_area_m2 else
                _("No scene is georeferenced, so no ground area can be stated"))
    if n:
        cover_txt = (_("; the regions found cover {area} ({share} of it).").format(
                         area=fmt_area(s.damaged_area_m2), share=fmt_share(s.damaged_share))
                     if s.assessed_area_m2 else ".")
        lead = _("{n} damage finding(s) were extracted from {scenes} scene(s): {confirmed} confirmed by an "
                 "analyst, {unreviewed} not yet reviewed ({not_validated}). {area}{cover}").format(
                     n=n, scenes=scenes, confirmed=s.confirmed, unreviewed=n - s.confirmed,
                     not_validated=_(NOT_VALIDATED), area=area_txt, cover=cover_txt)
    else:
        lead = (_("No changed region above the change threshold was found in the {scenes} scene(s) assessed. "
                  "{area}.") if s.kinds == [CHANGE] else
                _("No anomalous region above the threshold was found in the {scenes} scene(s) assessed. "
                  "{area}.")).format(scenes=scenes, area=area_txt)
    pdf.para(lead)
    if CHANGE in s.kinds:
        pairs, singles = len(s.scenes_of(CHANGE)), len(s.scenes_of(ANOMALY))
        pdf.para(_("Findings of the {pairs} pre/post scene(s) come from their change heatmap (what differs between "
                   "the pre- and post-event images, section 4)").format(pairs=pairs)
                 + (_("; those of the {singles} single image(s) from their anomaly heatmap.").format(singles=singles)
                    if singles else "."),
                 size=8.5)
    if s.rejected:
        pdf.para(_("{n} finding(s) were rejected by an analyst; they are not counted anywhere in this summary and "
                   "are listed separately at the end of section 2.").format(n=len(s.rejected)),
                 size=8.5, colour=GREY)
    pdf.ln(2)
    if s.grades:
        rows = [[_("Damage grade"), _("Findings"), _("Confirmed"), _("Area"), _("Share of area assessed")]]
        rows += [[clean_text(_(g.grade), 60), str(g.count), str(g.confirmed),
                  fmt_area(g.area_m2) + (_(" ({n} without area)").format(n=g.without_area) if g.without_area
                                         else ""),
                  fmt_share(g.share)] for g in s.grades]
        rows.append([_("Total counted"), str(n), str(s.confirmed),
                     fmt_area(s.damaged_area_m2) if any(g.area_m2 is not None for g in s.grades) else "—",
                     fmt_share(s.damaged_share)])
        pdf.grid(rows, (52, 22, 22, 55, 35), size=8.5)
    notes = []
    if s.without_georef:
        notes.append(_("{n} counted finding(s) come from images without georeferencing: they have no coordinates, "
                       "no area in m² and are not in the GeoJSON file.").format(n=s.without_georef))
    if s.scenes_without_area and s.assessed_area_m2:
        notes.append(_("{n} scene(s) without georeferencing are not included in the area assessed.").format(
            n=s.scenes_without_area))
    for sr in failed:
        notes.append(_("Scene {name} was not analysed: {error}").format(name=clean_text(sr.scene_name, 80),
                                                                        error=clean_text(sr.error_text(), 200)))
    if notes:
        pdf.bullets(notes, size=8.5)
    if ctx.buildings:
        building_summary(pdf, ctx, cache)
    if ctx.summary_notes.strip():
        pdf.h2(_("Analyst's assessment"))
        pdf.para(ctx.summary_notes)
    over = overview_map(s)
    if over is not None:
        pdf.figure(over, _("Footprints of the georeferenced scenes and centroids of counted findings by grade."),
                   max_h=125)
    mappable = [st for st in s.scenes if st.result.error is None and (st.heat is not None or st.result.findings)]
    ranked = sorted(mappable, key=lambda st: (-st.counted, -(st.peak or -math.inf)))
    shown = ranked[: max(0, ctx.max_map_figures)]
    for st in shown:
        name = clean_text(st.result.scene_name, 80)
        try:
            data = scene_map(st, cache.get(st.result.source_path), s)
        except (CoreError, OSError, ValueError) as err:  # a file damaged since the analysis: say so, go on
            pdf.para(_("The map of {name} could not be drawn: {error}").format(name=name, error=clean_text(err, 300)),
                     size=8.5, colour=GREY)
            continue
        why = cache.errors.get(st.result.source_path) if st.result.source_path else _("no source image recorded")
        heat = (_("change heatmap against the pre-event image {pre} above the change threshold ({thr} calibrated "
                  "change units)").format(pre=clean_text(st.result.pre_scene_name, 80),
                                           thr=fmt(st.display_threshold))
                if st.basis.kind == CHANGE else
                _("anomaly heatmap above the threshold ({thr} calibrated anomaly units)").format(
                    thr=fmt(st.display_threshold)))
        pdf.figure(data, _("{name}: {heat} and finding outlines coloured by grade, numbered as in section 2.").format(
                       name=name, heat=heat)
                   + (" " + _("Imagery not shown: {why}").format(why=clean_text(why, 300)) if why else ""),
                   max_h=200)
    if len(s.scenes) > len(shown):
        pdf.para(_("Maps are shown for {shown} scene(s) (those with the most findings); the other {rest} scene(s) "
                   "are listed in Appendix A.").format(shown=len(shown), rest=len(s.scenes) - len(shown)),
                 size=8.5, colour=GREY)


#: Columns of the damage table that must not wrap (readers copy ids, MGRS, coordinates; a number split over two
#: lines reads as two numbers) -> the widest they may get (mm). Others: fixed widths; the note takes the rest.
_TABLE_NO_WRAP = {0: 12.0, 1: 40.0, 2: 34.0, 3: 34.0, 5: 12.0, 6: 22.0}
_TABLE_FIXED = {4: 17.0, 7: 18.0}
#: The same for the appendix's per-image table (scene names and the pre-event name may wrap).
_APPENDIX_NO_WRAP = {0: 10.0, 2: 30.0, 4: 16.0, 5: 16.0, 6: 18.0, 7: 14.0, 8: 15.0, 9: 12.0}
_APPENDIX_FIXED = {1: 34.0, 3: 26.0}


def damage_table(pdf: ReportPDF, s: ReportSummary) -> None:
    """Phase 1 table of counted findings, then the rejected ones."""
    pdf.h1(title("table"))
    if not s.counted:
        pdf.para(_("No damage findings to list."))
    else:
        labels: dict[tuple[str, ...], str] = {(ANOMALY,): _("peak anomaly score"), (CHANGE,): _("peak change score")}
        by = labels.get(
            tuple(s.kinds), _("peak score (change score for pre/post scenes, anomaly score for single images)"))
        pdf.para(_("Counted findings by {by}. '#' is the obj_id of the CSV and GeoJSON files and the number on the "
                   "maps. Status 'unreviewed' means {not_validated}.").format(by=by, not_validated=_(NOT_VALIDATED))
                 + " " + confidence_note(),
                 size=8, colour=GREY)
        rows = [["#", _("Finding ID"), "MGRS", _("Lat, Lon"), _("Grade"), _("Conf."), _("Area m²"), _("Status"),
                 _("Analyst note")]]
        for i, f in s.counted:
            rows.append([str(i), clean_text(f.id, 80), clean_text(f.mgrs, 40) or "—",
                         fmt_latlon(f.centroid_lat, f.centroid_lon),
                         clean_text(_(grade_label(f.grade, f.grade_scale)), 40), fmt(f.confidence),
                         fmt(f.area_m2, 0), clean_text(_(f.review_status), 20), clean_text(f.notes, 240)])
        pdf.grid(rows, pdf.fit_widths(rows, 6.8, _TABLE_NO_WRAP, _TABLE_FIXED), size=6.8)
    if s.rejected:
        pdf.h2(_("Rejected by analyst (not counted)"))
        rows = [["#", _("Finding ID"), _("Automatic grade"), _("Reviewed by"), _("Analyst note")]]
        rows += [[str(i), clean_text(f.id, 80), clean_text(_(grade_label(f.grade, f.grade_scale)), 40),
                  clean_text(f.analyst, 60) or "—",
                  clean_text(f.notes, 300)] for i, f in s.rejected]
        pdf.grid(rows, (8, 40, 30, 32, 76), size=6.8)


def appendix(pdf: ReportPDF, s: ReportSummary) -> None:
    """Per-image score table (with the heatmap and threshold each scene's findings come from) and the score
    histograms per kind of heatmap."""
    pdf.h1(title("appendix"))
    rows = [["S#", _("Scene"), _("Captured"), _("Findings from"), _("Threshold"), _("Image score"), _("Verdict"),
             _("Counted"), _("Rejected"), _("Peak"), _("Notes")]]
    for k, st in enumerate(s.scenes, start=1):
        sr = st.result
        notes = [clean_text(sr.error_text(), 120)] if sr.error else []
        if sr.georef is None:
            notes.append(_("not georeferenced"))
        if st.heat is None:
            notes.append(_("no {what} file").format(what=_(st.basis.label)))
        if st.valid_fraction is not None and st.valid_fraction < 0.999:
            notes.append(_("valid {pct:.0f} %").format(pct=100 * st.valid_fraction))
        mean_change = change_meta(sr).get("image_score")
        if st.basis.kind == CHANGE and isinstance(mean_change, (int, float)) and math.isfinite(mean_change):
            notes.append(_("mean change score {score}").format(score=fmt(mean_change, 2)))
        source = (_("change vs {pre}").format(pre=clean_text(sr.pre_scene_name, 60) or _("pre-event image"))
                  if st.basis.kind == CHANGE else _("anomaly"))
        rows.append([f"S{k}", clean_text(sr.scene_name, 100), clean_text(sr.capture_time, 25) or "—", source,
                     fmt(st.basis.threshold, 3), fmt(sr.image_score, 3), clean_text(_(judge(sr).verdict), 20),
                     str(st.counted), str(st.rejected), fmt(st.peak, 2), "; ".join(notes)])
    pdf.grid(rows, pdf.fit_widths(rows, 6.6, _APPENDIX_NO_WRAP, _APPENDIX_FIXED), size=6.6)
    pdf.para(_("Verdict: {rule} Image score: the detector's calibrated anomaly score of the whole post-event "
               "image (for pre/post scenes too); it ranks images and does not decide the verdict. Threshold and "
               "Peak: in the units of the heatmap the findings come from (change or anomaly).").format(
                   rule=_(VERDICT_RULE)), size=7.5, colour=GREY)
    pdf.figure(histograms(s), _("Left: calibrated pixel scores sampled from the heatmaps the findings come from. "
                                "Right: peak scores of counted findings. Dashed: finding threshold(s).")
               + (" " + _("Anomaly and change scores are different units and are shown apart.") if len(s.kinds) > 1
                  else " " + _("Change units (pre/post pairs).") if s.kinds == [CHANGE] else ""), max_h=150)
    confirmed = sum(1 for _f, f in s.counted if is_confirmed(f))
    pdf.para(_("{confirmed} of {n} counted findings were confirmed by an analyst.").format(
        confirmed=confirmed, n=len(s.counted)), size=8, colour=GREY)


def grade_colour_label(b: Any) -> str:
    """A building's grade label."""
    from core.buildings.maplayer import grade_colour

    return _(grade_colour(b)[0])


def building_summary(pdf: ReportPDF, ctx: ReportContext, cache: SceneCache | None = None) -> None:
    """Buildings per grade (count and footprint area), the top buildings by score (issue 13) and image chips of the
    first :data:`BUILDING_CHIPS` of them."""
    from core.buildings import grade_counts

    blds = ctx.buildings
    scale = blds[0].grade_scale
    counts = grade_counts(blds, scale)
    pdf.h2(_("Buildings"))
    counted = [b for b in blds if b.review_status != "rejected"]
    analysed = [b for b in counted if b.analysed]
    how = _("calibrated on analyst labels (section 4)") if ctx.building_calibration else \
        _("graded automatically from the heatmaps' building statistics (not validated)")
    text = _("{n} building footprint(s) were given; {inside} lie in the analysed imagery and were {how}; {outside} "
             "are outside it (not analysed).").format(n=len(blds), inside=len(analysed), how=how,
                                                      outside=len(counted) - len(analysed))
    if len(counted) < len(blds):
        text += " " + _("{n} rejected by an analyst are not counted.").format(n=len(blds) - len(counted))
    from core.buildings import relative_grades_note

    if relative := relative_grades_note(analysed):
        text += " " + relative
    pdf.para(text)
    rows = [[_("Building grade"), _("Buildings"), _("Footprint area")]]
    for key, n in counts.items():
        area = sum(b.area_m2 or 0.0 for b in counted if b.grade == key)
        from core.detection.grading import get_scale

        label = get_scale(scale).get(key).label
        rows.append([clean_text(_(label), 60), str(n), fmt_area(area) if n else "—"])
    pdf.grid(rows, (60, 30, 50), size=8.5)
    top = sorted([b for b in analysed if b.score is not None], key=lambda b: -float(b.score))[: max(0, ctx.top_n)]
    if top:
        pdf.para(_("The {n} highest-scoring buildings (all of them are in buildings.csv):").format(n=len(top)),
                 size=8.5)
        trows = [[_("Building"), _("Grade"), _("Score"), _("Conf."), "MGRS", _("Review"), _("Label")]]
        trows += [[clean_text(b.building_id, 40), clean_text(grade_colour_label(b), 30), fmt(b.score),
                   fmt(b.confidence), clean_text(b.mgrs, 30) or "—", clean_text(_(b.review_status), 20),
                   clean_text(b.label or "", 20) or "—"] for b in top]
        pdf.grid(trows, (30, 30, 16, 14, 40, 24, 22), size=7)
    if cache is not None:
        _building_chips(pdf, ctx, cache, top[:BUILDING_CHIPS])


#: Buildings of the top list shown with image chips in the executive summary.
BUILDING_CHIPS = 6


def _building_chips(pdf: ReportPDF, ctx: ReportContext, cache: SceneCache, top: list[Any]) -> None:
    """Post-event image and heatmap chips of the top buildings, outlined in their grade's colour."""
    from core.buildings.report import building_outline
    from core.report.blocks import _chip_row
    from core.report.chips import finding_panels
    from core.report.extraction import anomaly_threshold

    shown = False
    for b in top:
        sr = ctx.scene(b.scene_name) if b.scene_name else None
        f = building_outline(b, sr) if sr is not None else None
        if f is None or sr is None:
            continue
        try:
            ct = change_meta(sr).get("threshold") if sr.change_path is not None else None
            panels = finding_panels(f, sr, cache, ctx.pre_source(sr), anomaly_threshold(sr, ctx.model_info) or 1.0,
                                    float(ct) if isinstance(ct, (int, float)) else None, size=240)[:3]
        except (CoreError, OSError, ValueError) as err:  # a file damaged since the analysis: say so, go on
            pdf.para(_("Chips of building {id} could not be read: {error}").format(
                id=clean_text(b.building_id, 40), error=clean_text(err, 200)), size=8, colour=GREY)
            continue
        w = min(50.0, (pdf.epw - 2 * 4) / 3)
        if pdf.will_page_break(w + 16):
            pdf.add_page()
        if not shown:
            pdf.para(_("Image chips of the highest-scoring buildings (outlined in their grade's colour):"), size=8.5)
            shown = True
        pdf.para(_("Building {id} — {grade}, score {score}").format(
            id=clean_text(b.building_id, 40), grade=clean_text(grade_colour_label(b), 40), score=fmt(b.score)), size=8)
        _chip_row(pdf, panels, w)
