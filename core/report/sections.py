"""The sections of the damage report, in reading order: cover, summary, damage table, method, appendix.

Finding detail blocks live in :mod:`core.report.blocks`. All user text goes through ``clean_text`` and is printed
literally (fpdf2 without markdown/HTML), so names and notes containing markup appear as typed.
"""

from __future__ import annotations

import math

from core.errors import CoreError
from core.report._io import clean_text
from core.report.context import ReportContext, grade_label, is_confirmed
from core.report.figures import histograms, overview_map, scene_map
from core.report.layout import FONT, GREY, ReportPDF
from core.report.rasters import SceneCache
from core.report.summary import ReportSummary

#: Section titles exactly as printed (tests and readers rely on them).
TITLES = {
    "summary": "1. Executive summary",
    "table": "2. Phase 1 physical damage assessment",
    "details": "3. Finding details",
    "method": "4. Method and limitations",
    "appendix": "Appendix A. Per-image scores",
}
NOT_VALIDATED = "automatic extraction, not field-validated"


def fmt(v: object, digits: int = 2) -> str:
    """Number with ``digits`` decimals, or an em dash when unknown."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "—"
    return f"{v:,.{digits}f}"


def fmt_area(m2: float | None) -> str:
    """Area in m² (km² above one square kilometre)."""
    if m2 is None or not math.isfinite(m2):
        return "—"
    return f"{m2 / 1e6:,.3f} km²" if m2 >= 1e6 else f"{m2:,.0f} m²"


def fmt_share(x: float | None) -> str:
    """A fraction as a percentage."""
    return "—" if x is None or not math.isfinite(x) else (f"{100 * x:.2f} %" if x >= 0.0001 else "< 0.01 %")


def fmt_latlon(lat: float | None, lon: float | None) -> str:
    """'lat, lon' with 5 decimals (about 1 m), or a note when there are no coordinates."""
    if lat is None or lon is None:
        return "no georef"
    return f"{lat:.5f}, {lon:.5f}"


def cover(pdf: ReportPDF, ctx: ReportContext, s: ReportSummary) -> None:
    """Title page: identification, handling, imagery sources, model."""
    pdf.add_page()
    pdf.set_y(28)
    pdf.para("BOMB / DISASTER DAMAGE ASSESSMENT — PHASE 1 (PHYSICAL DAMAGE)", size=9, colour=GREY)
    pdf.ln(1)
    pdf.set_font(FONT, "B", 20)
    pdf.multi_cell(0, 9, clean_text(ctx.title, 300), new_x="LMARGIN", new_y="NEXT")
    if ctx.event:
        pdf.para(ctx.event, size=13, h=6.5)
    pdf.ln(4)
    pdf.key_values([
        ("Event / operation", clean_text(ctx.event, 300)),
        ("Area of interest", clean_text(ctx.aoi, 600)),
        ("Report date-time", ctx.report_time_utc.strftime("%Y-%m-%d %H:%M UTC")),
        ("Analyst", clean_text(ctx.analyst, 200)),
        ("Organisation", clean_text(ctx.organisation, 200)),
        ("Handling", clean_text(ctx.handling, 200)),
        ("Findings", f"{len(s.counted)} counted ({s.confirmed} confirmed by an analyst), "
                     f"{len(s.rejected)} rejected and not counted"),
    ])
    pdf.h2("Imagery sources")
    rows = [["S#", "Image", "Role", "Captured", "GSD", "Georeferencing"]]
    for k, st in enumerate(s.scenes, start=1):
        sr = st.result
        g = sr.georef
        geo = "none (pixel coordinates only)" if g is None else \
            f"{clean_text(g.crs, 40)} ({g.method}{', approximate' if g.approximate else ''})"
        gsd = sr.gsd_m if sr.gsd_m is not None else (st.pixel_m[0] if st.pixel_m else None)
        rows.append([f"S{k}", clean_text(sr.scene_name, 120), "post-event (analysed)", clean_text(sr.capture_time) or
                     "unknown", f"{fmt(gsd)} m" if gsd else "unknown", geo])
        if sr.pre_scene_name:
            pre = ctx.pre_source(sr)
            dates = {f.pre_source_date for f in sr.findings if f.pre_source_date}
            rows.append(["", clean_text(pre.name if pre else sr.pre_scene_name, 120), f"pre-event for S{k}",
                         ", ".join(sorted(dates)) or "unknown", "—",
                         "compared" if pre else "file not available to the report"])
    pdf.grid(rows, (9, 62, 30, 30, 16, 39), size=7)
    pdf.h2("Detector")
    t = s.threshold
    pdf.key_values([
        ("Model", f"{ctx.model('name')} (version {ctx.model('version')})"),
        ("Architecture", ctx.model("arch")),
        ("Checkpoint SHA-256", ctx.model("sha256")),
        ("Finding threshold", f"{fmt(t, 3)} calibrated units — {ctx.model('threshold_method')}"),
    ], size=8.5)


def summary(pdf: ReportPDF, ctx: ReportContext, s: ReportSummary, cache: SceneCache) -> None:
    """Counts and areas per grade, share of the area assessed, the maps."""
    pdf.h1(TITLES["summary"])
    n, scenes = len(s.counted), len(s.scenes)
    failed = [st.result for st in s.scenes if st.result.error]
    area_txt = (f"The area assessed is {fmt_area(s.assessed_area_m2)} (valid imagery of "
                f"{scenes - s.scenes_without_area} georeferenced scene(s))" if s.assessed_area_m2 else
                "No scene is georeferenced, so no ground area can be stated")
    if n:
        cover_txt = (f"; anomalous regions cover {fmt_area(s.damaged_area_m2)} ({fmt_share(s.damaged_share)} of it)."
                     if s.assessed_area_m2 else ".")
        lead = (f"{n} damage finding(s) were extracted from {scenes} scene(s): {s.confirmed} confirmed by an "
                f"analyst, {n - s.confirmed} not yet reviewed ({NOT_VALIDATED}). {area_txt}{cover_txt}")
    else:
        lead = (f"No anomalous region above the threshold was found in the {scenes} scene(s) assessed. "
                f"{area_txt}.")
    pdf.para(lead)
    if s.rejected:
        pdf.para(f"{len(s.rejected)} finding(s) were rejected by an analyst; they are not counted anywhere in this "
                 "summary and are listed separately at the end of section 2.", size=8.5, colour=GREY)
    pdf.ln(2)
    if s.grades:
        rows = [["Damage grade", "Findings", "Confirmed", "Area", "Share of area assessed"]]
        rows += [[clean_text(g.grade, 60), str(g.count), str(g.confirmed),
                  fmt_area(g.area_m2) + (f" ({g.without_area} without area)" if g.without_area else ""),
                  fmt_share(g.share)] for g in s.grades]
        rows.append(["Total counted", str(n), str(s.confirmed),
                     fmt_area(s.damaged_area_m2) if any(g.area_m2 is not None for g in s.grades) else "—",
                     fmt_share(s.damaged_share)])
        pdf.grid(rows, (52, 22, 22, 55, 35), size=8.5)
    notes = []
    if s.without_georef:
        notes.append(f"{s.without_georef} counted finding(s) come from images without georeferencing: they have no "
                     "coordinates, no area in m² and are not in the GeoJSON file.")
    if s.scenes_without_area and s.assessed_area_m2:
        notes.append(f"{s.scenes_without_area} scene(s) without georeferencing are not included in the area "
                     "assessed.")
    for sr in failed:
        notes.append(f"Scene {clean_text(sr.scene_name, 80)} was not analysed: {clean_text(sr.error, 200)}")
    if notes:
        pdf.bullets(notes, size=8.5)
    if ctx.summary_notes.strip():
        pdf.h2("Analyst's assessment")
        pdf.para(ctx.summary_notes)
    over = overview_map(s)
    if over is not None:
        pdf.figure(over, "Footprints of the georeferenced scenes and centroids of counted findings by grade.",
                   max_h=125)
    mappable = [st for st in s.scenes if st.result.error is None and (st.heat is not None or st.result.findings)]
    ranked = sorted(mappable, key=lambda st: (-st.counted, -(st.peak or -math.inf)))
    shown = ranked[: max(0, ctx.max_map_figures)]
    for st in shown:
        name = clean_text(st.result.scene_name, 80)
        try:
            data = scene_map(st, cache.get(st.result.source_path), s)
        except (CoreError, OSError, ValueError) as err:  # a file damaged since the analysis: say so, go on
            pdf.para(f"The map of {name} could not be drawn: {clean_text(err, 300)}", size=8.5, colour=GREY)
            continue
        why = cache.errors.get(st.result.source_path) if st.result.source_path else "no source image recorded"
        pdf.figure(data, f"{name}: heatmap above the threshold ({fmt(s.display_threshold)}) and finding outlines "
                   "coloured by grade, numbered as in section 2."
                   + (f" Imagery not shown: {clean_text(why, 300)}" if why else ""), max_h=200)
    if len(s.scenes) > len(shown):
        pdf.para(f"Maps are shown for {len(shown)} scene(s) (those with the most findings); the other "
                 f"{len(s.scenes) - len(shown)} scene(s) are listed in Appendix A.", size=8.5, colour=GREY)


def damage_table(pdf: ReportPDF, s: ReportSummary) -> None:
    """Phase 1 table of counted findings, then the rejected ones."""
    pdf.h1(TITLES["table"])
    if not s.counted:
        pdf.para("No damage findings to list.")
    else:
        pdf.para("Counted findings by peak anomaly score. '#' is the obj_id of the CSV and GeoJSON files and the "
                 "number on the maps. Status 'unreviewed' means " + NOT_VALIDATED + ".", size=8, colour=GREY)
        rows = [["#", "Finding ID", "MGRS", "Lat, Lon", "Grade", "Conf.", "Area m²", "Status", "Analyst note"]]
        for i, f in s.counted:
            rows.append([str(i), clean_text(f.id, 80), clean_text(f.mgrs, 40) or "—",
                         fmt_latlon(f.centroid_lat, f.centroid_lon),
                         clean_text(grade_label(f.grade, f.grade_scale), 40), fmt(f.confidence), fmt(f.area_m2, 0),
                         clean_text(f.review_status, 20), clean_text(f.notes, 240)])
        pdf.set_font(FONT, "", 6.8)
        # Ids, MGRS and coordinates should not wrap (readers copy them); the note column takes what is left.
        w_id, w_mgrs, w_ll = (min(max(max(pdf.get_string_width(r[k]) for r in rows[1:]) + 2.8, 14), cap)
                              for k, cap in ((1, 40), (2, 34), (3, 34)))
        fixed = 7 + w_id + w_mgrs + w_ll + 17 + 10 + 11 + 18
        pdf.grid(rows, (7, w_id, w_mgrs, w_ll, 17, 10, 11, 18, max(pdf.epw - fixed, 20)), size=6.8)
    if s.rejected:
        pdf.h2("Rejected by analyst (not counted)")
        rows = [["#", "Finding ID", "Automatic grade", "Reviewed by", "Analyst note"]]
        rows += [[str(i), clean_text(f.id, 80), clean_text(grade_label(f.grade, f.grade_scale), 40),
                  clean_text(f.analyst, 60) or "—",
                  clean_text(f.notes, 300)] for i, f in s.rejected]
        pdf.grid(rows, (8, 40, 30, 32, 76), size=6.8)


def method(pdf: ReportPDF, ctx: ReportContext, s: ReportSummary) -> None:
    """How the findings were made, what they cannot say, and the phase 2/3 fields."""
    pdf.h1(TITLES["method"])
    pdf.h2("Detector and threshold")
    pdf.para(f"Detector: {ctx.model('name')} ({ctx.model('arch')}), version {ctx.model('version')}, checkpoint "
             f"SHA-256 {ctx.model('sha256')}. It is a one-class anomaly detector (FCDD / HSC family) trained on "
             "normal imagery; it marks what departs from normal scenes, not a specific damage type.")
    pdf.para(f"Scores are calibrated against the model's own held-out normal images: 0 is the median normal pixel, "
             f"1 the 99th percentile of normal pixels. Threshold: {fmt(s.threshold, 3)}; how it was set: "
             f"{ctx.model('threshold_method')}. Regions above it are outlined, measured (geodesic area) and graded "
             "from their score relative to the threshold; confidence is the margin over the threshold mapped to 0..1.")
    pdf.h2("Limitations")
    pdf.bullets([
        f"Findings not confirmed by an analyst are {NOT_VALIDATED}.",
        "Grades are derived from anomaly scores, not from observed structural damage; a confirmed grade reflects "
        "the analyst's visual review of the imagery only.",
        "Areas measure the anomalous region of the heatmap, not building footprints; neighbouring damage can merge.",
        "Locations from drone GPS footprints or fitted georeferencing are approximate (marked in the CSV).",
        "Clouds, shadows, smoke, new construction and seasonal change can raise scores without damage; damage "
        "hidden under intact roofs or outside the imagery is not seen.",
        "Images without georeferencing give findings without coordinates or areas.",
    ], size=8.5)
    for key, title in (("phase2_notes", "Phase 2 — functional damage assessment"),
                       ("phase3_notes", "Phase 3 — target-system assessment")):
        pdf.h2(title)
        text = getattr(ctx, key)
        if text.strip():
            pdf.para(text)
        else:
            pdf.para("Not assessed by this tool. Analyst notes:", size=8, colour=GREY)
            pdf.blank_box(6)


def appendix(pdf: ReportPDF, s: ReportSummary) -> None:
    """Per-image score table and the score histograms."""
    pdf.h1(TITLES["appendix"])
    rows = [["S#", "Scene", "Captured", "Image score", "Verdict", "Counted", "Rejected", "Peak", "Notes"]]
    for k, st in enumerate(s.scenes, start=1):
        sr = st.result
        notes = [clean_text(sr.error, 120)] if sr.error else []
        if sr.georef is None:
            notes.append("not georeferenced")
        if st.heat is None:
            notes.append("no heatmap file")
        if st.valid_fraction is not None and st.valid_fraction < 0.999:
            notes.append(f"valid {100 * st.valid_fraction:.0f} %")
        rows.append([f"S{k}", clean_text(sr.scene_name, 100), clean_text(sr.capture_time, 25) or "—",
                     fmt(sr.image_score, 3), clean_text(sr.verdict, 20), str(st.counted), str(st.rejected),
                     fmt(st.peak, 2), "; ".join(notes)])
    pdf.grid(rows, (8, 50, 22, 15, 18, 15, 15, 11, 32), size=6.8)
    pdf.figure(histograms(s), "Left: calibrated pixel scores sampled from all heatmaps. Right: peak scores of "
               "counted findings. Dashed: finding threshold.", max_h=80)
    confirmed = sum(1 for _, f in s.counted if is_confirmed(f))
    pdf.para(f"{confirmed} of {len(s.counted)} counted findings were confirmed by an analyst.", size=8, colour=GREY)
