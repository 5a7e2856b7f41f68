"""Files written whole or not at all, and a file's checksum.

``atomic_write_stream`` / ``atomic_write_bytes`` / ``atomic_write_text`` replace a file so that readers and crashes
(SIGKILL, power loss after the call returned) only ever see the old or the complete new file: temp file in the same
folder, fsync, rename. ``file_sha256`` is the checksum the workspace and the model files are identified by.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO

from core.errors import WorkspaceError
from core.i18n import _


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_stream(path: str | Path, stream: IO[bytes], chunk: int = 1 << 20) -> Path:
    """Copy ``stream`` (read to its end, ``chunk`` bytes at a time) to ``path`` so that readers and crashes only
    ever see the old or the complete new file; returns ``path``.

    Parent folders are created; an existing file's permissions are kept (new files: 0644). Raises
    :class:`WorkspaceError` when the folder is not writable or the disk is full.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:80]}.", suffix=".tmp", dir=path.parent)
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(stream, f, chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
        return path
    except OSError as exc:
        raise WorkspaceError(
            _("could not write {path}: {value}. Check that the folder is writable and the disk has free space, "
              "then try again.").format(path=path, value=exc.strerror or exc)) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """:func:`atomic_write_stream` of a bytes object."""
    atomic_write_stream(path, io.BytesIO(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8 by default, newlines written as given)."""
    atomic_write_bytes(path, text.encode(encoding))
