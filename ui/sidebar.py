"""The shared sidebar: workspace, language, case switcher (new case, members, archive), model, device, threshold,
analyst or the logged-in account.

The sidebar is drawn by ``app.py`` before the page, and never waits for the model: while it loads (in the
background, see :mod:`ui.model_cache`) the model's place shows "Loading the model…", the page draws, and
:func:`finish_model_load` then waits for it behind a spinner and fills in the device, the model's description and
the threshold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

from core.errors import CoreError
from core.i18n import _, ngettext
from core.store import Workspace
from core.store.analyses import FIRST_CASE, FIRST_CASE_NOTE, case_display_name
from core.store.users import User
from ui import auth, case_archive, i18n, model_cache
from ui import state as S
from ui.markdown_text import in_code, plain
from ui.shell import seed_threshold, show_error, workspace

if TYPE_CHECKING:  # core.detection.detector imports torch: imported by the model's loading thread
    from core.detection.detector import Detector


# -- cases -------------------------------------------------------------------------------------------------------
def case_label(case: dict[str, Any]) -> str:
    """The case's label in the sidebar: only what never changes (name and id). The browser remembers a choice by
    its label: a label holding a count that an analysis changes was not found again after the analysis, and the
    box fell back to its first option, the newest case (issue 12: the Map and Report pages moved to another
    team's case)."""
    return f"{case_display_name(case['name'])} (#{case['id']})"


def _case_section(ws: Workspace, user: User | None) -> None:
    cases = ws.visible_cases(user)
    if not cases and (user is None or user.is_admin):
        S.put(S.CASE_ID, ws.ensure_case(FIRST_CASE, description=FIRST_CASE_NOTE))  # English: shown translated
        cases = ws.visible_cases(user)
    if not cases:
        S.put(S.CASE_ID, None)
        st.info(_("You are not a member of any case yet: ask an admin to add you to one "
                  "(`python -m core cases grant CASE NAME`), or create one below.") if user and user.can_work else
                _("You are not a member of any case yet: ask an admin to add you to one "
                  "(`python -m core cases grant CASE NAME`)."), icon=":material/folder_off:")
        if user is not None and user.can_work:
            _new_case(ws, user)
            case_archive.archive_popover(ws, None, user)
        return
    ids = [c["id"] for c in cases]
    by_id = {c["id"]: c for c in cases}
    if S.get(S.CASE_ID) not in ids:
        S.put(S.CASE_ID, ids[0])
    S.bind(S.W_CASE, S.CASE_ID)
    # labels made now, in this run's language ("Command line" is translated): see i18n.fixed
    st.selectbox(_("Case"), ids, format_func=i18n.fixed(ids, lambda cid: case_label(by_id[cid])), key=S.W_CASE,
                 on_change=S.keep,
                 args=(S.CASE_ID, S.W_CASE), help=_("An event or task that groups analyses, reviews and reports."))
    S.put(S.CASE_CAPTION, st.empty())
    refresh_case_caption(ws, S.get(S.CASE_ID))
    if user is None or user.can_work:
        _new_case(ws, user)
        case_archive.archive_popover(ws, S.get(S.CASE_ID), user)
    if user is not None and user.is_admin:
        _members(ws, S.get(S.CASE_ID))
    case_archive.archive_note()


def case_counts(ws: Workspace, case_id: int) -> str:
    """What the sidebar says about a case, read fresh from the workspace: analyses, images and findings."""
    analyses = ws.list_analyses(case_id)
    n_img = sum(int(a["n_done"]) for a in analyses)
    n_find, n_rej = ws.case_finding_counts(case_id)  # counted as every page and the report count them
    running = sum(a["status"] == "running" for a in analyses)
    parts = [ngettext("{n} analysis", "{n} analyses", len(analyses)).format(n=len(analyses)),
             ngettext("{n} image", "{n} images", n_img).format(n=n_img),
             ngettext("{n} finding", "{n} findings", n_find).format(n=n_find)
             + (_(" ({n} rejected)").format(n=n_rej) if n_rej else "")]
    if running:
        parts.append(_("{n} running").format(n=running))
    return " · ".join(parts)


def refresh_case_caption(ws: Workspace, case_id: int | None) -> None:
    """Redraw the sidebar's case counts (drawn before the page ran): a page calls it when an analysis starts or
    ends, so the sidebar never shows the counts from before the run."""
    slot = S.get(S.CASE_CAPTION)
    if slot is None or case_id is None:
        return
    try:
        slot.caption(case_counts(ws, case_id))
    except CoreError:
        slot.empty()


def _new_case(ws: Workspace, user: User | None) -> None:
    """The "New case" popover; an analyst who makes a case becomes its member."""
    with st.popover(_("New case"), icon=":material/add:", width="stretch"):
        with st.form("new_case_form", clear_on_submit=True, border=False):
            name = st.text_input(_("Case name"), key=S.W_NEW_CASE, max_chars=200)
            if st.form_submit_button(_("Create case")) and name.strip():
                try:
                    cid = ws.create_case(name.strip())
                    if user is not None and not user.is_admin:
                        ws.grant_case(cid, user.name)
                    S.put(S.CASE_ID, cid)
                    st.rerun()
                except CoreError as exc:
                    show_error(exc)


def _members(ws: Workspace, case_id: int) -> None:
    """An admin's "Case members" popover: which analysts and viewers may open the case in use."""
    others = [u for u in ws.list_users() if u["role"] != "admin"]
    with st.popover(_("Case members"), icon=":material/group:", width="stretch"):
        if not others:
            st.caption(_("No analysts or viewers yet (`python -m core users add NAME --role analyst`); admins see "
                         "every case."))
            return
        current = ws.case_members(case_id)
        role_of = {u["name"]: u["role"] for u in others}
        with st.form(f"members_form_{case_id}", border=False):
            chosen = st.multiselect(_("Members of this case"), [u["name"] for u in others],
                                    default=[n for n in current if any(u["name"] == n for u in others)],
                                    format_func=i18n.fixed(role_of, lambda n: f"{n} ({_(role_of[n])})"))
            if st.form_submit_button(_("Save members")):
                try:
                    for name in set(chosen) - set(current):
                        ws.grant_case(case_id, name)
                    for name in set(current) - set(chosen):
                        ws.revoke_case(case_id, name)
                except CoreError as exc:
                    show_error(exc, _("Members"))
                    return
                st.toast(_("Case members saved."), icon=":material/group:")


# -- model, device, threshold -----------------------------------------------------------------------------------
def _model_section(ws: Workspace) -> bool:
    """The model list; False when there is no model to choose."""
    choices = model_cache.model_choices(ws)
    if not choices:
        st.warning(_("No model available: the bundled default model is missing and none is registered. Train or "
                     "upload one on the Models page, or set BDA_MODEL."), icon=":material/warning:")
        return False
    keys = [c.key for c in choices]
    labels = {c.key: c.label for c in choices}
    if S.get(S.MODEL_PATH) not in keys:
        S.put(S.MODEL_PATH, keys[0])
    S.bind(S.W_MODEL, S.MODEL_PATH)
    st.selectbox(_("Model"), keys, format_func=labels.get, key=S.W_MODEL, on_change=S.keep,
                 args=(S.MODEL_PATH, S.W_MODEL), help=_("Default, trained and uploaded models of this workspace."))
    return True


def _device_and_model_status() -> Detector | None:
    """Device choice, then the model loaded on it and what it is. While the model loads (in the background) only
    "Loading the model…" is drawn in their place: the page draws meanwhile, and :func:`finish_model_load` waits
    for the model after the page and draws them there."""
    key, device = S.get(S.MODEL_PATH), S.get(S.DEVICE) or "auto"
    if not model_cache.model_loaded(key, device):  # its load starts after the page (or when the page needs it)
        slot = st.empty()
        slot.caption(":material/hourglass_top: " + _("Loading the model…"))
        S.put(S.MODEL_SLOT, slot)
        return None
    S.put(S.MODEL_SLOT, None)
    from core.detection.detector import device_label  # torch: imported by the model's load, which has ended

    devices = ["auto", "cpu"] + (["cuda"] if _cuda_available() else [])
    if S.get(S.DEVICE) not in devices:
        S.put(S.DEVICE, "auto")
    S.bind(S.W_DEVICE, S.DEVICE)
    st.selectbox(_("Device"), devices, key=S.W_DEVICE, on_change=S.keep, args=(S.DEVICE, S.W_DEVICE),
                 format_func={"auto": _("Automatic (GPU when present)"), "cpu": "CPU", "cuda": "GPU (CUDA)"}.get)
    try:
        det = model_cache.get_detector(S.get(S.MODEL_PATH), S.get(S.DEVICE))
    except CoreError as exc:
        show_error(exc, _("Model"))
        return None
    label = device_label(det.device)
    if det.device.type == "cpu":
        st.warning(_("{device}: no GPU in use, analysis is slower (seconds per tile).").format(device=label),
                   icon=":material/memory:")
    else:
        st.caption(f":material/bolt: {label}")
    st.caption(f"{_(det.family)} · `{in_code(det.arch)}` · v{plain(det.version)} · sha256 `{det.sha256[:12]}`")
    return det


def _cuda_available() -> bool:
    from core.detection.detector import resolve_device  # imports torch

    try:
        resolve_device("cuda")
        return True
    except CoreError:
        return False


def _threshold_section(det: Detector | None) -> None:
    if det is None:
        return
    seed_threshold(det)
    default = float(det.calibration.threshold)
    top = max(5.0, round(default * 3, 1))
    S.bind(S.W_THRESHOLD, S.THRESHOLD, shown=min(max(float(S.get(S.THRESHOLD)), 0.05), top))
    st.slider(_("Threshold (calibrated score)"), min_value=0.05, max_value=top, step=0.05, key=S.W_THRESHOLD,
              on_change=S.keep, args=(S.THRESHOLD, S.W_THRESHOLD),
              help=_("1 = the model's 99th percentile of normal pixels. Model default: {default:.2f}. Pixels at or "
                     "above the threshold form findings.").format(default=default))


# -- the sidebar -------------------------------------------------------------------------------------------------
def draw(user: User | None = None) -> None:
    """Draw the shared sidebar: workspace, case, model, device, threshold, analyst (or the logged-in account).
    Call once per run, from ``app.py``, before the page and after :func:`ui.auth.gate` let the run through
    (``user``: the logged-in user, None without accounts); then :func:`finish_model_load` after the page."""
    S.init()
    S.put(S.SHELL, True)
    S.put(S.MODEL_SLOT, None)
    with st.sidebar:
        try:
            ws = workspace()
        except CoreError as exc:
            show_error(exc, _("Workspace"))
            st.stop()
        i18n.switch(ws, user)
        st.caption(_(":material/folder: Workspace `{root}`").format(root=ws.root))
        try:
            _case_section(ws, user)
        except CoreError as exc:
            show_error(exc, _("Cases"))
        st.divider()
        if _model_section(ws):
            _threshold_section(_device_and_model_status())
        if user is None:  # no accounts: reviews are recorded with the name typed here
            S.bind(S.W_ANALYST, S.ANALYST)
            st.text_input(_("Analyst"), key=S.W_ANALYST, on_change=S.keep, args=(S.ANALYST, S.W_ANALYST),
                          max_chars=200, placeholder=_("your name (recorded with reviews)"))
        auth.account_box(user)


def finish_model_load() -> None:
    """After the page: when the sidebar was drawn while the model loaded, wait for it behind the "Loading the
    model…" spinner in the sidebar, then draw the device, the model's description and the threshold in its place
    (no rerun: what the page showed once, such as an upload's note, stays). The wait gives way to the analyst's
    next click or upload (:func:`ui.model_cache.wait`)."""
    slot = S.get(S.MODEL_SLOT)
    if slot is None:
        return
    fut = model_cache.start_loading(S.get(S.MODEL_PATH), S.get(S.DEVICE) or "auto")
    with slot.container():
        with st.spinner(_("Loading the model…")):
            model_cache.wait(fut)
        _threshold_section(_device_and_model_status())
