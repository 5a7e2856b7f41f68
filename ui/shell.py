"""What every page shares: the workspace, error display, the sidebar's choices as a :class:`Context` (the model
fetched from :mod:`ui.model_cache` on first use) and the analysis picker. The sidebar itself is :mod:`ui.sidebar`.

Environment variables:

* ``BDA_WORKSPACE``: workspace folder (see :func:`core.store.default_root`).
* ``BDA_MODEL``: checkpoint used as the default model (see :mod:`ui.model_cache`).
* ``BDA_SERVER_PATHS``: folders that server-side paths typed on the pages must lie in (rules and checks in
  :mod:`core.server_files.typed_paths`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from core.errors import CoreError
from core.i18n import _
from core.store import Workspace, default_root
from core.store.users import User
from ui import state as S
from ui.markdown_text import plain
from ui.model_cache import get_detector

if TYPE_CHECKING:  # core.detection.detector imports torch: imported by the model's loading thread
    from core.detection.detector import Detector

_WORKSPACES: dict[Path, Workspace] = {}
_WS_LOCK = threading.Lock()


# -- workspace ---------------------------------------------------------------------------------------------------
def workspace() -> Workspace:
    """The workspace of this server (``$BDA_WORKSPACE`` or the default folder), opened once per folder.

    A :class:`Workspace` is a handle on a folder and a database (one connection per thread), so all sessions share
    one; opening it runs migrations and crash recovery, which need not happen on every rerun.
    """
    root = default_root().expanduser().absolute()
    with _WS_LOCK:
        ws = _WORKSPACES.get(root)
        if ws is None:
            ws = Workspace(root)
            _WORKSPACES[root] = ws
        return ws


# -- errors ------------------------------------------------------------------------------------------------------
def show_error(exc: BaseException, what: str = "") -> None:
    """Show a user-caused error (:class:`CoreError`) as ``st.error`` with its message, never a traceback."""
    msg = plain(str(exc) or type(exc).__name__)  # messages name files: as text, never markdown
    st.error(f"{what}: {msg}" if what else msg, icon=":material/error:")


# -- the sidebar's choices ---------------------------------------------------------------------------------------
@dataclass
class Context:
    """What the sidebar chose, for a page to work with. The model (shared by all sessions) is fetched from
    :mod:`ui.model_cache` on first use of :attr:`detector`, :attr:`model_error` or :attr:`threshold`, waiting behind
    a spinner there while it is still loading."""

    ws: Workspace
    case_id: int | None
    model_key: str
    device: str
    analyst: str  #: the logged-in user's name, else the name typed in the sidebar (no accounts)
    user: User | None = None  #: the logged-in user; None without accounts
    _model: tuple[Detector | None, str | None] | None = field(default=None, init=False, repr=False)

    def _loaded(self) -> tuple[Detector | None, str | None]:
        if self._model is None:
            try:
                self._model = (get_detector(self.model_key, self.device), None)
            except CoreError as exc:
                self._model = (None, str(exc))
        return self._model

    @property
    def detector(self) -> Detector | None:
        """The chosen model, or None when it cannot be loaded (see :attr:`model_error`)."""
        return self._loaded()[0]

    @property
    def model_error(self) -> str | None:
        """Why the chosen model cannot be loaded (None when it can)."""
        return self._loaded()[1]

    @property
    def threshold(self) -> float | None:
        """The sidebar's threshold (the model's calibrated default until the analyst moves it); None without a
        usable model."""
        seed_threshold(self.detector)
        thr = S.get(S.THRESHOLD)
        return None if thr is None else float(thr)

    @property
    def can_work(self) -> bool:
        """May analyse, review and import: without accounts, or as an admin or analyst (viewers only read)."""
        return self.user is None or self.user.can_work

    @property
    def is_admin(self) -> bool:
        """May register and train models and manage case members: without accounts, or as an admin."""
        return self.user is None or self.user.is_admin


def seed_threshold(det: Detector | None) -> None:
    """Set the session's threshold to the model's calibrated default when it is unset or the model changed."""
    if det is None:
        return
    model_id = f"{det.path}|{det.sha256}"
    if S.get(S.THRESHOLD_MODEL) != model_id or S.get(S.THRESHOLD) is None:
        S.put(S.THRESHOLD, round(float(det.calibration.threshold), 2))
        S.put(S.THRESHOLD_MODEL, model_id)


def context() -> Context:
    """The sidebar's current choices (the model comes from the shared cache; nothing is reloaded).

    Because the page files live in ``pages/``, Streamlit's legacy multipage mode runs a page file on its own
    when it is the very first request a fresh server gets (``/report``): ``st.navigation`` in ``app.py`` has not
    run yet. Such a run is sent through ``app.py`` first, which sets up the navigation and the sidebar.
    """
    S.init()
    if not S.get(S.SHELL):
        st.switch_page("app.py")
    user = User(**S.get(S.USER)) if S.get(S.USER) else None
    return Context(ws=workspace(), case_id=S.get(S.CASE_ID), model_key=S.get(S.MODEL_PATH),
                   device=S.get(S.DEVICE), analyst=user.name if user else str(S.get(S.ANALYST) or "").strip(),
                   user=user)


# -- analyses ----------------------------------------------------------------------------------------------------
def analysis_label(a: dict[str, Any]) -> str:
    """An analysis's label in the pickers: id, start time and model, which never change (see
    :func:`ui.sidebar.case_label`); progress, findings and status are shown beside it (:func:`analysis_caption`)."""
    return f"#{a['id']} · {a['created_at'][:16].replace('T', ' ')} UTC · {a['model'].get('name', '?')}"


def analysis_caption(a: dict[str, Any]) -> str:
    """What changes about an analysis: images done, findings, status."""
    return _("{done}/{total} images · {findings} findings · {status}").format(
        done=a["n_done"], total=a["n_inputs"], findings=a["n_findings"], status=_(str(a["status"])))


def pick_analysis(ctx: Context, widget_key: str, label: str = "") -> dict[str, Any] | None:
    """Selectbox of the case's analyses (newest first), kept in sync with the shared ``ANALYSIS_ID``; returns the
    chosen analysis dict or None when the case has none."""
    if ctx.case_id is None:
        return None
    analyses = ctx.ws.list_analyses(ctx.case_id)
    if not analyses:
        return None
    by_id = {a["id"]: a for a in analyses}
    if S.get(S.ANALYSIS_ID) not in by_id:
        S.put(S.ANALYSIS_ID, analyses[0]["id"])
    S.bind(widget_key, S.ANALYSIS_ID)

    # what changes about the analysis goes into the help, not into the label (see case_label) nor into an element
    # of its own: with a caption here, test_e2e_hostile's click on a finding of the Map page opened no popup (the
    # exact cause was not pinned down; without the extra element it passes)
    st.selectbox(label or _("Analysis"), list(by_id), format_func=lambda aid: analysis_label(by_id[aid]),
                 key=widget_key,
                 on_change=S.keep, args=(S.ANALYSIS_ID, widget_key), help=analysis_caption(by_id[S.get(S.ANALYSIS_ID)]))
    return by_id[S.get(S.ANALYSIS_ID)]
