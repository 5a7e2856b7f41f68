"""Files users upload for a background job (training images, evaluation sets, an xBD zip, a checkpoint), staged in
the workspace: a fresh folder per job under ``files/uploads/``, each file streamed to disk under a safe, unique
name (an upload never sits in memory twice), zip archives unpacked there safely and removed.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from core.atomic_files import atomic_write_bytes, atomic_write_stream
from core.file_names import safe_filename, unique_name
from core.zip_extract import safe_extract_zip

if TYPE_CHECKING:
    from core.store.workspace import Workspace


def new_upload_dir(ws: Workspace, kind: str) -> Path:
    """A fresh folder ``files/uploads/<kind>-<time>-<token>`` in the workspace for a job's uploaded inputs."""
    d = ws.root / "files" / "uploads" / (f"{safe_filename(kind, default='job')}-"
                                         f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}")
    d.mkdir(parents=True, exist_ok=False)
    return d


def write_upload(target: Path, data: bytes | IO[bytes]) -> None:
    """Write bytes, or copy a stream from its start in chunks (an upload never sits in memory twice), to ``target``
    (crash-safe: readers see the old or the whole new file)."""
    if isinstance(data, bytes):
        atomic_write_bytes(target, data)
    else:
        if hasattr(data, "seek"):
            data.seek(0)
        atomic_write_stream(target, data)


def stage_uploads(files: Iterable[tuple[str, bytes | IO[bytes]]], dest: str | Path) -> list[Path]:
    """Write uploaded ``(name, bytes or stream)`` files into ``dest`` under safe, unique names; zip archives are
    unpacked into a folder named after them with :func:`core.zip_extract.safe_extract_zip` (zip-slip and zip bombs
    refused) and removed. Returns the files written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    taken: set[str] = {p.name for p in dest.iterdir()}
    out: list[Path] = []
    for name, data in files:
        safe = unique_name(safe_filename(Path(str(name)).name, default="upload"), taken)
        taken.add(safe)
        target = dest / safe
        write_upload(target, data)
        if target.suffix.lower() == ".zip":
            taken.add(target.stem)  # the folder it unpacks into
            try:
                out += safe_extract_zip(target, dest / target.stem)
            finally:
                target.unlink(missing_ok=True)
        else:
            out.append(target)
    return out


def save_job_uploads(ws: Workspace, kind: str, uploads: list[Any]) -> Path | None:
    """Stage uploaded files (objects with ``.name`` that read like a binary file, e.g. Streamlit's uploads) in a
    fresh workspace folder for a job (:func:`new_upload_dir`, :func:`stage_uploads`). Returns the folder, or None
    when there is nothing to write; on an error the folder is removed and the error raised."""
    if not uploads:
        return None
    dest = new_upload_dir(ws, kind)
    try:
        stage_uploads([(str(up.name), up) for up in uploads], dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest
