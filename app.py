"""Streamlit entry point of the BDA workbench: page setup, the page router, the shared sidebar.

Run with ``streamlit run app.py``. Environment: ``BDA_WORKSPACE`` (workspace folder), ``BDA_MODEL`` (checkpoint
used as the default model instead of ``assets/models/patchcore-vgg16.pt``), ``BDA_SERVER_PATHS`` (folders server-side
inputs must lie in), ``BDA_LOG_LEVEL`` (the app's own log lines: :mod:`ui.server_log`). With user accounts in the
workspace (``python -m core users add``) every page needs a login; without, the app serves only on loopback (see
:mod:`ui.auth`).

The menu is app.py's own: Streamlit's automatic one is off (``client.showSidebarNavigation`` in
``.streamlit/config.toml``), since on a fresh server it would first list every file of ``pages/``. The workspace is
opened first and :func:`ui.auth.gate` decides (login form, or the loopback rule): while it blocks, the router's
pages at every address draw the login form (or the refusal) instead of the page, so the form keeps one widget
identity from the session's first run and its first "Log in" click counts; no menu, no sidebar. Otherwise the menu
and the sidebar are drawn, then the page, all before anything heavy (torch) is needed: the model loads in the
background (:mod:`ui.model_cache`) and, on the server's first run, the page draws while it loads. After the page,
:func:`ui.sidebar.finish_model_load` waits for it behind the sidebar's "Loading the model…" spinner and draws the
sidebar's model part; a page that needs the model earlier waits for it there, behind the same spinner. Those
waits give way to the analyst's next click or upload, so nothing done while the model loads is lost (a run blocked
in the load used to merge two quick interactions and drop an upload).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.i18n import N_, _
from ui import i18n, server_log, upload_answers

HERE = Path(__file__).resolve().parent
#: (file, title, icon) of every page, in menu order; the first is the default page.
PAGES = [
    ("pages/analyze.py", N_("Analyze"), ":material/radar:"),
    ("pages/map.py", N_("Map"), ":material/map:"),
    ("pages/report.py", N_("Report"), ":material/summarize:"),
    ("pages/models.py", N_("Models"), ":material/model_training:"),
    ("pages/users.py", N_("Users"), ":material/manage_accounts:"),  # admins only (or single-user mode)
]

server_log.configure()  # the app's own log lines at $BDA_LOG_LEVEL
upload_answers.keep_upload_answers()  # an upload chosen as a rerun starts is not lost (see the module)
i18n.install()  # _() follows the session's language (ui.state.LANG)
st.set_page_config(page_title=_("BDA workbench"), page_icon="🛰️", layout="wide")
i18n.ensure_font()  # the Hangul web font under static/fonts/ (see .streamlit/config.toml)

from core.errors import CoreError  # noqa: E402 - after the page setup: see the module notes
from ui import auth, shell, sidebar  # noqa: E402

try:
    ws = shell.workspace()
except CoreError as exc:
    shell.show_error(exc, _("Workspace"))
    st.stop()
i18n.init_session(ws, None)  # the login form's language: the workspace's single-analyst choice or $BDA_LANG
user, blocker = auth.gate(ws)  # the login form (users exist) or the loopback rule (no users)
i18n.init_session(ws, user)  # a login loads that user's language
i18n.translate_streamlit_words()  # Streamlit's own uploader words in the session's language
pages = [(f, _(t), i) for f, t, i in PAGES if (HERE / f).is_file()]
if blocker is not None:  # drawn as the page of every address: see the module notes
    st.navigation(auth.blocked_pages(blocker, pages), position="hidden").run()
    st.stop()
if user is not None and not user.is_admin:  # accounts are an admin's business
    pages = [p for p in pages if p[1] != "Users"]
menu = [st.Page(f, title=t, icon=i, default=k == 0) for k, (f, t, i) in enumerate(pages)]
page = st.navigation(menu, position="hidden")
with st.sidebar:
    for entry in menu:
        st.page_link(entry)

sidebar.draw(user)
page.run()
sidebar.finish_model_load()  # the model's first load in this server, when the page did not need it
