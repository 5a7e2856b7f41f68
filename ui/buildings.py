"""Building footprints on the Analyze page (upload or server path) and the buildings of an analysis on the Map page:
grade filter, sortable table, per-building review and labels (audit trail in the workspace), calibrate button."""

from __future__ import annotations

import time
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from core.atomic_files import atomic_write_stream
from core.buildings import Building, Calibration, calibrate_analysis, clear_calibration, load_buildings
from core.buildings.calibrate import prior_calibration
from core.buildings.maplayer import grade_colour
from core.buildings.suggest import DEFAULT_N, label_template_csv, suggest_labels
from core.detection.grading import get_scale
from core.errors import CoreError
from core.file_names import safe_filename
from core.i18n import N_, _, ngettext
from core.server_files.paths import check_server_path
from ui import i18n, shell
from ui import state as S
from ui.building_review import LABELS, analyst_name, review

if TYPE_CHECKING:
    import pandas as pd

FOOTPRINT_TYPES = ["geojson", "json", "gpkg", "fgb", "zip", "shp", "shx", "dbf", "prj", "cpg"]
#: Columns of the suggested buildings.
SUGGEST_COLUMNS = (N_("building"), N_("P(damaged)"), N_("why"), N_("score"))


def staged_paths() -> list[str]:
    """Footprint files staged for the next analysis (a shapefile's .shp stands for its parts)."""
    return [f["path"] for f in S.get(S.STAGED_FOOTPRINTS)]


def footprints_section(ctx: shell.Context) -> None:
    """Upload footprint files (or name one on the server) for the next analysis."""
    with st.expander(_("Building footprints (optional): grade every building"),
                     expanded=bool(S.get(S.STAGED_FOOTPRINTS))):
        files = st.file_uploader(_("Footprints: GeoJSON, GeoPackage, FlatGeobuf, zipped shapefile (or its .shp, "
                                   ".shx, .dbf, .prj together), xBD label .json"), accept_multiple_files=True,
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
                shell.show_error(exc, _("Footprints"))
                saved = []
            staged = S.get(S.STAGED_FOOTPRINTS)
            for p in saved:
                if p.suffix.lower() not in (".shx", ".dbf", ".prj", ".cpg"):
                    staged.append({"path": str(p), "name": p.name, "origin": "upload"})
            S.put(S.UPLOADER_GEN, S.get(S.UPLOADER_GEN) + 1)
            st.rerun()
        with st.form("footprint_path_form", clear_on_submit=True, border=False):
            c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
            text = c1.text_input(_("…or a footprint file on the server"), placeholder="/data/buildings.gpkg")
            if c2.form_submit_button(_("Add")):
                try:
                    p = check_server_path(text)
                    S.get(S.STAGED_FOOTPRINTS).append({"path": str(p), "name": p.name, "origin": "server path"})
                except CoreError as exc:
                    shell.show_error(exc)
        staged = S.get(S.STAGED_FOOTPRINTS)
        if staged:
            st.caption(_("Footprints of the next analysis: {files}. Each building gets a score, a grade and a "
                         "confidence; files that cannot be read are reported and the rest still run.")
                       .format(files=", ".join(f["name"] for f in staged)))
            if st.button(_("Remove footprints"), key="clear_footprints"):
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
    items = " ".join(f"<span style='color:{g.color}'>&#9632;</span> {escape(_(g.label))}" for g in scale.grades())
    st.markdown(f"<small>{_('Buildings: {items}').format(items=items)} &nbsp; {escape(_('dashed = rejected'))}"
                "</small>", unsafe_allow_html=True)


def table(buildings: list[Building]) -> pd.DataFrame:
    """The buildings table (sortable by any column, score included)."""
    rows = []
    for b in buildings:
        rows.append({"building": b.building_id, "grade": grade_colour(b)[0], "score": b.score,
                     "confidence": b.confidence, "change": b.change_score, "post-only": b.post_score,
                     "label": LABELS.get(b.label or "", b.label), "review": b.review_status,
                     "area m²": b.area_m2, "MGRS": b.mgrs})
    import pandas as pd  # lazy: the Analyze page draws before pandas is needed

    return pd.DataFrame(rows)


def panel(ctx: shell.Context, aid: int, bset: Any, clicked: str | None) -> None:
    """Counts, filter, calibration, table and the review of one building (clicked on the map or picked)."""
    scale = get_scale(bset.grade_scale)
    counts = bset.counts()
    st.subheader(_("Buildings"), divider="gray")
    st.caption(" · ".join(f"{_(scale.get(k).label)}: {v}" for k, v in counts.items()))
    for e in bset.errors:
        st.error(e, icon=":material/error:")
    note = S.get(S.CAL_NOTE)
    if bset.calibration:  # green right after the analyst calibrated, blue afterwards
        just = bool(note and note.get("analysis_id") == aid)
        (st.success if just else st.info)(Calibration.from_dict(bset.calibration).summary(), icon=":material/tune:")
    n_labels = sum(1 for b in bset.buildings if b.label)
    c1, c2 = st.columns(2)
    if c1.button(ngettext("Calibrate from {n} label", "Calibrate from {n} labels", n_labels).format(n=n_labels),
                 key="calibrate_buildings", disabled=n_labels == 0,
                 help=_("Fit the grades to your labels (damaged / not damaged): at least 4 inside the imagery; "
                        "shows cross-validated precision, recall and F1, then re-grades the other buildings.")):
        try:
            cal = calibrate_analysis(bset, {}, ctx.ws.analysis_dir(aid), analyst=analyst_name(ctx), ws=ctx.ws,
                                     analysis_id=aid)
            S.put(S.CAL_NOTE, {"analysis_id": aid, "text": cal.summary()})
            st.rerun()
        except CoreError as exc:
            shell.show_error(exc, _("Calibration"))
    if bset.calibration and c2.button(_("Automatic grades"), key="reset_buildings"):
        clear_calibration(bset, ctx.ws.analysis_dir(aid), ws=ctx.ws, analysis_id=aid)
        S.put(S.CAL_NOTE, None)
        st.rerun()
    suggestions(bset)
    ids = [b.building_id for b in bset.buildings]
    by_id = {b.building_id: b for b in bset.buildings}
    click = f"{aid}:{clicked}" if clicked is not None else None
    if click is not None and click != S.get(S.BUILDING_CLICK):  # a new click (st_folium repeats the last one)
        S.put(S.BUILDING_CLICK, click)
        S.put(S.BUILDING_SHOWN, clicked)
    if S.get(S.BUILDING_SHOWN) not in by_id:
        S.put(S.BUILDING_SHOWN, None)
    S.bind(S.W_BUILDING, S.BUILDING_SHOWN)
    bid = st.selectbox(_("Building"), ids, key=S.W_BUILDING, on_change=S.keep,
                       args=(S.BUILDING_SHOWN, S.W_BUILDING), placeholder=_("click one on the map, or pick it here"),
                       format_func=i18n.fixed(ids, lambda i: f"{i} · {_(grade_colour(by_id[i])[0])}"))
    if bid is not None:
        review(ctx, aid, by_id[bid])


def suggestions(bset: Any) -> None:
    """"Suggest buildings to label": the unlabelled buildings most worth labelling next
    (:func:`core.buildings.suggest.suggest_labels`), a button that opens the next one in the review form, and the
    list as a labels CSV template (for ``python -m core buildings calibrate --labels``)."""
    n_labels = sum(1 for b in bset.buildings if b.label)
    with st.expander(_("Suggest buildings to label"), expanded=n_labels < DEFAULT_N and not bset.calibration):
        st.caption(_("When few buildings are damaged, 20 buildings picked at random often hold no damaged one, and "
                     "the calibration cannot say where damage begins. These are picked for you: half near the "
                     "current boundary between damaged and not damaged, half spread over the score range, so that "
                     "10–20 labels hold both classes. Label them below, then calibrate; after calibrating, the "
                     "suggestions follow the new boundary. Cross-validated figures on labels picked this way "
                     "describe the hard cases near the boundary, so they read lower than on a random sample."))
        n = st.number_input(_("Buildings to suggest"), min_value=1, max_value=200, value=DEFAULT_N, step=5,
                            key="suggest_n")
        try:
            cal = bset.calibration or prior_calibration(bset.buildings)
            sug = suggest_labels(bset.buildings, int(n), cal)
        except CoreError as exc:
            shell.show_error(exc, _("Suggestions"))
            return
        pf = (cal.prior if isinstance(cal, Calibration) else None) or {}
        if pf.get("method") == "mixture":
            st.caption(_("Not calibrated yet: the suggestions read a prior from all buildings' scores. Damage is "
                         "assumed to begin at {boundary:.2f} on the primary map (mean, 90th percentile and ring "
                         "averaged), where the upper of two score groups ({share:.0%} of the buildings) takes "
                         "over.").format(boundary=pf["boundary"], share=pf.get("damaged_share") or 0.0))
        if not sug:
            st.info(_("Every analysed building is labelled."))
            return
        rows = [{"building": s.building_id, "P(damaged)": s.p_damaged, "why": _(s.reason), "score": s.score}
                for s in sug]
        import pandas as pd  # lazy: see table()

        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                     column_config={**i18n.column_labels(SUGGEST_COLUMNS),
                                    "P(damaged)": st.column_config.NumberColumn(_("P(damaged)"), format="%.2f"),
                                    "score": st.column_config.NumberColumn(_("score"), format="%.3f")})
        if st.button(_("Label the next suggested building"), key="next_suggested", width="stretch",
                     help=_("Opens the first building of the list in the review form below.")):
            S.put(S.BUILDING_SHOWN, sug[0].building_id)
            st.rerun()
        st.download_button(_("Labels CSV template"), data=label_template_csv(sug, bset.buildings).encode("utf-8"),
                           file_name="label_suggestions.csv", mime="text/csv", key="suggest_csv", width="stretch",
                           help=_("Fill its damaged column (1 / 0) and calibrate from the command line: "
                                  "python -m core buildings calibrate --analysis ID --labels label_suggestions.csv"))


def analysis_summary(ctx: shell.Context, aid: int) -> None:
    """Buildings per grade of an analysis with footprints, its footprint messages, and where to review them."""
    try:
        bset = load(ctx, aid)
    except CoreError as exc:
        shell.show_error(exc, _("Buildings"))
        return
    if bset is None:
        return
    scale = get_scale(bset.grade_scale)
    parts = ", ".join(f"{_(scale.get(k).label).lower()} {v}" for k, v in bset.counts().items() if v)
    n = len(bset.buildings)
    st.info(ngettext("{n} building: {parts}. Review, label and calibrate it on the Map page; buildings.geojson and "
                     "buildings.csv are in {folder}.",
                     "{n} buildings: {parts}. Review, label and calibrate them on the Map page; buildings.geojson "
                     "and buildings.csv are in {folder}.", n).format(n=n, parts=parts,
                                                                      folder=Path(ctx.ws.analysis_dir(aid))),
            icon=":material/home_work:")
    for e in bset.errors:
        st.error(e, icon=":material/error:")
    for note in bset.notes:
        st.caption(note)
