"""Atomic output files and text hygiene shared by every report writer."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.errors import ReportError

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_output_path(path: str | Path) -> Path:
    """Return ``path`` as a Path after checking that its folder exists and it is not a folder itself."""
    try:
        p = Path(path)
    except TypeError as err:
        raise ReportError(f"report output path must be a file path, got {type(path).__name__}") from err
    if p.is_dir():
        raise ReportError(f"report output path {p} is a folder; give a file name such as {p / 'report.pdf'}")
    if not p.parent.is_dir():
        raise ReportError(f"folder {p.parent} does not exist; create it or choose another output path")
    return p


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only when the block succeeds.

    Readers never see a half-written report: on any exception the temporary file is removed and the old file (if
    any) stays as it was.
    """
    final = check_output_path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name[:60]}.", suffix=".tmp", dir=final.parent)
    except OSError as err:
        raise ReportError(f"cannot write to {final.parent}: {err.strerror}; choose a writable folder") from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as err:
        raise ReportError(f"cannot write {final}: {err.strerror or err}; check free space and permissions") from err
    finally:
        if tmp.exists():
            tmp.unlink()


def clean_text(value: object, max_len: int | None = None) -> str:
    """Text safe to print: ``None`` -> "", control characters removed, tabs -> spaces, optional length cap."""
    if value is None:
        return ""
    s = _CONTROL.sub("", str(value).replace("\t", " ").replace("\r\n", "\n").replace("\r", "\n"))
    if max_len is not None and len(s) > max_len:
        s = s[: max(0, max_len - 1)].rstrip() + "…"
    return s
