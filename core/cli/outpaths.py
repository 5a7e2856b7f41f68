"""What a ``--out`` path means: a folder behaves like a folder.

``case export NAME --out exports/`` once wrote a 47 MB file named ``exports`` (no extension) because a path that
did not exist yet was taken as the archive's file name. Now a path names a *folder* when it ends with a path
separator, is an existing folder, or has none of the file's suffixes; the folder is created and the file gets its
usual name inside it. A path with the file's suffix (``case.zip``, ``model.pt``) names the file itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import InputError
from core.i18n import _


def names_folder(raw: str | Path, suffixes: tuple[str, ...]) -> bool:
    """True when ``--out`` ``raw`` names a folder rather than a file with one of ``suffixes`` (module docstring)."""
    raw = str(raw)
    suffixes = tuple(s.lower() for s in suffixes)
    p = Path(raw)
    return (raw.endswith(("/", os.sep)) or (os.altsep is not None and raw.endswith(os.altsep)) or p.is_dir()
            or p.suffix.lower() not in suffixes)


def out_file(raw: str | Path, default_name: str, suffixes: tuple[str, ...]) -> Path:
    """The file a ``--out`` names. ``raw`` is a file path (with one of ``suffixes``, e.g. ``(".zip",)``) or a
    folder (see the module docstring), created when missing, in which the file is called ``default_name``.
    Raises :class:`~core.errors.InputError` when a part of the path is an existing file."""
    text = str(raw)
    if not text.strip():
        raise InputError(_("--out is empty: give a folder (ending in /) or a file name"))
    if names_folder(text, suffixes):
        return out_dir(text) / default_name
    path = Path(text)
    out_dir(path.parent)
    return path


def out_dir(raw: str | Path) -> Path:
    """The folder a ``--out`` names, created (with its parents) when missing. Raises
    :class:`~core.errors.InputError` when it, or a folder above it, is an existing file."""
    path = Path(raw)
    if path.exists() and not path.is_dir():
        raise InputError(_("--out {path} is an existing file, not a folder; give a folder path (it is created when "
                           "missing) or remove that file").format(path=raw))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InputError(_("cannot create the folder {path}: a part of that path is a file; give another "
                           "folder").format(path=raw)) from exc
    except OSError as exc:
        raise InputError(_("cannot create the folder {path} ({reason}); check the path and its "
                           "permissions").format(path=raw, reason=exc.strerror or exc)) from exc
    return path
