"""The buildings of an analysis: their grade counts on the Analyze page, and on the Map page the legend, the
sortable table and the panel (counts, calibrate button, label suggestions, per-building review and labels with their
audit trail in the workspace). Footprints for the next analysis are staged by :mod:`ui.footprints`."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from core.buildings import (
    Building,
    Calibration,
    calibrate_analysis,
    clear_calibration,
    load_buildings,
    relative_grades_note,
)
from core.buildings.labels import label_text
from core.buildings.maplayer import grade_colour
from core.detection.grading import get_scale
from core.errors import CoreError
from core.i18n import N_, _, ngettext
from ui import i18n, label_suggestions, shell
from ui import state as S
from ui.building_review import LABELS, analyst_name, review

if TYPE_CHECKING:
    import pandas as pd


def load(ctx: shell.Context, aid: int) -> Any:
    """The analysis' BuildingSet, or None when it was analysed without footprints."""
    if ctx.ws.building_set(aid) is None:
        return None
    return load_buildings(ws=ctx.ws, analysis_id=aid)


def legend(scale_key: str) -> None:
    """Grade colours of the buildings layer."""
    scale = get_scale(scale_key)
    items = " ".join(f"<span style='color:{g.color}'>&#9632;</span> {escape(_(g.label))}" for g in scale.grades())
    line, dashed = _("Buildings: {items}").format(items=items), escape(_("dashed = rejected"))
    st.markdown(f"<small>{line} &nbsp; {dashed}</small>", unsafe_allow_html=True)


#: Columns of the buildings table (English keys; shown translated with :func:`ui.i18n.column_labels`).
TABLE_COLUMNS = (N_("building"), N_("grade"), N_("score"), N_("confidence"), N_("change"), N_("post-only"),
                 N_("label"), N_("review"), N_("area m²"), "MGRS")


def table(buildings: list[Building]) -> pd.DataFrame:
    """The buildings table, highest score first (sortable by any column); its values in the page's language, its
    columns the English keys of :data:`TABLE_COLUMNS` (``column_config=i18n.column_labels(TABLE_COLUMNS)``)."""
    rows = []
    for b in sorted(buildings, key=lambda b: (b.score is None, -(b.score or 0.0))):
        rows.append(dict(zip(TABLE_COLUMNS, (
            b.building_id, _(grade_colour(b)[0]), b.score, b.confidence, b.change_score, b.post_score,
            label_text(b.label) or _(LABELS[""]), _(b.review_status), b.area_m2, b.mgrs), strict=True)))
    import pandas as pd  # lazy: the Analyze page draws before pandas is needed

    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


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
    elif relative := relative_grades_note(bset.buildings):
        st.warning(relative + " " + _("'Suggest buildings to label' below picks the informative ones."),
                   icon=":material/balance:")
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
    label_suggestions.suggestions(bset)
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
    if relative := relative_grades_note(bset.buildings):
        st.warning(relative + " " + _("On the Map page, 'Suggest buildings to label' picks the informative ones."),
                   icon=":material/balance:")
    for e in bset.errors:
        st.error(e, icon=":material/error:")
    for note in bset.notes:
        st.caption(note)
