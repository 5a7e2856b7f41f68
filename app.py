"""Streamlit entry point of the BDA workbench: page setup, the shared sidebar, and the page router.

Run with ``streamlit run app.py``. Environment: ``BDA_WORKSPACE`` (workspace folder), ``BDA_MODEL`` (checkpoint
used as the default model instead of ``assets/models/default.pt``), ``BDA_SERVER_PATHS`` (folders server-side
inputs must lie in). With user accounts in the workspace (``python -m core users add``) every page needs a login;
without, the app serves only on loopback (see :mod:`ui.auth`).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.errors import CoreError
from ui import auth, shell

HERE = Path(__file__).resolve().parent
#: (file, title, icon) of every page, in menu order; the first is the default page.
PAGES = [
    ("pages/analyze.py", "Analyze", ":material/radar:"),
    ("pages/map.py", "Map", ":material/map:"),
    ("pages/report.py", "Report", ":material/summarize:"),
    ("pages/models.py", "Models", ":material/model_training:"),
]

st.set_page_config(page_title="BDA workbench", page_icon="🛰️", layout="wide")
try:
    ws = shell.workspace()
except CoreError as exc:
    shell.show_error(exc, "Workspace")
    st.stop()
pages = [p for p in PAGES if (HERE / p[0]).is_file()]
user, blocker = auth.gate(ws)  # the login form (users exist) or the loopback rule (no users)
if blocker is not None:
    st.navigation(auth.blocked_pages(blocker, pages), position="hidden").run()
    st.stop()
page = st.navigation([st.Page(f, title=t, icon=i, default=k == 0) for k, (f, t, i) in enumerate(pages)])
shell.sidebar(user)
page.run()
