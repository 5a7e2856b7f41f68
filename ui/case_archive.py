"""The sidebar's case archive: export the case in use as one .zip, import a .zip as a new case.

The archive (``Workspace.export_case``) carries the case's analyses, findings, reviews with their audit trail,
heatmaps, reports and the uploaded input images, so a colleague's workbench shows, maps and reports it as here.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import streamlit as st

from core.atomic_files import atomic_write_stream
from core.errors import CoreError
from core.i18n import N_, _
from core.store import Workspace
from core.store.analyses import case_display_name
from core.store.users import User
from ui import i18n
from ui import state as S
from ui.markdown_text import plain

#: Choice of input images an export carries -> ``Workspace.export_case(inputs=...)``.
INPUT_CHOICES = {
    "workspace": N_("uploaded images (recommended)"),
    "all": N_("uploaded and server-side images (may be large)"),
    "none": N_("no images (results, reviews and reports only)"),
}


def _download(path: Path):
    """Deferred download data: the archive is read only when the button is clicked."""
    return lambda: path.read_bytes()


def _export(ws: Workspace, case_id: int, user: User | None) -> None:
    """Choose what to carry, write the archive into the workspace's scratch folder, offer it for download."""
    st.session_state.setdefault(S.W_ARCHIVE_INPUTS, "workspace")
    inputs = st.radio(_("Images to include"), list(INPUT_CHOICES),
                      format_func=i18n.fixed(INPUT_CHOICES, lambda k: _(INPUT_CHOICES[k])), key=S.W_ARCHIVE_INPUTS)
    if st.button(_("Prepare the archive"), icon=":material/archive:", key="w_export_case"):
        try:
            with st.spinner(_("Writing the case archive…")):
                folder = ws.root / "tmp" / f"export-{uuid.uuid4().hex[:12]}"  # swept after a day
                folder.mkdir(parents=True)
                path = ws.export_case(case_id, folder, inputs=inputs, user=user.name if user else None)
            S.put(S.CASE_ARCHIVE, {"case_id": case_id, "path": str(path)})
        except (CoreError, OSError) as exc:
            st.error(_("The case could not be exported: {error}").format(error=plain(exc)), icon=":material/error:")
    ready: dict[str, Any] | None = S.get(S.CASE_ARCHIVE)
    if ready and ready["case_id"] == case_id and Path(ready["path"]).is_file():
        path = Path(ready["path"])
        st.download_button(_("Download {name} ({size:.1f} MB)").format(name=path.name,
                                                                       size=path.stat().st_size / 1e6),
                           _download(path),
                           file_name=path.name, mime="application/zip", icon=":material/download:",
                           on_click="ignore", key="w_download_case")


def _import(ws: Workspace, user: User | None) -> None:
    """Take an uploaded archive, import it as a new case and switch to it."""
    up = st.file_uploader(_("Import a case archive (.zip)"), type=["zip"], key=S.archive_uploader_key(),
                          help=_("A .zip made by 'Prepare the archive' or `python -m core case export`."))
    if up is None:
        return
    tmp = ws.root / "tmp" / f"case-upload-{uuid.uuid4().hex[:12]}.zip"
    try:
        with st.spinner(_("Importing {name}…").format(name=plain(up.name))):
            up.seek(0)
            atomic_write_stream(tmp, up)
            cid = ws.import_case(tmp, user=user.name if user else None)
            if user is not None and not user.is_admin:  # the importer may open what they imported
                ws.grant_case(cid, user.name)
        case = ws.get_case(cid)
        S.put(S.CASE_ID, cid)
        S.put(S.ANALYSIS_ID, None)
        S.put(S.ARCHIVE_NOTE, _("Imported {file} as case #{id} “{name}” with {n} analyses.").format(
            file=up.name, id=cid, name=case_display_name(case["name"]), n=case["n_analyses"]))
    except CoreError as exc:
        S.put(S.ARCHIVE_NOTE, "error:" + _("{file} could not be imported: {error}").format(file=up.name, error=exc))
    finally:
        tmp.unlink(missing_ok=True)
    S.empty_uploader(S.ARCHIVE_GEN)  # a fresh uploader: Streamlit drops the uploaded bytes
    st.rerun()


def archive_note() -> None:
    """The message of the last import, shown once, inside a container drawn on every run: the note's run and
    the next one keep every widget below it at the same position (see :func:`archive_popover`)."""
    box = st.container()
    note = S.get(S.ARCHIVE_NOTE)
    if note:
        if note.startswith("error:"):
            box.error(plain(note[len("error:"):]), icon=":material/error:")
        else:
            box.success(plain(note), icon=":material/unarchive:")
        S.put(S.ARCHIVE_NOTE, None)


def archive_popover(ws: Workspace, case_id: int | None, user: User | None = None) -> None:
    """The sidebar's "Export / import" popover.

    Export and import each draw into a container of their own: what the export shows varies (a download button
    once an archive is ready, nothing without a case), and were the import uploader drawn after it directly, it
    would sit at another position from one run to the next; the browser then shows the old copy beside the new
    one until the next run ends (two "Import a case archive" uploaders on a busy server)."""
    with st.popover(_("Export / import case"), icon=":material/archive:", width="stretch"):
        export_box, import_box = st.container(), st.container()
        if case_id is not None:
            with export_box:
                st.markdown(_("**Export this case** with its analyses, findings, reviews, heatmaps and reports."))
                _export(ws, case_id, user)
                st.divider()
        with import_box:
            _import(ws, user)
