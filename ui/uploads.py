"""Uploads of the Analyze page: each file streamed once into the case's upload folder, xBD label files kept
beside their images, what went wrong queued as messages for the page."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from core.atomic_files import atomic_write_stream
from core.errors import CoreError, WorkspaceError
from core.file_names import clean_name, safe_filename, unique_name
from core.i18n import _
from core.imagery.xbd import load_xbd_labels
from core.store import Workspace
from ui import state as S
from ui.shell import Context

log = logging.getLogger(__name__)


def save_upload(ws: Workspace, case_id: int, upload: IO[bytes], name: str) -> Path:
    """Write an uploaded file into the case's upload folder in 1 MiB chunks (temporary name, then renamed) and
    return its path; the name is made safe and unique in the folder."""
    folder = ws.uploads_dir(case_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / unique_name(safe_filename(name, default="upload"), [p.name for p in folder.iterdir()])
    except OSError as exc:
        raise WorkspaceError(_("could not save the upload {name!r} into {folder} ({error}); check free disk space "
                               "and the workspace folder's permissions.").format(
                                   name=name, folder=folder, error=exc.strerror or exc)) from exc
    upload.seek(0)
    return atomic_write_stream(dest, upload)


_HANDING = "\0handing:"  #: a saved upload not yet handed to the page (its hand-over was interrupted)


def save_uploads(ctx: Context, files: list[Any], on_saved: Callable[[str, Path], None],
                 types: list[str] | None = None) -> None:
    """Write each new upload once (by file id) to the workspace and hand ``(name, path)`` to ``on_saved``; an
    upload that cannot be saved, or whose extension is not in ``types``, is queued as an error message for the
    page, and the others still go through (give the uploader no ``type=``: Streamlit's own check refuses the
    whole batch, with an exception in place of the page, for one name with a NUL byte or another extension).
    Names are cleaned (:func:`core.file_names.clean_name`: no control,
    bidi-override or invisible characters) before they are shown or stored.

    Every session-state access is a point where Streamlit may stop the run for the next one (another upload, a
    click): an upload counts as done only once ``on_saved`` has taken it, and one written but not handed over
    (the run stopped in between) is handed over by the next run without being written again. (Marking it done
    before the hand-over lost uploads on a busy server: saved to disk, never staged.)"""
    saved, errors = S.get(S.SAVED_UPLOADS), S.get(S.UPLOAD_ERRORS)
    for f in files:
        done = saved.get(f.file_id)
        if done is not None and not done.startswith(_HANDING):
            continue
        name = clean_name(f.name, default="upload")
        log.info("upload %r (file id %s) received", name, f.file_id)
        if done is not None:
            path = Path(done[len(_HANDING):])
            log.info("upload %r was written to %s by a run stopped before handing it over", name, path)
        else:
            ext = name.rpartition(".")[2].lower() if "." in name else ""
            if types is not None and ext not in types:
                errors.append(_("{name}: not a file this uploader takes ({types}); it was left out, the other "
                                "files go on.").format(name=name, types=", ".join(types)))
                saved[f.file_id] = ""
                continue
            try:
                path = save_upload(ctx.ws, ctx.case_id, f, name)
            except CoreError as exc:
                errors.append(f"{name}: {exc}")
                continue
            saved[f.file_id] = _HANDING + str(path)
            log.info("upload %r written to %s", name, path)
        if path.suffix.lower() == ".json":
            path = keep_label(name, path)
        else:
            on_saved(name, path)
        saved[f.file_id] = str(path)
        log.info("upload %r handed over", name)


def keep_label(name: str, path: Path) -> Path:
    """An uploaded .json: kept beside the images when it is an xBD label file (the image ``<stem>.png`` of the
    same name then gets its georeference and capture date from it), else removed with a message. Returns where
    it is kept (``path`` when removed)."""
    errors, notes = S.get(S.UPLOAD_ERRORS), S.get(S.UPLOAD_NOTES)  # before any change on disk (see save_uploads)
    try:
        load_xbd_labels(path)
    except CoreError as exc:
        path.unlink(missing_ok=True)
        errors.append(_("{name}: only xBD label files (.json) can be uploaded with the images; "
                        "{error}").format(name=name, error=exc))
        return path
    wanted = path.with_name(safe_filename(name, default="labels.json"))
    if wanted != path:  # a newer copy of a label replaces the older one: its image finds it by name
        os.replace(path, wanted)
    notes.append(_("xBD labels {name} kept: the image {stem}.png gets its location, date and "
                   "building outlines from them.").format(name=wanted.name, stem=wanted.stem))
    return wanted
