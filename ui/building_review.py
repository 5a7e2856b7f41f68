"""One building's review on the Map page: its details, the review form (label, status, grade, notes), review
conflicts and its audit trail.

As the findings' form does (ui/review.py): the form remembers the version of the building's review it started from and
keeps what the analyst set across reruns (keyed widgets: an unkeyed widget drawn with the stored value as its default
became a new widget when another analyst changed that value, and the analyst's choice was silently dropped). A save
that finds the building reviewed by someone else in between saves nothing; the page shows who changed what and when,
and the analyst keeps that review or applies theirs on top of it. Both choices are written to the audit trail.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.buildings import Building
from core.buildings.labels import LABEL_WORDS, label_text
from core.buildings.maplayer import grade_colour
from core.detection.grading import get_scale
from core.errors import CoreError, ReviewConflictError
from core.i18n import N_, _
from core.store.buildings import building_ref
from core.store.codec import REVIEW_STATUSES
from ui import conflict as conflict_ui
from ui import i18n, shell
from ui import state as S
from ui.markdown_text import plain

#: Calibration labels: stored key -> English text (translated where shown).
LABELS = {"": N_("no label"), **LABEL_WORDS}  #: the review form's label choices
#: Columns of a building's details table.
DETAIL_COLUMNS = (N_("field"), N_("value"))
FIELDS = ("label", "status", "grade", "notes")


def analyst_name(ctx: shell.Context) -> str:
    """Who a building review is recorded with: the logged-in user, else the sidebar's name, else "analyst"."""
    return (ctx.user.name if ctx.user else "") or str(S.get(S.ANALYST) or "") or "analyst"


def _label(scale: Any, key: str) -> str:
    """Translated label of a grade key (the key itself when the scale does not know it)."""
    try:
        return _(scale.get(key).label)
    except CoreError:
        return key


def _keys(ref: str) -> dict[str, str]:
    return {field: f"w_bld_{field}_{ref}" for field in FIELDS}


def _forget(ref: str) -> None:
    """Drop the form's start state and widget values of ``ref``: its next draw starts from the workspace."""
    S.get(S.BUILDING_FORM).pop(ref, None)
    for key in _keys(ref).values():
        st.session_state.pop(key, None)


def _keywords(mine: dict[str, Any]) -> dict[str, Any]:
    """The form's changed fields as keywords of :meth:`Workspace.review_building` (no label: ``clear_label``)."""
    kw = {k: v for k, v in mine.items() if k != "label"}
    if "label" in mine:
        if mine["label"]:
            kw["label"] = mine["label"]
        else:
            kw["clear_label"] = True
    return kw


def _save(ctx: shell.Context, ref: str, mine: dict[str, Any], version: int) -> bool:
    """Save one building review; on a conflict keep it aside for :func:`_conflict_panel` and return False."""
    try:
        ctx.ws.review_building(ref, analyst=analyst_name(ctx), expected_version=version, **_keywords(mine))
    except ReviewConflictError as exc:
        S.put(S.BUILDING_CONFLICT, {"ref": ref, "mine": mine, "message": str(exc), "since": exc.since,
                                    "version": exc.version})
        return False
    return True


def _describe(row: dict[str, Any]) -> str:
    parts = [f"{_(field)}: {row[f'{field}_before'] or '—'} → {row[f'{field}_after'] or '—'}"
             for field in ("status", "grade", "notes") if row.get(f"{field}_after") is not None]
    if row.get("label_before") is not None or row.get("label_after") is not None:
        label = _("label")
        parts.append(f"{label}: {row.get('label_before') or '—'} → {row.get('label_after') or '—'}")
    return "; ".join(parts) or _("no change")


def _conflict_panel(ctx: shell.Context, ref: str, box: Any) -> None:
    """This session's last conflict on ``ref`` in ``box``: who changed the building, what and when, what this analyst
    wanted, and the two ways on (keep theirs / apply mine)."""
    conflict = S.get(S.BUILDING_CONFLICT)
    if not conflict or conflict["ref"] != ref:
        return
    mine = conflict["mine"]
    keep, apply = conflict_ui.choice(box, conflict, _describe, "w_bld_conflict")
    if not (keep or apply):
        return
    try:
        if keep:
            ctx.ws.keep_their_building_review(ref, analyst=analyst_name(ctx), **_keywords(mine))
            S.put(S.BUILDING_CONFLICT, None)
        elif _save(ctx, ref, mine, conflict["version"]):
            S.put(S.BUILDING_CONFLICT, None)
    except CoreError as exc:
        shell.show_error(exc, _("Review"))
        return
    _forget(ref)
    st.rerun()


def review(ctx: shell.Context, aid: int, b: Building) -> None:
    """Details of one building and its review form (label, status, grade, notes), saved with an audit row."""
    scale = get_scale(b.grade_scale)
    title = _("Building {id}").format(id=plain(b.building_id))
    st.markdown(f"**{title}**")
    na = _("n/a")
    score = f"{b.score:.3f}" if b.score is not None else na
    st.dataframe([{"field": k, "value": str(v)} for k, v in {
        _("Grade"): _(grade_colour(b)[0]), _("Score"): f"{score} ({_(b.score_kind)})",
        _("Confidence"): f"{b.confidence:.0%}", _("Change q90"): b.change_score, _("Post-only q90"): b.post_score,
        "MGRS": b.mgrs or na, _("Area"): f"{b.area_m2:,.0f} m²" if b.area_m2 else na,
        _("Scene"): b.scene_name or _("not analysed"), _("Review"): _(b.review_status), _("Analyst"): b.analyst or "—",
        _("Label"): label_text(b.label) or _(LABELS[""]),
    }.items()], hide_index=True, width="stretch", column_config=i18n.column_labels(DETAIL_COLUMNS))
    ref = building_ref(aid, b.building_id)
    box = st.container()  # drawn on every run: the form below keeps its place when the conflict panel comes and goes
    if ctx.can_work:
        _form(ctx, ref, b, scale, box)
    else:
        st.caption(_("Viewers see the reviews; reviewing needs an analyst account."))
    hist = ctx.ws.building_history(ref)
    if hist:
        import pandas as pd  # lazy: the Map page draws before pandas is needed

        with st.expander(_("Audit trail ({n})").format(n=len(hist))):
            st.dataframe(pd.DataFrame(conflict_ui.audit_rows(hist, _describe)), hide_index=True, width="stretch")


def _form(ctx: shell.Context, ref: str, b: Building, scale: Any, box: Any) -> None:
    keys = _keys(ref)
    forms = S.get(S.BUILDING_FORM)
    start = forms.get(ref)
    version = ctx.ws.building_version(ref)
    if start is None or any(k not in st.session_state for k in keys.values()):
        start = forms[ref] = {"version": version, "label": b.label or "", "status": b.review_status,
                              "grade": b.grade, "notes": b.notes}
        for field in FIELDS:
            st.session_state[keys[field]] = start[field]
    elif start["version"] != version:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.info(_("Building {id} was reviewed by {analyst} since you opened this form (now {status}). Saving will "
                  "show both reviews and let you choose.").format(
                      id=plain(b.building_id), analyst=plain(b.analyst or _("someone")), status=_(b.review_status)),
                icon=":material/group:")
        if c2.button(_("Start from theirs"), key="w_bld_reload"):
            _forget(ref)
            st.rerun()
    _conflict_panel(ctx, ref, box)
    grades = [g.key for g in scale.grades()]
    grades = grades if start["grade"] in grades else [start["grade"], *grades]
    statuses = list(REVIEW_STATUSES)
    with st.form(f"building_review_{ref}"):
        st.radio(_("Label for calibration"), list(LABELS), horizontal=True, key=keys["label"],
                 format_func=i18n.fixed(LABELS, lambda k: _(LABELS[k])))
        st.selectbox(_("Review"), statuses, key=keys["status"], format_func=i18n.fixed(statuses, _))
        st.selectbox(_("Grade"), grades, key=keys["grade"],
                     format_func=i18n.fixed(grades, lambda k: _label(scale, k)))
        st.text_area(_("Notes"), key=keys["notes"])
        if not st.form_submit_button(_("Save building review"), type="primary"):
            return
    mine = {f: st.session_state[keys[f]] for f in FIELDS if st.session_state[keys[f]] != start[f]}
    if not mine:
        st.info(_("Nothing to save: you changed nothing in the review of building {id}.").format(
            id=plain(b.building_id)), icon=":material/info:")
        return
    try:
        saved = _save(ctx, ref, mine, start["version"])
    except CoreError as exc:
        shell.show_error(exc, _("Review"))
        return
    if saved:
        _forget(ref)
    st.rerun()
