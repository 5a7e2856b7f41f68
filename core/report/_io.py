"""Atomic output files and text hygiene shared by every report writer."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.errors import ReportError
from core.i18n import _

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_output_path(path: str | Path) -> Path:
    """Return ``path`` as a Path after checking that its folder exists and it is not a folder itself."""
    try:
        p = Path(path)
    except TypeError as err:
        raise ReportError(_("report output path must be "
                            "a file path, got {name}").format(name=type(path).__name__)) from err
    if p.is_dir():
        raise ReportError(_("report output path {p} is a folder; give a file name such as {value}").format(
                              p=p, value=p / 'report.pdf'))
    if not p.parent.is_dir():
        raise ReportError(_("folder {parent} does not exist; create it or choose another output path").format(
                              parent=p.parent))
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
        raise ReportError(_("cannot write to {parent}: {strerror}; choose a writable folder").format(
                              parent=final.parent, strerror=err.strerror)) from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as err:
        raise ReportError(_("cannot write {final}: {value}; check free space and permissions").format(
                              final=final, value=err.strerror or err)) from err
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
