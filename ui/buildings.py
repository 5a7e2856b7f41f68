"""Building footprints on the Analyze page (upload or server path) and the buildings of an analysis on the Map page:
grade filter, sortable table, per-building review and labels (audit trail in the workspace), calibrate button."""

from __future__ import annotations

import time
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.buildings import Building, Calibration, calibrate_analysis, clear_calibration, load_buildings
from core.buildings.maplayer import grade_colour
from core.detection.grading import get_scale
from core.errors import CoreError
from core.safe_files import atomic_write_stream, safe_filename
from core.server_files.inputs import check_server_path
from ui import shell
from ui import state as S

FOOTPRINT_TYPES = ["geojson", "json", "gpkg", "fgb", "zip", "shp", "shx", "dbf", "prj", "cpg"]
LABELS = {"": "no label", "damaged": "damaged", "not-damaged": "not damaged"}


def staged_paths() -> list[str]:
    """Footprint files staged for the next analysis (a shapefile's .shp stands for its parts)."""
    return [f["path"] for f in S.get(S.STAGED_FOOTPRINTS)]


def footprints_section(ctx: shell.Context) -> None:
    """Upload footprint files (or name one on the server) for the next analysis."""
    with st.expander("Building footprints (optional): grade every building", expanded=bool(S.get(S.STAGED_FOOTPRINTS))):
        files = st.file_uploader("Footprints: GeoJSON, GeoPackage, FlatGeobuf, zipped shapefile (or its .shp, .shx, "
                                 ".dbf, .prj together), xBD label .json", accept_multiple_files=True,
                                 type=FOOTPRINT_TYPES, key=f"footprints_{S.get(S.UPLOADER_GEN)}")
        if files:
            folder = ctx.ws.uploads_dir(ctx.case_id or 0) / f"footprints-{int(time.time() * 1000)}"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                saved = []
                for f in files:
                    f.seek(0)
                    saved.append(atomic_write_stream(folder / safe_filename(f.name, default="footprints"), f))
            except (OSError, CoreError) as exc:
                shell.show_error(exc, "Footprints")
                saved = []
            staged = S.get(S.STAGED_FOOTPRINTS)
            for p in saved:
                if p.suffix.lower() not in (".shx", ".dbf", ".prj", ".cpg"):
                    staged.append({"path": str(p), "name": p.name, "origin": "upload"})
            S.put(S.UPLOADER_GEN, S.get(S.UPLOADER_GEN) + 1)
            st.rerun()
        with st.form("footprint_path_form", clear_on_submit=True, border=False):
            c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
            text = c1.text_input("…or a footprint file on the server", placeholder="/data/buildings.gpkg")
            if c2.form_submit_button("Add"):
                try:
                    p = check_server_path(text)
                    S.get(S.STAGED_FOOTPRINTS).append({"path": str(p), "name": p.name, "origin": "server path"})
                except CoreError as exc:
                    shell.show_error(exc)
        staged = S.get(S.STAGED_FOOTPRINTS)
        if staged:
            st.caption("Footprints of the next analysis: " + ", ".join(f["name"] for f in staged)
                       + ". Each building gets a score, a grade and a confidence; files that cannot be read are "
                         "reported and the rest still run.")
            if st.button("Remove footprints", key="clear_footprints"):
                S.put(S.STAGED_FOOTPRINTS, [])
                st.rerun()


def load(ctx: shell.Context, aid: int) -> Any:
    """The analysis' BuildingSet, or None when it was analysed without footprints."""
    if ctx.ws.building_set(aid) is None:
        return None
    return load_buildings(ws=ctx.ws, analysis_id=aid)


def legend(scale_key: str) -> None:
    """Grade colours of the buildings layer."""
    scale = get_scale(scale_key)
    items = " ".join(f"<span style='color:{g.color}'>&#9632;</span> {g.label}" for g in scale.grades())
    st.markdown(f"<small>Buildings: {items} &nbsp; dashed = rejected</small>", unsafe_allow_html=True)


def table(buildings: list[Building]) -> pd.DataFrame:
    """The buildings table (sortable by any column, score included)."""
    rows = []
    for b in buildings:
        rows.append({"building": b.building_id, "grade": grade_colour(b)[0], "score": b.score,
                     "confidence": b.confidence, "change": b.change_score, "post-only": b.post_score,
                     "label": LABELS.get(b.label or "", b.label), "review": b.review_status,
                     "area m²": b.area_m2, "MGRS": b.mgrs})
    return pd.DataFrame(rows)


def panel(ctx: shell.Context, aid: int, bset: Any, clicked: str | None) -> None:
    """Counts, filter, calibration, table and the review of one building (clicked on the map or picked)."""
    scale = get_scale(bset.grade_scale)
    counts = bset.counts()
    st.subheader("Buildings", divider="gray")
    st.caption(" · ".join(f"{scale.get(k).label}: {v}" for k, v in counts.items()))
    for e in bset.errors:
        st.error(e, icon=":material/error:")
    note = S.get(S.CAL_NOTE)
    if bset.calibration:  # green right after the analyst calibrated, blue afterwards
        just = bool(note and note.get("analysis_id") == aid)
        (st.success if just else st.info)(Calibration.from_dict(bset.calibration).summary(), icon=":material/tune:")
    n_labels = sum(1 for b in bset.buildings if b.label)
    c1, c2 = st.columns(2)
    if c1.button(f"Calibrate from {n_labels} label(s)", key="calibrate_buildings", disabled=n_labels == 0,
                 help="Fit the grades to your labels (damaged / not damaged): at least 4 inside the imagery; "
                      "shows cross-validated precision, recall and F1, then re-grades the other buildings."):
        try:
            cal = calibrate_analysis(bset, {}, ctx.ws.analysis_dir(aid), analyst=_analyst(ctx), ws=ctx.ws,
                                     analysis_id=aid)
            S.put(S.CAL_NOTE, {"analysis_id": aid, "text": cal.summary()})
            st.rerun()
        except CoreError as exc:
            shell.show_error(exc, "Calibration")
    if bset.calibration and c2.button("Automatic grades", key="reset_buildings"):
        clear_calibration(bset, ctx.ws.analysis_dir(aid), ws=ctx.ws, analysis_id=aid)
        S.put(S.CAL_NOTE, None)
        st.rerun()
    ids = [b.building_id for b in bset.buildings]
    by_id = {b.building_id: b for b in bset.buildings}
    click = f"{aid}:{clicked}" if clicked is not None else None
    if click is not None and click != S.get(S.BUILDING_CLICK):  # a new click (st_folium repeats the last one)
        S.put(S.BUILDING_CLICK, click)
        S.put(S.BUILDING_SHOWN, clicked)
    if S.get(S.BUILDING_SHOWN) not in by_id:
        S.put(S.BUILDING_SHOWN, None)
    S.bind(S.W_BUILDING, S.BUILDING_SHOWN)
    bid = st.selectbox("Building", ids, key=S.W_BUILDING, on_change=S.keep, args=(S.BUILDING_SHOWN, S.W_BUILDING),
                       placeholder="click one on the map, or pick it here",
                       format_func=lambda i: f"{i} · {grade_colour(by_id[i])[0]}")
    if bid is not None:
        review(ctx, aid, by_id[bid])


def _analyst(ctx: shell.Context) -> str:
    return (ctx.user.name if ctx.user else "") or str(S.get(S.ANALYST) or "") or "analyst"


def review(ctx: shell.Context, aid: int, b: Building) -> None:
    """Details of one building and its review form (status, grade, notes, label), saved with an audit row."""
    from core.store.buildings import building_ref

    scale = get_scale(b.grade_scale)
    st.markdown(f"**Building {escape(b.building_id)}**")
    score = f"{b.score:.3f}" if b.score is not None else "n/a"
    st.dataframe([{"field": k, "value": str(v)} for k, v in {
        "Grade": grade_colour(b)[0], "Score": f"{score} ({b.score_kind})", "Confidence": f"{b.confidence:.0%}",
        "Change q90": b.change_score, "Post-only q90": b.post_score, "MGRS": b.mgrs or "n/a",
        "Area": f"{b.area_m2:,.0f} m²" if b.area_m2 else "n/a", "Scene": b.scene_name or "not analysed",
        "Review": b.review_status, "Analyst": b.analyst or "—", "Label": LABELS.get(b.label or "", b.label),
    }.items()], hide_index=True, width="stretch")
    ref = building_ref(aid, b.building_id)
    grades = [g.key for g in scale.grades()]
    with st.form(f"building_review_{ref}"):
        label = st.radio("Label for calibration", list(LABELS), format_func=lambda k: LABELS[k], horizontal=True,
                         index=list(LABELS).index(b.label) if b.label in LABELS else 0)
        status = st.selectbox("Review", ["unreviewed", "confirmed", "rejected"],
                              index=["unreviewed", "confirmed", "rejected"].index(b.review_status))
        grade = st.selectbox("Grade", grades, index=grades.index(b.grade) if b.grade in grades else 0,
                             format_func=lambda k: scale.get(k).label)
        notes = st.text_area("Notes", value=b.notes)
        if st.form_submit_button("Save building review", type="primary"):
            try:
                ctx.ws.review_building(ref, analyst=_analyst(ctx), status=status if status != b.review_status
                                       else None, grade=grade if grade != b.grade else None,
                                       notes=notes if notes != b.notes else None,
                                       label=label or None if label != (b.label or "") else None,
                                       clear_label=label == "" and bool(b.label))
                st.rerun()
            except CoreError as exc:
                shell.show_error(exc, "Review")
    hist = ctx.ws.building_history(ref)
    if hist:
        with st.expander(f"Audit trail ({len(hist)})"):
            st.dataframe(pd.DataFrame(hist).drop(columns=["id", "building_ref"]), hide_index=True)


def analysis_summary(ctx: shell.Context, aid: int) -> None:
    """Buildings per grade of an analysis with footprints, its footprint messages, and where to review them."""
    try:
        bset = load(ctx, aid)
    except CoreError as exc:
        shell.show_error(exc, "Buildings")
        return
    if bset is None:
        return
    scale = get_scale(bset.grade_scale)
    parts = ", ".join(f"{scale.get(k).label.lower()} {v}" for k, v in bset.counts().items() if v)
    st.info(f"{len(bset.buildings)} buildings: {parts}. Review, label and calibrate them on the Map page; "
            f"buildings.geojson and buildings.csv are in {Path(ctx.ws.analysis_dir(aid))}.",
            icon=":material/home_work:")
    for e in bset.errors:
        st.error(e, icon=":material/error:")
    for note in bset.notes:
        st.caption(note)
