"""Every session-state key of the app, declared once, with its default (seeded once per session by :func:`init`).

Pages never write ``st.session_state["some string"]`` directly: they use the names below, so a key has one
spelling and one default. Keys starting with ``w_`` belong to widgets; a widget whose value must survive a page
change (Streamlit drops the state of widgets that were not drawn on the last run) mirrors it into a plain key with
:func:`keep`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import streamlit as st

from core.i18n import N_

SHELL = "shell_ready"  #: set by app.py on every run; a page run without it was reached around the app shell

# -- sidebar: what every page works with -------------------------------------------------------------------------
CASE_ID = "case_id"  #: id of the case in use (int) or None
USERS_NOTE = "users_note"  #: what the last change on the Users page did, shown after its rerun
USER = "user"  #: the logged-in user ({"id", "name", "role", "updated_at"}) or None (not logged in, or no accounts)
LOGIN_AT = "login_at"  #: time.time() of the login (a login expires after $BDA_SESSION_MAX_HOURS)
SEEN_AT = "seen_at"  #: time.time() of the last run of this session (idle expiry: $BDA_SESSION_IDLE_MINUTES)
LOGIN_NOTE = "login_note"  #: why the login form is shown again (expired, logged out), shown on it
MODEL_PATH = "model_path"  #: checkpoint path (str) of the model in use; "" = the default model
DEVICE = "device"  #: "auto" | "cpu" | "cuda"
THRESHOLD = "threshold"  #: finding threshold in calibrated units; None = the model's calibrated default
THRESHOLD_MODEL = "threshold_model"  #: the model whose default seeded THRESHOLD (reset when the model changes)
ANALYST = "analyst"  #: analyst name written into reviews and reports
LANG = "lang"  #: interface language of this session ("en" | "ko"); None until ui.i18n.init_session sets it
LANG_FOR = "lang_for"  #: the user ("" = no accounts) whose remembered language LANG was loaded for
CASE_ARCHIVE = "case_archive"  #: {"case_id": int, "path": str} of the last case archive prepared for download
ARCHIVE_GEN = "archive_generation"  #: bumped to empty the case-archive uploader after an import
ARCHIVE_NOTE = "archive_note"  #: message of the last import, shown once after the rerun
CASE_CAPTION = "case_caption_slot"  #: this run's placeholder of the sidebar's case counts (redrawn after a run)
MODEL_SLOT = "model_slot"  #: the sidebar's placeholder of the model while it loads (None once drawn with the model)

# -- Analyze --------------------------------------------------------------------------------------------------------
AUTO_RUN = "auto_run"  #: analyse uploads as soon as they are saved
STAGED = "staged_inputs"  #: list of {"path", "name", "origin"} waiting to be analysed
SAVED_UPLOADS = "saved_uploads"  #: upload file_id -> saved path (each upload is written once)
UPLOAD_ERRORS = "upload_errors"  #: messages of uploads that could not be saved, shown once
UPLOAD_NOTES = "upload_notes"  #: messages about uploads kept aside (xBD label files), shown once
#: Generations of the Analyze page's three uploaders (images, pre-event images, footprints), each bumped to empty
#: its own uploader once its files are saved (frees the uploads' memory). One shared generation emptied all three
#: at once and dropped a file still arriving in another (an image, then footprints, uploaded in quick succession).
UPLOADER_GEN = "uploader_generation"
PRE_UPLOADER_GEN = "pre_uploader_generation"
FOOTPRINT_UPLOADER_GEN = "footprint_uploader_generation"
ANALYSIS_ID = "analysis_id"  #: analysis shown on Analyze and Report (int) or None
RUN_ERRORS = "run_errors"  #: {input name: message} of the last run, shown per file
OPACITY = "opacity"  #: heatmap opacity on the overlay, 0..1
GRADE_SCALE = "grade_scale"  #: damage scale of new analyses: copernicus-ems | xview2-jds | unosat
SHOWN_SCENE = "shown_scene"  #: name of the image shown in detail on Analyze
STAGED_PRE = "staged_pre_inputs"  #: pre-event images {"path", "name", "origin"}: references, never analysed alone
PAIRS = "pair_choices"  #: {post input name: pre input name, or "" for none} pairings the analyst changed by hand
RESAMPLE = "resample"  #: resample georeferenced inputs to the model's ground sample distance
COMPARE_MODE = "compare_mode"  #: before/after view: "wipe" | "blend"
EVENT_TYPE = "event_type"  #: kind of event of new analyses (core.analysis.guidance.EVENT_MODES key)
ENGINE = "engine"  #: where new analyses run: "local" or "ray" (offered when $BDA_RAY_ADDRESS names a cluster)
AREA_FIT_JOB = "area_fit_job"  #: id of the job fitting a normal model to the staged pre-event images, or None
STAGED_FOOTPRINTS = "staged_footprints"  #: building footprint files {"path", "name", "origin"} of the next run
CAL_NOTE = "calibration_note"  #: {"analysis_id", "text"} of the last calibration, shown on the Map page
BUILDING_SHOWN = "building_shown"  #: building id shown in the Map page's building panel, or None
BUILDING_CLICK = "building_click"  #: the last map click on a building already handled (a rerun repeats it)
BUILDING_FORM = "building_form"  #: {building ref: {"version", "label", "status", "grade", "notes"}} a form started from
BUILDING_CONFLICT = "building_conflict"  #: the last building review conflict: {"ref", "mine", "message", "since", ...}
W_BUILDING = "w_building"

# -- Report ---------------------------------------------------------------------------------------------------------
REPORT_TITLE = "report_title"
REPORT_EVENT = "report_event"
REPORT_AOI = "report_aoi"
REPORT_HANDLING = "report_handling"
REPORT_ORG = "report_org"
REPORT_SUMMARY = "report_summary"
REPORT_PHASE2 = "report_phase2"
REPORT_PHASE3 = "report_phase3"
REPORT_FILES = "report_files"  #: {"analysis_id": int, "files": {kind: path}} of the last built report
REPORT_AREA = "report_area"  #: {"analysis_id", "findings", "joined", "scenes"} of the last built report's area section
REVIEW_APPLIED = "review_applied"  #: {finding id: {column: value}} edits of this session already saved
REVIEW_SHOWN = "review_shown"  #: {analysis id: {finding id: review version}} as the review table last showed them
REVIEW_FORM = "review_form"  #: {finding id: {"version", "status", "grade", "notes"}} the review form started from
REVIEW_CONFLICT = "review_conflict"  #: the last review conflict: {"fid", "mine", "message", "since", "version"}

# -- widget keys ----------------------------------------------------------------------------------------------------
W_CASE = "w_case"
W_LOGIN_NAME = "w_login_name"
W_LOGIN_PASSWORD = "w_login_password"
W_MEMBERS = "w_members"
W_NEW_CASE = "w_new_case"
W_ARCHIVE_INPUTS = "w_archive_inputs"
W_MODEL = "w_model"
W_DEVICE = "w_device"
W_THRESHOLD = "w_threshold"
W_ANALYST = "w_analyst"
W_LANG = "w_lang"
W_SERVER_PATH = "w_server_path"
W_BASEMAP_PATH = "w_basemap_path"  #: Map page: server path of a basemap to add
W_BASEMAP_NAME = "w_basemap_name"
W_BASEMAP_UPLOAD = "w_basemap_upload"
W_HEAT_LAYER = "w_heat_layer"  #: Map page: which heatmap kind the map shows first
W_ANALYSIS = "w_analysis"
W_OPACITY = "w_opacity"
W_AUTO_RUN = "w_auto_run"
W_GRADE_SCALE = "w_grade_scale"
W_SHOWN_SCENE = "w_shown_scene"
W_HIST_KIND = "w_hist_kind"
W_REPORT_ANALYSIS = "w_report_analysis"
W_SERVER_ROLE = "w_server_role"
W_COMPARE_POS = "w_compare_pos"
W_COMPARE_MODE = "w_compare_mode"
W_RESAMPLE = "w_resample"
W_EVENT_TYPE = "w_event_type"
W_USERS_NEW_NAME = "w_users_new_name"
W_USERS_NEW_ROLE = "w_users_new_role"
W_USERS_EDIT_NAME = "w_users_edit_name"
W_USERS_EDIT_ROLE = "w_users_edit_role"
W_USERS_REMOVE = "w_users_remove"
W_ENGINE = "w_engine"


def uploader_key() -> str:
    """Key of the Analyze page's file uploader (changes when the uploader is emptied)."""
    return f"w_upload_{st.session_state[UPLOADER_GEN]}"


def pre_uploader_key() -> str:
    """Key of the Analyze page's pre-event uploader (changes when it is emptied)."""
    return f"w_upload_pre_{st.session_state[PRE_UPLOADER_GEN]}"


def footprint_uploader_key() -> str:
    """Key of the Analyze page's footprint uploader (changes when it is emptied)."""
    return f"footprints_{st.session_state[FOOTPRINT_UPLOADER_GEN]}"


def empty_uploader(generation: str) -> None:
    """Empty one uploader (``UPLOADER_GEN``, ``PRE_UPLOADER_GEN``, ``FOOTPRINT_UPLOADER_GEN`` or ``ARCHIVE_GEN``) on
    the next run: its key changes, so Streamlit drops the uploaded bytes."""
    put(generation, get(generation) + 1)


def archive_uploader_key() -> str:
    """Key of the sidebar's case-archive uploader (changes when the uploader is emptied)."""
    return f"w_case_archive_{st.session_state[ARCHIVE_GEN]}"


def pair_key(post_name: str) -> str:
    """Widget key of the "pre-event image" selectbox of one staged post-event image."""
    return f"w_pair_{hashlib.sha1(post_name.encode()).hexdigest()[:12]}"


def review_key(analysis_id: int) -> str:
    """Key of the Report page's findings editor of one analysis (its edit state: edited_rows, ...)."""
    return f"w_review_{int(analysis_id)}"


def place_key(scene: str, field: str) -> str:
    """Widget key of a field of the "place this frame on the map" form of one scene."""
    return f"w_place_{field}_{hashlib.sha1(scene.encode()).hexdigest()[:12]}"


DEFAULTS: dict[str, Any] = {
    STAGED_FOOTPRINTS: [],
    CAL_NOTE: None,
    BUILDING_SHOWN: None,
    BUILDING_CLICK: None,
    BUILDING_FORM: {},
    BUILDING_CONFLICT: None,
    SHELL: False,
    CASE_ID: None,
    USER: None,
    USERS_NOTE: None,
    LOGIN_AT: None,
    SEEN_AT: None,
    LOGIN_NOTE: None,
    MODEL_PATH: "",
    DEVICE: "auto",
    THRESHOLD: None,
    THRESHOLD_MODEL: None,
    ANALYST: "",
    LANG: None,
    LANG_FOR: None,
    CASE_ARCHIVE: None,
    ARCHIVE_GEN: 0,
    ARCHIVE_NOTE: None,
    CASE_CAPTION: None,
    MODEL_SLOT: None,
    AUTO_RUN: False,
    STAGED: [],
    SAVED_UPLOADS: {},
    UPLOAD_ERRORS: [],
    UPLOAD_NOTES: [],
    UPLOADER_GEN: 0,
    PRE_UPLOADER_GEN: 0,
    FOOTPRINT_UPLOADER_GEN: 0,
    ANALYSIS_ID: None,
    RUN_ERRORS: {},
    OPACITY: 0.6,
    GRADE_SCALE: "copernicus-ems",
    SHOWN_SCENE: None,
    STAGED_PRE: [],
    PAIRS: {},
    COMPARE_MODE: "wipe",
    RESAMPLE: True,
    EVENT_TYPE: "other",
    ENGINE: "local",
    AREA_FIT_JOB: None,
    REPORT_TITLE: N_("Bomb / disaster damage assessment"),  # shown translated (pages/report.py)
    REPORT_EVENT: "",
    REPORT_AOI: "",
    REPORT_HANDLING: "",
    REPORT_ORG: "",
    REPORT_SUMMARY: "",
    REPORT_PHASE2: "",
    REPORT_PHASE3: "",
    REPORT_FILES: None,
    REPORT_AREA: None,
    REVIEW_APPLIED: {},
    REVIEW_SHOWN: {},
    REVIEW_FORM: {},
    REVIEW_CONFLICT: None,
}


def init() -> None:
    """Seed every key that is not set yet (mutable defaults are copied, never shared between sessions)."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value.copy() if isinstance(value, (list, dict)) else value


_SYNCED = "_widget_synced"  #: {widget key: the value bind() or keep() last put in both the widget and its state}
_UNSET = object()


def bind(widget_key: str, state_key: str, shown: Any = _UNSET, *, adopt: bool = True) -> None:
    """Give a widget that mirrors ``state_key`` its value before it is drawn, but only when the widget has none
    (first draw, or back from another page: Streamlit drops the state of widgets not drawn on the last run) or
    when code changed ``state_key`` since (e.g. a new case was made). Otherwise the widget keeps its own value:
    writing it on every run would push a stale value back into the browser while a rerun races with the analyst's
    typing, and a field could silently lose what was typed. ``shown``: what the widget shows of the state's value
    when it cannot show it as it is (e.g. clamped to a slider's range).

    A widget whose value differs from its state although code did not change the state holds an edit whose
    ``on_change`` (:func:`keep`) never ran: seen on a busy server, where a field committed with Enter just before a
    click showed the typed text while the state kept the old one (the report was refused for a missing handling
    line that was on screen). The edit is adopted into the state (``adopt=False`` for a widget whose callback does
    more than :func:`keep`)."""
    synced = st.session_state.setdefault(_SYNCED, {})
    value = get(state_key)
    if widget_key not in st.session_state or synced.get(widget_key, _UNSET) != value:
        st.session_state[widget_key] = value if shown is _UNSET else shown
    elif adopt and shown is _UNSET and st.session_state[widget_key] is not None \
            and st.session_state[widget_key] != value:
        value = st.session_state[state_key] = st.session_state[widget_key]
    synced[widget_key] = value


def keep(state_key: str, widget_key: str) -> None:
    """Widget ``on_change`` callback: copy a widget's value into its persistent key."""
    st.session_state[state_key] = st.session_state[widget_key]
    st.session_state.setdefault(_SYNCED, {})[widget_key] = st.session_state[widget_key]


def resync_all(keep_widget: str = "") -> None:
    """Have :func:`bind` give every bound widget (but ``keep_widget``) its state's value again when next drawn.

    For a language switch: a selectbox's browser-side value is its option's label, so a label that changes with
    the language (a translated case name, device or model choice) no longer matches any option, the box showed the
    old language's label and a choice was lost on the way back (found switching with the case "Command line")."""
    synced = st.session_state.setdefault(_SYNCED, {})
    for widget_key in [k for k in synced if k != keep_widget]:
        synced[widget_key] = _UNSET


def get(key: str) -> Any:
    """Value of a declared key (seeding it when a page runs before :func:`init`)."""
    if key not in st.session_state:
        value = DEFAULTS.get(key)
        st.session_state[key] = value.copy() if isinstance(value, (list, dict)) else value
    return st.session_state[key]


def put(key: str, value: Any) -> None:
    """Set a declared key."""
    if key not in DEFAULTS:
        raise KeyError(f"session-state key {key!r} is not declared in ui/state.py")
    st.session_state[key] = value
