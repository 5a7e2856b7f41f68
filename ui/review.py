"""Reviewing findings on the Report page: the table's edits, the one-finding form, review conflicts and the trail.

Every save says which version of the finding it started from (:meth:`Workspace.review_version`): the table the
version each row showed when it was drawn, the form the version when the analyst opened it. When another analyst
reviewed the finding in between, nothing is saved; the page shows who changed what and when, and the analyst
chooses to keep that review or apply theirs on top of it. Both choices are written to the audit trail.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.detection.grading import SCALES
from core.errors import CoreError, ReviewConflictError
from core.i18n import _
from core.store.codec import REVIEW_STATUSES
from core.types import Finding
from ui import conflict as conflict_ui
from ui import i18n, shell
from ui import state as S
from ui.markdown_text import plain

#: Editable columns of the review table -> the keyword of :meth:`Workspace.review_finding`.
EDITABLE = {"review": "status", "grade": "grade", "notes": "notes"}
_FIELDS = ("status", "grade", "notes")


def grade_label(f: Finding | None, key: str) -> str:
    """Human label of a grade key (the key itself when the scale does not know it)."""
    scale = SCALES.get(f.grade_scale if f is not None else "copernicus-ems") or SCALES["copernicus-ems"]
    try:
        return _(scale.get(key).label)
    except CoreError:
        return key


def _save(ctx: shell.Context, fid: str, changes: dict[str, Any], version: int | None) -> bool:
    """Save one review; on a conflict keep it aside for :func:`conflict_panel` and return False."""
    try:
        ctx.ws.review_finding(fid, analyst=ctx.analyst, expected_version=version, **changes)
    except ReviewConflictError as exc:
        S.put(S.REVIEW_CONFLICT, {"fid": fid, "mine": changes, "message": str(exc), "since": exc.since,
                                  "version": exc.version})
        return False
    return True


def apply_edits(ctx: shell.Context, aid: int, ids: list[str], stored: dict[str, Finding],
                state: dict[str, Any] | None) -> int:
    """Save the review table's edits that differ from the workspace; returns how many findings were updated.

    The editor keeps its edits across reruns, so an edit is saved once: when it differs from the stored value
    and from what this session last saved for that cell. Each save expects the version the row showed when the
    table was drawn (:func:`remember_table`): another analyst's review in between is reported, not overwritten.
    """
    edits = (state or {}).get("edited_rows") or {}
    if not edits or not ctx.can_work:  # a viewer's table is read-only: edits sent anyway are not saved
        return 0
    if not ctx.analyst:
        st.warning(_("Enter your name as Analyst in the sidebar: reviews are recorded with it. Your edits are kept "
                     "in the table and saved as soon as the name is set."), icon=":material/person:")
        return 0
    applied = S.get(S.REVIEW_APPLIED)
    shown = S.get(S.REVIEW_SHOWN).get(aid, {})
    n = 0
    for pos, change in edits.items():
        try:
            fid = ids[int(pos)]
        except (ValueError, IndexError):
            continue
        f = stored[fid]
        current = {"review": f.review_status, "grade": f.grade, "notes": f.notes}
        done = applied.setdefault(fid, {})
        kw = {}
        for col, value in change.items():
            if col not in EDITABLE:
                continue
            value = "" if value is None and col == "notes" else value
            if value is None or value == current[col] or done.get(col) == value:
                continue
            kw[EDITABLE[col]] = value
        if kw:
            done.update({c: change[c] for c in change if c in EDITABLE})  # tried once, saved or in conflict
            if _save(ctx, fid, kw, shown.get(fid)):
                n += 1
    return n


def remember_table(ctx: shell.Context, aid: int) -> None:
    """Note the version of every finding the table is about to show: the versions its edits start from."""
    S.get(S.REVIEW_SHOWN)[aid] = ctx.ws.review_versions(aid)


def _describe(row: dict[str, Any]) -> str:
    return "; ".join(f"{_(field)}: {row[f'{field}_before'] or '—'} → {row[f'{field}_after'] or '—'}"
                     for field in _FIELDS if row.get(f"{field}_after") is not None) or _("no change")


def conflict_panel(ctx: shell.Context) -> None:
    """The last review conflict of this session: who changed the finding, what and when, what this analyst
    wanted, and the two ways on (keep theirs / apply mine).

    Its container is drawn on every run, empty without a conflict: the elements below keep their place in the page,
    so the "Review one finding" expander the analyst was saving from stays open when the panel comes and goes."""
    box = st.container()
    conflict = S.get(S.REVIEW_CONFLICT)
    if not conflict or not ctx.can_work:
        return
    fid, mine = conflict["fid"], conflict["mine"]
    keep, apply = conflict_ui.choice(box, conflict, _describe, "w_conflict")
    if not (keep or apply):
        return
    try:
        if keep:
            ctx.ws.keep_their_review(fid, analyst=ctx.analyst, **mine)
            S.put(S.REVIEW_CONFLICT, None)
            st.toast(_("Kept the other review of {id}; yours is in its history.").format(id=plain(fid)),
                     icon=":material/check:")
        elif _save(ctx, fid, mine, conflict["version"]):
            S.put(S.REVIEW_CONFLICT, None)
            st.toast(_("Saved your review of {id} over the other one (both are in its history).").format(id=plain(fid)),
                     icon=":material/check:")
    except CoreError as exc:
        shell.show_error(exc, _("Review not saved"))
        return
    _forget_form(fid)
    st.rerun()


def _form_keys(fid: str) -> dict[str, str]:
    return {field: f"w_review_one_{field}_{fid}" for field in _FIELDS}


def _forget_form(fid: str) -> None:
    """Drop the form's start state and widget values of ``fid``: its next draw starts from the workspace."""
    S.get(S.REVIEW_FORM).pop(fid, None)
    for key in _form_keys(fid).values():
        st.session_state.pop(key, None)


def review_form(ctx: shell.Context, findings: list[Finding]) -> None:
    """Review one finding with plain controls (keyboard-friendly companion of the table); saved on submit.

    The form keeps what the analyst set across reruns (keyed widgets) and the version it started from; when the
    finding is reviewed elsewhere meanwhile it says so (it never overwrites what the analyst is typing), and a
    save then asks which review to keep."""
    if not ctx.can_work:
        st.caption(_("Viewers see the reviews; reviewing needs an analyst account."))
        return
    by = {f.id: f for f in findings}
    # the label holds only what a review cannot change: the browser keeps showing a selected option's old label
    fid = st.selectbox(_("Finding to review"), list(by), key="w_review_one",
                       format_func=i18n.fixed(by, lambda i: _("{id} — peak score {score:.2f}").format(
                           id=i, score=by[i].score_max)))
    if fid is None:
        return
    f = by[fid]
    keys = _form_keys(fid)
    forms = S.get(S.REVIEW_FORM)
    start = forms.get(fid)
    version = ctx.ws.review_version(fid)
    if start is None or any(keys[k] not in st.session_state for k in _FIELDS):
        start = forms[fid] = {"version": version, "status": f.review_status, "grade": f.grade, "notes": f.notes}
        for field in _FIELDS:
            st.session_state[keys[field]] = start[field]
    elif start["version"] != version:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.info(_("{id} was reviewed by {analyst} since you opened this form (now {status}, grade {grade}). Saving "
                  "will show both reviews and let you choose.").format(
                      id=plain(fid), analyst=plain(f.analyst or _("someone")), status=_(f.review_status),
                      grade=plain(grade_label(f, f.grade))), icon=":material/group:")
        if c2.button(_("Start from theirs"), key="w_review_one_reload"):
            _forget_form(fid)
            st.rerun()
    grades = [g.key for g in SCALES[f.grade_scale].grades()] if f.grade_scale in SCALES else [start["grade"]]
    grades = grades if start["grade"] in grades else [start["grade"], *grades]
    with st.form(f"review_one_{fid}", border=True):
        c1, c2, c3 = st.columns([2, 2, 4])
        c1.radio(_("Review"), list(REVIEW_STATUSES), key=keys["status"], format_func=i18n.fixed(REVIEW_STATUSES, _))
        c2.selectbox(_("Grade"), grades, key=keys["grade"], format_func=i18n.fixed(grades, lambda k: grade_label(f, k)))
        c3.text_area(_("Notes"), key=keys["notes"], max_chars=2000, height=100)
        if st.form_submit_button(_("Save review"), icon=":material/rate_review:"):
            if not ctx.analyst:
                st.warning(_("Enter your name as Analyst in the sidebar first: reviews are recorded with it."),
                           icon=":material/person:")
                return
            changed = {k: st.session_state[keys[k]] for k in _FIELDS if st.session_state[keys[k]] != start[k]}
            if not changed:
                st.info(_("Nothing to save: you changed nothing in the review of {id}.").format(id=plain(fid)),
                        icon=":material/info:")
                return
            try:
                saved = _save(ctx, fid, changed, start["version"])
            except CoreError as exc:
                shell.show_error(exc, _("Review not saved"))
                return
            if saved:
                _forget_form(fid)
                st.toast(_("Saved the review of {id}.").format(id=plain(fid)), icon=":material/check:")
            st.rerun()
    history(ctx, fid)


def history(ctx: shell.Context, fid: str) -> None:
    """The audit trail of one finding: every review, who made it and when, what it changed."""
    try:
        rows = ctx.ws.review_history(fid)
    except CoreError as exc:
        shell.show_error(exc, _("Review history"))
        return
    if not rows:
        st.caption(_("{id} has not been reviewed yet.").format(id=plain(fid)))
        return
    st.markdown(_("**Review history of {id}** ({n})").format(id=plain(fid), n=len(rows)))
    st.dataframe(pd.DataFrame(conflict_ui.audit_rows(rows, _describe)), hide_index=True, width="stretch")
