"""Analyze: bring images in (upload or server path), run the detector, look at the stored results.

A thin page: the inputs and their run are :mod:`ui.analyze_inputs` (with :mod:`ui.analyze_run`), the results
:mod:`ui.analyze_results`.
"""

from __future__ import annotations

import streamlit as st

from core.i18n import _
from ui import analyze_inputs, analyze_results, shell

ctx = shell.context()
st.title(_("Analyze"))
if ctx.case_id is None:
    st.info(_("Create or choose a case in the sidebar first."), icon=":material/info:")
    st.stop()
if ctx.can_work:
    analyze_inputs.section(ctx)
else:
    st.info(_("You have a viewer account: you see the results of your cases and download their reports; "
              "analysing needs an analyst account."), icon=":material/visibility:")
st.divider()
analyze_results.section(ctx)
