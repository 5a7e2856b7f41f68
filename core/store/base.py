"""The workspace's folder layout, database handle and process ownership (shared by the Workspace mixins)."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from core.errors import InputError, WorkspaceError
from core.i18n import N_, _
from core.store.codec import check_id
from core.store.db import Database, utc_now
from core.store.files import default_root

DB_NAME = "workspace.sqlite3"

#: Identifies this process in ``owner`` columns: host, pid and a random token (pids are reused after a restart,
#: especially in containers, so the token tells a dead former owner from this process).
_TOKEN = uuid.uuid4().hex[:12]


def this_owner() -> str:
    """``host|pid|token`` of the current process."""
    return f"{socket.gethostname()}|{os.getpid()}|{_TOKEN}"


#: Work owned by another host counts as abandoned after this long without an update. SQLite WAL only works
#: between processes of one machine, so another host name is nearly always this machine before a restart (a
#: container gets a new host name), or a second container on it that is still saving now and then.
FOREIGN_STALE_S = 600.0


def owner_alive(owner: str | None, updated_at: str | None = None) -> bool:
    """Whether the process named by an ``owner`` string may still be working. On this host: its pid exists (and
    is this process only with this process's token). Elsewhere: it updated its row in the last 10 minutes."""
    if not owner:
        return False
    try:
        host, pid_s, token = owner.rsplit("|", 2)
        pid = int(pid_s)
    except ValueError:
        return False
    if host != socket.gethostname():
        try:
            age = (datetime.now(timezone.utc) - datetime.fromisoformat(str(updated_at))).total_seconds()
        except ValueError:
            return False
        return age < FOREIGN_STALE_S
    if pid == os.getpid():
        return token == _TOKEN
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the pid exists but belongs to another user
        return True
    return True


_W = TypeVar("_W", bound="WorkspaceBase")


class WorkspaceBase:
    """Folder layout + database. Layout under ``root``::

        workspace.sqlite3 (+ -wal, -shm)   cases, analyses, scenes, findings, reviews, models, jobs
        files/analyses/<id>/               heatmaps, overlays, reports of one analysis
        files/models/                      checkpoints copied in by register_model(copy=True)
        files/trash/                       folders of deleted analyses, removed on the next start
        tmp/                               scratch space for imports (same disk, so moves are renames)
    """

    root: Path

    def __init__(self, root: str | Path | None = None, *, busy_timeout_s: float = 30.0) -> None:
        """Open (creating when needed) the workspace at ``root``, else ``$BDA_WORKSPACE``, else
        ``$XDG_DATA_HOME/bda-workbench`` or ``~/.local/share/bda-workbench``. Applies schema migrations and marks
        analyses/jobs whose process has died as ``interrupted``."""
        self.root = (Path(root).expanduser() if root is not None else default_root()).absolute()
        try:
            for sub in ("files/analyses", "files/models", "files/trash", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(
                _("cannot create the workspace folder {root} ({value}). Choose a writable folder with the "
                  "BDA_WORKSPACE environment variable (or Workspace(root=...)), or fix its permissions.").format(
                    root=self.root, value=exc.strerror or exc)) from exc
        self._db = Database(self.root / DB_NAME, busy_timeout_s=busy_timeout_s)
        self._db.migrate()
        self._sweep_scratch()
        self.recover_interrupted()

    # -- life cycle -----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close this thread's database connection (the workspace stays usable; it reconnects on demand)."""
        self._db.close()

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace(root={str(self.root)!r})"

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self._db.path

    def schema_version(self) -> int:
        """Applied schema version of the database."""
        return self._db.schema_version()

    def check_integrity(self) -> list[str]:
        """Problems found in the database file (empty list when healthy). Reads the whole file: seconds on a big
        workspace, so call it from a maintenance action, not on every page load."""
        return self._db.integrity_check()

    def _sweep_scratch(self) -> None:
        """Remove deleted analyses' folders and imports abandoned more than a day ago."""
        for p in (self.root / "files" / "trash").iterdir():
            shutil.rmtree(p, ignore_errors=True)
        cutoff = time.time() - 86400
        for p in (self.root / "tmp").iterdir():
            try:
                if p.stat().st_mtime < cutoff:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
            except OSError:
                pass

    def _to_trash(self, folder: Path) -> None:
        """Move ``folder`` out of the way in one rename, then delete it (a crash leaves it only in trash)."""
        if not folder.exists():
            return
        dest = self.root / "files" / "trash" / f"{folder.name}-{uuid.uuid4().hex[:8]}"
        try:
            os.replace(folder, dest)
        except OSError:
            dest = folder
        shutil.rmtree(dest, ignore_errors=True)

    # -- analyses' and cases' folders -----------------------------------------------------------------------
    def uploads_dir(self, case_id: int) -> Path:
        """Folder of the images uploaded into a case (kept: analyses, the map and reports read them again); not
        created here."""
        return self.root / "files" / "uploads" / f"case-{check_id(case_id, 'case id')}"

    def _analysis_path(self, analysis_id: int) -> Path:
        return self.root / "files" / "analyses" / str(int(analysis_id))

    def _require_analysis(self, analysis_id: Any) -> int:
        aid = check_id(analysis_id, N_("analysis id"))
        if not self._db.query("SELECT 1 FROM analyses WHERE id=?", (aid,)):
            raise InputError(_("there is no analysis with id {aid} in the workspace {root}; pick one from the list "
                               "of analyses.").format(aid=aid, root=self.root))
        return aid

    def analysis_dir(self, analysis_id: int) -> Path:
        """Folder of an analysis's heatmaps, overlays and reports (created on demand)."""
        aid = self._require_analysis(analysis_id)
        path = self._analysis_path(aid)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(_("cannot create {path} ({value}); check the workspace folder's permissions and "
                                   "free space.").format(path=path, value=exc.strerror or exc)) from exc
        return path

    # -- crash recovery -------------------------------------------------------------------------------------
    def recover_interrupted(self) -> dict[str, list[int]]:
        """Mark running analyses and queued/running jobs whose owning process is gone as ``interrupted``.

        Returns the ids changed, ``{"analyses": [...], "jobs": [...]}``. Work owned by another host name counts as
        gone after 10 minutes without an update. Run automatically when a workspace is opened; cheap enough for a
        page to call on load.
        """
        stale_a = [(r["id"], r["owner"]) for r in self._db.query(
            "SELECT id, owner, updated_at FROM analyses WHERE status='running'")
            if not owner_alive(r["owner"], r["updated_at"])]
        stale_j = [(r["id"], r["owner"]) for r in self._db.query(
            "SELECT id, owner, updated_at FROM jobs WHERE status IN ('queued', 'running')")
            if not owner_alive(r["owner"], r["updated_at"])]
        if stale_a or stale_j:
            now = utc_now()
            with self._db.write() as conn:  # "AND owner IS ?": skip rows another process took over meanwhile
                for aid, owner in stale_a:
                    conn.execute("UPDATE analyses SET status='interrupted', updated_at=?, finished_at=? "
                                 "WHERE id=? AND status='running' AND owner IS ?", (now, now, aid, owner))
                for jid, owner in stale_j:
                    conn.execute("UPDATE jobs SET status='interrupted', updated_at=?, finished_at=?, message="
                                 "CASE WHEN message='' THEN 'the process running it stopped' ELSE message END "
                                 "WHERE id=? AND status IN ('queued', 'running') AND owner IS ?",
                                 (now, now, jid, owner))
        return {"analyses": [a for a, _ in stale_a], "jobs": [j for j, _ in stale_j]}
