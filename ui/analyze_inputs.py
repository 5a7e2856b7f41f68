"""Analyze page, the inputs: uploads, server paths, pre-event images, footprints, the staged list and its run button.

What is staged waits in the session (:data:`ui.state.STAGED` and friends) until the analyst runs it; the run itself
is :mod:`ui.analyze_run`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import streamlit as st

from core.errors import CoreError
from core.file_names import clean_name, unique_name
from core.i18n import N_, _, ngettext
from core.server_files.paths import check_server_path
from ui import analyze_run, area_fit, compare, footprints, i18n, shell, uploads
from ui import state as S
from ui.markdown_text import plain

log = logging.getLogger(__name__)

#: Columns of the staged list (English keys; shown translated with :func:`ui.i18n.column_labels`).
STAGED_COLUMNS = (N_("image"), N_("from"), N_("stored at"))
UPLOAD_TYPES = ["jpg", "jpeg", "png", "tif", "tiff", "json"]  #: json: xBD label files beside their images


def stage(name: str, path: Path, origin: str) -> None:
    """Add an input to the list waiting for the next run (names stay unique: they name the analysis inputs)."""
    staged = S.get(S.STAGED)
    name = clean_name(name, default="image")
    staged.append({"name": unique_name(name, [s["name"] for s in staged]), "path": str(path), "origin": origin})
    log.info("staged %r (%s): %d input(s) waiting", name, origin, len(staged))


def take_uploads(ctx: shell.Context, files: list[Any]) -> None:
    """Write new uploads to the workspace and stage them; the uploader is replaced on the next run, which
    releases the uploads' memory."""
    uploads.save_uploads(ctx, files, lambda name, path: stage(name, path, "upload"), types=UPLOAD_TYPES)
    S.empty_uploader(S.UPLOADER_GEN)


def run_staged(ctx: shell.Context) -> bool:
    """Analyse the staged inputs; True when a new analysis was made (it becomes the one shown)."""
    try:
        items = compare.with_pre_paths(list(S.get(S.STAGED)), S.get(S.STAGED_PRE))
        aid = analyze_run.start_run(ctx, items, S.get(S.GRADE_SCALE))
    except CoreError as exc:
        shell.show_error(exc, _("Analysis"))
        return False
    clear_staged()
    S.put(S.ANALYSIS_ID, aid)
    return True


def clear_staged() -> None:
    """Empty the staged post- and pre-event images and the hand-made pairings."""
    S.put(S.STAGED, [])
    S.put(S.STAGED_PRE, [])
    S.put(S.PAIRS, {})
    S.put(S.STAGED_FOOTPRINTS, [])


def section(ctx: shell.Context) -> None:
    """Upload / server path / staged list / run."""
    st.subheader(_("Images"))
    # no type=: each file's type is checked on its own (uploads.save_uploads), one bad name never loses the batch
    files = st.file_uploader(_("Upload images (JPEG, PNG, TIFF, GeoTIFF; xBD label .json with its .png)"),
                             accept_multiple_files=True, key=S.uploader_key(),
                             help=_("Each file is written to the workspace as soon as it arrives."))
    pre_files = compare.pre_uploader(ctx)
    S.bind(S.W_AUTO_RUN, S.AUTO_RUN)
    st.toggle(_("Analyse uploads right away"), key=S.W_AUTO_RUN, on_change=S.keep, args=(S.AUTO_RUN, S.W_AUTO_RUN),
              help=_("Run the sidebar's model on new uploads as soon as they are saved."))
    if pre_files:
        compare.take_pre_uploads(ctx, pre_files)
        S.empty_uploader(S.PRE_UPLOADER_GEN)
        if not files:
            st.rerun()
    if files:
        log.info("image uploader %s holds %d file(s)", S.uploader_key(), len(files))
        take_uploads(ctx, files)
        if S.get(S.AUTO_RUN) and ctx.detector is not None and S.get(S.STAGED):
            run_staged(ctx)
        st.rerun()  # a fresh, empty uploader: Streamlit drops the uploaded bytes
    notes = st.container()  # drawn on every run: the messages (shown once) move no widget below them
    for msg in S.get(S.UPLOAD_ERRORS):
        notes.error(plain(msg))  # they name the uploaded files
    for msg in S.get(S.UPLOAD_NOTES):
        notes.info(plain(msg), icon=":material/label:")
    S.put(S.UPLOAD_ERRORS, [])
    S.put(S.UPLOAD_NOTES, [])
    with st.form("server_path_form", clear_on_submit=True, border=False):
        c1, c2, c3 = st.columns([5, 2, 1], vertical_alignment="bottom")
        text = c1.text_input(_("…or a file on the server (for rasters too large to upload)"), key=S.W_SERVER_PATH,
                             placeholder="/data/orthomosaic/tile_01.tif")
        role = c2.selectbox(_("as"), ["post-event", "pre-event"], key=S.W_SERVER_ROLE,
                            format_func=i18n.fixed(["post-event", "pre-event"], _),
                            help=_("pre-event: a reference the post-event images are compared with"))
        if c3.form_submit_button(_("Add path")):
            try:
                path = check_server_path(text)
                (compare.stage_pre if role == "pre-event" else stage)(path.name, path, "server path")
            except CoreError as exc:
                shell.show_error(exc)
    footprints.footprints_section(ctx)
    area_fit.section(ctx)  # fit a normal model to the staged pre-event images of the area
    staged = S.get(S.STAGED)
    if not staged:
        compare.pairing_section(staged)  # pre-event images waiting for their post-event images
        return
    import pandas as pd  # lazy: the page's first draw (nothing staged) needs no pandas

    rows = []
    for s in staged:
        origin = s["origin"]  # "upload" or "server path", shown translated
        rows.append(dict(zip(STAGED_COLUMNS, (s["name"], _(origin), s["path"]), strict=True)))
    area = st.empty()  # the staged list; replaced by the progress bars while the batch runs
    with area.container():
        st.dataframe(pd.DataFrame(rows, columns=list(STAGED_COLUMNS)), hide_index=True, width="stretch",
                     column_config=i18n.column_labels(STAGED_COLUMNS))
        compare.pairing_section(staged)
        c1, c2, c3 = st.columns([2, 2, 3], vertical_alignment="bottom")
        analyze_run.options(ctx, staged, c3)
        if c2.button(_("Clear list"), icon=":material/clear_all:"):
            clear_staged()
            st.rerun()
        if ctx.detector is None:
            st.warning(_("No usable model: {error}. Choose another model in the sidebar.").format(
                error=plain(ctx.model_error)))
            return
        label = ngettext("Analyse {n} image", "Analyse {n} images", len(staged)).format(n=len(staged))
        run = c1.button(label, type="primary", icon=":material/play_arrow:", key="run_analysis")
    if run:
        with area.container():
            done = run_staged(ctx)
        if done:
            # draw the results from the stored analysis in a fresh run: drawn below this run's progress bars, they
            # would sit at other element positions than in every later run, and Streamlit would then show a stale
            # copy of each widget beside the new one while the next rerun is under way
            st.rerun()

