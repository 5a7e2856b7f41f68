"""Report: review the findings (each edit saved the moment it is made), summary charts, and the report files.

Reviews go to the workspace with the analyst name from the sidebar and an audit trail (:meth:`review_finding`);
the files are written by :mod:`core.report` into the analysis folder when asked for.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.detection.grading import SCALES
from core.detection.verdict import VERDICT_RULE, confidence_note, judge, verdict_summary
from core.errors import CoreError, WorkspaceError
from core.i18n import N_, _, translations, use
from core.mapping.basemaps import case_sources
from core.report import (
    ReportContext,
    analysis_model_info,
    pre_sources_of,
    write_csv,
    write_geojson,
    write_package,
    write_pdf,
)
from core.report.area import area_of, write_area_csv, write_area_geojson
from core.store.codec import REVIEW_STATUSES
from core.types import Finding, SceneResult
from ui import cells, i18n, shell
from ui import state as S
from ui.review import apply_edits, conflict_panel, grade_label, remember_table, review_form

PLOTLY = {"displayModeBar": False}
#: Report files: kind -> (file name, label, mime type).
FILES = {"pdf": ("report.pdf", N_("PDF report"), "application/pdf"),
         "csv": ("findings.csv", N_("Findings CSV"), "text/csv"),
         "geojson": ("findings.geojson", N_("Findings GeoJSON"), "application/geo+json"),
         "zip": ("report_package.zip", N_("Everything (zip)"), "application/zip")}


def grade_colour(f: Finding) -> str:
    """Colour of a finding's grade on its scale (grey when unknown)."""
    scale = SCALES.get(f.grade_scale)
    try:
        return scale.get(f.grade).color if scale is not None else "#a0aec0"
    except CoreError:
        return "#a0aec0"


def review_table(results: list[SceneResult]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The findings as the editor shows them (one row per finding, fixed order) and its column configuration."""
    rows = []
    for r in results:
        for f in r.findings:
            rows.append({"id": f.id, "image": r.scene_name, "review": f.review_status, "grade": f.grade,
                         "notes": f.notes, "score max": f.score_max, "confidence": f.confidence,
                         "area m²": cells.num(f.area_m2, ",.0f", cells.NOT_PLACED),
                         "lat": cells.num(f.centroid_lat, ".6f", cells.NOT_PLACED),
                         "lon": cells.num(f.centroid_lon, ".6f", cells.NOT_PLACED), "MGRS": cells.text(f.mgrs),
                         "method": f.det_method, "analyst": f.analyst})
    df = pd.DataFrame(rows, columns=["id", "image", "review", "grade", "notes", "score max", "confidence", "area m²",
                                     "lat", "lon", "MGRS", "method", "analyst"])
    first = next((f for r in results for f in r.findings), None)
    keys = sorted({f.grade for r in results for f in r.findings}
                  | {g.key for g in SCALES[first.grade_scale if first else "copernicus-ems"].grades()})
    cfg = {
        "id": st.column_config.TextColumn("id", disabled=True, pinned=True),
        "image": st.column_config.TextColumn(_("image"), disabled=True),
        "review": st.column_config.SelectboxColumn(_("review"), options=list(REVIEW_STATUSES), required=True,
                                                   format_func=i18n.fixed(REVIEW_STATUSES, _),
                                                   help=_("confirm or reject the finding")),
        "grade": st.column_config.SelectboxColumn(_("grade"), options=keys, required=True,
                                                  format_func=i18n.fixed(keys, lambda k: grade_label(first, k))),
        "notes": st.column_config.TextColumn(_("notes"), max_chars=2000),
        "score max": st.column_config.NumberColumn(_("score max"), format="%.2f", disabled=True),
        "confidence": st.column_config.ProgressColumn(_("confidence"), min_value=0.0, max_value=1.0, format="%.2f",
                                                      help=confidence_note()),
        "area m²": st.column_config.TextColumn(_("area m²"), disabled=True,
                                               help=_("geodesic area; 'not placed' without georeferencing")),
        "lat": st.column_config.TextColumn(_("lat"), disabled=True),
        "lon": st.column_config.TextColumn(_("lon"), disabled=True),
        "method": st.column_config.TextColumn(_("method")),
        "analyst": st.column_config.TextColumn(_("analyst")),
    }
    return df, cfg


def charts(findings: list[Finding]) -> None:
    """Counts and area per grade, and the score distribution, of the findings not rejected."""
    kept = [f for f in findings if f.review_status != "rejected"]
    if not kept:
        st.caption(_("No counted findings (none, or all rejected)."))
        return
    by: dict[str, list[Finding]] = {}
    for f in kept:
        by.setdefault(f.grade, []).append(f)
    grades = sorted(by, key=lambda g: -max(x.score_max for x in by[g]))
    labels = [grade_label(by[g][0], g) for g in grades]
    colours = [grade_colour(by[g][0]) for g in grades]
    area = [sum(x.area_m2 for x in by[g] if x.area_m2 is not None and math.isfinite(x.area_m2)) for g in grades]
    layout = dict(height=280, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    c1, c2, c3 = st.columns(3)
    fig = go.Figure(go.Bar(x=labels, y=[len(by[g]) for g in grades], marker_color=colours))
    c1.plotly_chart(fig.update_layout(title=_("Findings per grade"), **layout), width="stretch", config=PLOTLY)
    fig = go.Figure(go.Bar(x=labels, y=area, marker_color=colours))
    c2.plotly_chart(fig.update_layout(title=_("Area per grade (m²)"), **layout), width="stretch", config=PLOTLY)
    fig = go.Figure([go.Histogram(x=[x.score_max for x in by[g]], name=lab, marker_color=col, nbinsx=25)
                     for g, lab, col in zip(grades, labels, colours, strict=True)])
    c3.plotly_chart(fig.update_layout(title=_("Peak score distribution"), barmode="stack", **layout),
                    width="stretch", config=PLOTLY)
    if any(f.area_m2 is None for f in kept):
        st.caption(_(":material/info: Findings of images without georeference have no area; place those images on "
                     "the Analyze page."))


def text_field(label: str, state_key: str, widget_key: str, *, area: bool = False, **kw: Any) -> str:
    """A report field whose value survives page changes."""
    S.bind(widget_key, state_key)
    widget = st.text_area if area else st.text_input
    widget(label, key=widget_key, on_change=S.keep, args=(state_key, widget_key), **kw)
    return str(S.get(state_key))


def report_fields() -> None:
    """Event, AOI, handling line, organisation and the analyst's notes."""
    default_title = S.DEFAULTS[S.REPORT_TITLE]  # untouched default title: shown in the session's language
    if S.get(S.REPORT_TITLE) in {translations(lang).gettext(default_title) for lang in ("en", "ko")}:
        S.put(S.REPORT_TITLE, _(default_title))
    c1, c2 = st.columns(2)
    with c1:
        text_field(_("Report title"), S.REPORT_TITLE, "w_report_title", max_chars=300)
        text_field(_("Event / operation"), S.REPORT_EVENT, "w_report_event", max_chars=300)
        text_field(_("Area of interest"), S.REPORT_AOI, "w_report_aoi", max_chars=300)
        text_field(_("Handling / classification line (every page)"), S.REPORT_HANDLING, "w_report_handling",
                   max_chars=200, placeholder=_("e.g. TLP:CLEAR or UNCLASSIFIED // FOR OFFICIAL USE ONLY"))
        text_field(_("Organisation"), S.REPORT_ORG, "w_report_org", max_chars=300)
    with c2:
        text_field(_("Summary notes"), S.REPORT_SUMMARY, "w_report_summary", area=True, height=90)
        text_field(_("Phase 2 — functional damage notes"), S.REPORT_PHASE2, "w_report_phase2", area=True, height=90)
        text_field(_("Phase 3 — target-system assessment notes"), S.REPORT_PHASE3, "w_report_phase3", area=True,
                   height=90)


def build(ctx: shell.Context, analysis: dict[str, Any], results: list[SceneResult]) -> dict[str, str]:
    """Write the PDF, CSV, GeoJSON and the zip package into the analysis folder; returns kind -> path."""
    model = analysis_model_info(analysis["model"], analysis["threshold"], results)
    rc = ReportContext(title=S.get(S.REPORT_TITLE).strip() or _("Damage assessment"),
                       handling=S.get(S.REPORT_HANDLING),
                       scenes=results, event=S.get(S.REPORT_EVENT), aoi=S.get(S.REPORT_AOI), analyst=ctx.analyst,
                       organisation=S.get(S.REPORT_ORG), model_info=model, summary_notes=S.get(S.REPORT_SUMMARY),
                       phase2_notes=S.get(S.REPORT_PHASE2), phase3_notes=S.get(S.REPORT_PHASE3),
                       pre_sources=pre_sources_of(results), basemap_sources=case_sources(ctx.ws, ctx.case_id),
                       event_type=str((analysis.get("options") or {}).get("event_type") or "other"),
                       area=area_of(results, (analysis.get("options") or {}).get("out")
                                    or ctx.ws.analysis_dir(analysis["id"])))
    if ctx.ws.building_set(analysis["id"]) is not None:  # analysed with footprints: buildings per grade
        from core.buildings import load_buildings

        bset = load_buildings(ws=ctx.ws, analysis_id=analysis["id"])
        rc.buildings, rc.building_calibration = bset.buildings, bset.calibration
    rc.validate()
    out = ctx.ws.analysis_dir(analysis["id"]) / "report"
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(_("cannot create {path} ({error}); check the workspace folder's permissions and free "
                               "space.").format(path=out, error=exc.strerror or exc)) from exc
    pdf = write_pdf(rc, out / FILES["pdf"][0])
    if rc.area is not None:  # several georeferenced scenes: the area's merged findings beside the per-scene ones
        S.put(S.REPORT_AREA, {"analysis_id": analysis["id"], "findings": len(rc.area.findings),
                              "joined": rc.area.joined, "scenes": len(rc.area.scenes)})
        write_area_csv(rc.area, out / "area_findings.csv", bom=True)
        write_area_geojson(rc.area, out / "area_findings.geojson")
    else:
        S.put(S.REPORT_AREA, None)
    return {"pdf": str(pdf), "csv": str(write_csv(rc, out / FILES["csv"][0], bom=True)),
            "geojson": str(write_geojson(rc, out / FILES["geojson"][0])),
            "zip": str(write_package(rc, out / FILES["zip"][0], pdf_path=pdf))}


def reader(path: Path):
    """Deferred download data: the file is read only when the button is clicked."""
    return lambda: path.read_bytes()


def downloads(aid: int, results: list[SceneResult]) -> None:
    """Download buttons of the last built report files and of each image's heatmap GeoTIFF."""
    built = S.get(S.REPORT_FILES)
    files = built["files"] if built and built.get("analysis_id") == aid else {}
    cols = st.columns(len(FILES))
    for col, (kind, (name, label, mime)) in zip(cols, FILES.items(), strict=True):
        path = Path(files[kind]) if kind in files else None
        if path is not None and path.is_file():
            col.download_button(_(label), reader(path), file_name=name, mime=mime, on_click="ignore",
                                icon=":material/download:", key=f"dl_{kind}", width="stretch")
        else:
            col.button(_(label), disabled=True, key=f"dl_{kind}_off", width="stretch",
                       help=_("build the report first"))
    heat = [r for r in results if r.heatmap_path is not None and Path(r.heatmap_path).is_file()]
    if heat:
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        name = c1.selectbox(_("Heatmap GeoTIFF of"), [r.scene_name for r in heat], key="w_report_heatmap")
        r = next(x for x in heat if x.scene_name == name)
        c2.download_button(_("Heatmap GeoTIFF"), reader(Path(r.heatmap_path)), file_name=Path(r.heatmap_path).name,
                           mime="image/tiff", on_click="ignore", icon=":material/download:", key="dl_heatmap",
                           width="stretch")
        if r.change_path is not None and Path(r.change_path).is_file():
            c2.download_button(_("Change GeoTIFF"), reader(Path(r.change_path)), file_name=Path(r.change_path).name,
                               mime="image/tiff", on_click="ignore", icon=":material/download:", key="dl_change",
                               width="stretch", help=_("the change heatmap against {name}").format(
                                   name=r.pre_scene_name))


def page() -> None:
    """The Report page."""
    ctx = shell.context()
    st.title(_("Report"))
    if ctx.case_id is None:
        st.info(_("Create or choose a case in the sidebar first."), icon=":material/info:")
        st.stop()
    analysis = shell.pick_analysis(ctx, S.W_REPORT_ANALYSIS)
    if analysis is None:
        st.info(_("No analysis in this case yet: analyse images on the Analyze page first."), icon=":material/info:")
        st.stop()
    aid = analysis["id"]
    key = S.review_key(aid)
    results = [r for r in ctx.ws.scene_results(aid) if not r.error]
    ids = [f.id for r in results for f in r.findings]
    stored = {f.id: f for r in results for f in r.findings}
    try:
        if (n := apply_edits(ctx, aid, ids, stored, st.session_state.get(key))):
            st.toast(_("Saved the review of {n} finding(s).").format(n=n), icon=":material/check:")
            results = [r for r in ctx.ws.scene_results(aid) if not r.error]
    except CoreError as exc:
        shell.show_error(exc, _("Review not saved"))
    findings = [f for r in results for f in r.findings]

    tally = verdict_summary(results)
    st.subheader(_("Findings ({n} counted)").format(n=tally["findings"]) if not tally["rejected"] else
                 _("Findings ({n} counted, {r} rejected)").format(n=tally["findings"], r=tally["rejected"]))
    with st.expander(_("Verdicts: {a} anomalous, {n} normal of {s} image(s)").format(
            a=tally["anomalous"], n=tally["normal"], s=tally["scenes"]), icon=":material/rule:"):
        st.caption(_("Verdict: {rule} The PDF and the Analyze and Map pages state the same counts.").format(
            rule=_(VERDICT_RULE)))
        for r in results:
            st.text(f"{r.scene_name}: {judge(r).rule}")
    conflict_panel(ctx)
    if findings:
        df, cfg = review_table(results)
        remember_table(ctx, aid)
        if not ctx.can_work:
            st.info(_("You have a viewer account: the reviews are read-only for you."), icon=":material/visibility:")
        elif not ctx.analyst:  # an edit with no name to record could not be saved, and a refresh would lose it
            st.warning(_("Enter your name as Analyst in the sidebar to review: every review is recorded with who "
                         "made it and when. The table is read-only until then."), icon=":material/person:")
        st.data_editor(df, key=key, column_config=cfg, hide_index=True, num_rows="fixed", width="stretch",
                       disabled=True if not ctx.analyst or not ctx.can_work else
                       ["id", "image", "score max", "confidence", "area m²", "lat", "lon", "MGRS", "method",
                        "analyst"])
        st.caption(_("Edit review, grade and notes; each change is saved to the workspace at once with your name."))
        with st.expander(_("Review one finding"), expanded=False, icon=":material/rate_review:"):
            review_form(ctx, findings)
    else:
        st.info(_("This analysis has no findings at its threshold: the report will state that no anomaly was found."))
    charts(findings)

    st.subheader(_("Report"))
    report_fields()
    if st.button(_("Build report files"), type="primary", icon=":material/description:", key="build_report"):
        try:
            with st.spinner(_("Writing the PDF, CSV, GeoJSON and zip…")), use(S.get(S.LANG)):
                S.put(S.REPORT_FILES, {"analysis_id": aid, "files": build(ctx, analysis, results)})
        except CoreError as exc:
            shell.show_error(exc, _("Report"))
    area = S.get(S.REPORT_AREA)
    if area and area.get("analysis_id") == aid:
        st.caption(_(":material/layers: Area report: {n} area findings of {scenes} scenes (a finding cut by a scene "
                     "seam counted once, {joined} joined) in the PDF's section 1b and in area_findings.csv / "
                     ".geojson of the zip.").format(n=area["findings"], scenes=area["scenes"], joined=area["joined"]))
    downloads(aid, results)


page()
