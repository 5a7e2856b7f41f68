"""File helpers of the workspace: where it lives, crash-safe writes, portable stored paths.

``atomic_write_bytes`` / ``atomic_write_text`` live in :mod:`core.atomic_files` (usable without a workspace) and are
re-exported here and from :mod:`core.store`.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.atomic_files import atomic_write_bytes, atomic_write_text, file_sha256

__all__ = ["ANALYSIS_PREFIX", "ENV_WORKSPACE", "ROOT_PREFIX", "atomic_write_bytes", "atomic_write_text",
           "decode_path", "default_root", "encode_path", "file_sha256"]

#: Environment variable naming the workspace folder when ``Workspace(root=None)``.
ENV_WORKSPACE = "BDA_WORKSPACE"

#: Stored-path prefixes: paths inside an analysis folder / the workspace are kept relative so that the workspace
#: can be moved and a case archive can be imported under new ids.
ANALYSIS_PREFIX = "@analysis/"
ROOT_PREFIX = "@workspace/"


def default_root() -> Path:
    """Workspace folder when none is given: ``$BDA_WORKSPACE``, else ``$XDG_DATA_HOME/bda-workbench``, else
    ``~/.local/share/bda-workbench``."""
    env = os.environ.get(ENV_WORKSPACE, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "bda-workbench"


def _inside(path: Path, folder: Path) -> str | None:
    """POSIX relative path of ``path`` under ``folder``, or None when it is elsewhere."""
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return None


def inside_folder(path: Path, folder: Path) -> bool:
    """Whether ``path`` (symbolic links resolved) lies inside ``folder``."""
    return _inside(path, folder) is not None


def encode_path(path: str | Path | None, *, analysis_dir: Path | None, root: Path) -> str | None:
    """Stored form of a path: relative to the analysis folder or the workspace when inside them, else absolute."""
    if path is None:
        return None
    p = Path(path)
    if analysis_dir is not None and (rel := _inside(p, analysis_dir)) is not None:
        return ANALYSIS_PREFIX + rel
    if (rel := _inside(p, root)) is not None:
        return ROOT_PREFIX + rel
    return str(p)


def decode_path(stored: str | None, *, analysis_dir: Path | None, root: Path) -> Path | None:
    """Inverse of :func:`encode_path` for the current location of the workspace."""
    if stored is None:
        return None
    if stored.startswith(ANALYSIS_PREFIX) and analysis_dir is not None:
        return analysis_dir / stored[len(ANALYSIS_PREFIX):]
    if stored.startswith(ROOT_PREFIX):
        return root / stored[len(ROOT_PREFIX):]
    return Path(stored)
