"""Which files on the server users may name: the ``BDA_SERVER_PATHS`` rules.

``BDA_SERVER_PATHS`` is an optional list of folders (separated by ``os.pathsep``). When it is set, every
server-side path a user names (an input typed on the Analyze page, a file a case export carries with
``inputs="all"``) must lie inside one of them once symbolic links are resolved. When it is unset, any readable
file of the server may be named (a single analyst on their own machine). The app and the CLI apply the same rules
through :func:`check_server_path`.

A team server (the app with user accounts: :func:`serve_team`, declared on every run) is stricter: server paths need
``BDA_SERVER_PATHS`` (unset, none may be named: an analyst could otherwise read any file the server can, and carry
it out in a case export), and never reach into the workspace, where every case keeps its files (an analyst could
otherwise analyse another team's uploads). The CLI runs as the server's own user and keeps the plain rules.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path

from core.errors import InputError
from core.i18n import _

#: Environment variable restricting server-side input paths to some folders.
ENV_SERVER_PATHS = "BDA_SERVER_PATHS"


_team_workspace: contextvars.ContextVar[Path | None] = contextvars.ContextVar("bda_team_workspace", default=None)


def serve_team(workspace: Path | None) -> None:
    """Declare for this run that the server has user accounts and keeps its cases in ``workspace`` (None: a single
    analyst's machine, the plain rules). See the module notes."""
    _team_workspace.set(workspace.resolve() if workspace is not None else None)


def server_roots() -> list[Path]:
    """The folders of ``$BDA_SERVER_PATHS`` (links resolved) that server paths must lie in; empty when the
    variable is unset (then any readable path is accepted). On a team server with the variable unset, raises
    :class:`InputError`: no server path may be named there."""
    roots = [Path(r).expanduser().resolve() for r in os.environ.get(ENV_SERVER_PATHS, "").split(os.pathsep) if r]
    if not roots and _team_workspace.get() is not None:
        raise InputError(_("this server has user accounts and opens none of its folders to them ({env} is not "
                           "set): upload the files instead, or ask the administrator to set {env} to the data "
                           "folders").format(env=ENV_SERVER_PATHS))
    return roots


def allowed_roots(real: Path) -> list[Path]:
    """The folders a server path whose real location (links resolved) is ``real`` must lie in (none: anywhere):
    :func:`server_roots`, after the team-server rules, which raise :class:`InputError` (no folder open, or
    ``real`` in the workspace). Every kind of typed server path is checked through here."""
    roots = server_roots()
    ws = _team_workspace.get()
    if ws is not None and real.is_relative_to(ws):
        raise InputError(_("{path} is inside the workspace, where the cases keep their files: name a file of the "
                           "data folders, or upload it").format(path=real))
    return roots


def inside_roots(path: Path, roots: list[Path]) -> bool:
    """Whether ``path`` lies in one of ``roots`` (always, when there are none: no confinement)."""
    return not roots or any(path.is_relative_to(r) for r in roots)


def check_server_path(text: str | os.PathLike[str]) -> Path:
    """A server-side file path a user gave: it must be absolute, exist, be a readable file (and lie inside one of
    ``$BDA_SERVER_PATHS`` when that is set). Returns it; raises :class:`InputError` saying what is wrong."""
    raw = str(text or "").strip().strip("'\"")
    if not raw:
        raise InputError(_("type the full path of an image file on the server, e.g. /data/ortho/tile_01.tif"))
    if any(ord(c) < 32 for c in raw):
        raise InputError(_("the path contains control characters; type it again without them"))
    try:
        path = Path(raw).expanduser()
    except RuntimeError:  # ~user of a user this machine does not know
        raise InputError(_("{raw!r} names a home folder this server does not know; give the full path").format(
                             raw=raw)) from None
    if not path.is_absolute():
        raise InputError(_("{raw!r} is not an absolute path; give the full path, starting with /").format(raw=raw))
    roots = allowed_roots(path.resolve())
    if not inside_roots(path.resolve(), roots):
        raise InputError(_("{path} is outside the folders this server allows ({value}); copy the file into one of "
                           "them, or ask the administrator to add its folder to {env_server_paths}").format(
                             path=path, value=', '.join(map(str, roots)), env_server_paths=ENV_SERVER_PATHS))
    if not path.exists():
        raise InputError(_("{path} does not exist on the server; check the spelling and the folder").format(
                             path=path))
    if not path.is_file():
        raise InputError(_("{path} is not a file (a folder?); give the path of one image file").format(path=path))
    if not os.access(path, os.R_OK):
        raise InputError(_("{path} is not readable by the workbench "
                           "(permissions); make it readable and try again").format(
                             path=path))
    return path


def server_path_allowed(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`check_server_path` accepts ``path`` now (no message: for filters such as case exports)."""
    try:
        check_server_path(path)
    except InputError:
        return False
    return True
