"""Starting a Models-page background job from a form: stage, start, clean up on a refusal, rerun to show it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from core.errors import CoreError
from core.i18n import get_lang, use
from ui.shell import show_error


def start_job(what: str, start: Callable[[list[Path]], str | None]) -> None:
    """Run a form's ``start(made)``: it checks and stages the inputs (each folder it creates goes into ``made``),
    starts a background job and returns the message to show, or None when it already said what is missing. A
    :class:`CoreError` removes the staged folders and is shown; a started job reruns the page to show its card."""
    made: list[Path] = []
    try:
        with use(get_lang()):  # the job's thread writes its progress in the language of whoever started it
            message = start(made)
    except CoreError as exc:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
        show_error(exc, what)
        return
    if message:
        st.success(message)
        st.rerun()
