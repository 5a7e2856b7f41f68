"""SQLite access for the workspace: one connection per thread (and per process), WAL, retries, clear errors.

Concurrency model: several Streamlit threads and a CLI process may use one workspace at once. Each thread opens
its own connection (never shared, never inherited across ``fork``). Readers never block in WAL mode. Writers take
the write lock up front (``BEGIN IMMEDIATE``) so two writers can never deadlock on a lock upgrade; a writer that
finds the lock taken waits and retries until ``busy_timeout_s`` has passed, then raises :class:`WorkspaceError`.
``synchronous=FULL``: a committed transaction survives a crash of the process and of the machine.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from core.errors import WorkspaceError
from core.i18n import _
from core.store.schema import MIGRATIONS, SCHEMA_VERSION

T = TypeVar("T")

#: Connections a forked child inherited from its parent: kept referenced so that they are never closed here.
_INHERITED: list[sqlite3.Connection] = []
_BUSY_WORDS = ("database is locked", "database table is locked", "database is busy")
_CORRUPT_WORDS = ("file is not a database", "malformed", "database disk image", "file is encrypted")


def utc_now() -> str:
    """Current time as ISO 8601 UTC with microseconds, e.g. ``2024-05-01T12:00:00.123456+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(w in str(exc).lower() for w in _BUSY_WORDS)


class Database:
    """The workspace's SQLite file: per-thread connections, write transactions, schema migrations."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = float(busy_timeout_s)
        self._local = threading.local()

    # -- errors ---------------------------------------------------------------------------------------------
    def translate(self, exc: sqlite3.Error) -> WorkspaceError:
        """Turn a sqlite3 error into a :class:`WorkspaceError` that says what to do."""
        msg = str(exc)
        low = msg.lower()
        if any(w in low for w in _CORRUPT_WORDS):
            return WorkspaceError(_(
                "the workspace database {path} is damaged ({msg}). Stop the workbench, move that file and its "
                "-wal/-shm companions aside (e.g. rename to .corrupt) and restart to begin an empty workspace; "
                "re-import your cases from their exported archives, or try `sqlite3 <file> .recover` to salvage it.")
                .format(path=self.path, msg=msg))
        if _is_busy(exc):
            return WorkspaceError(_(
                "the workspace database {path} stayed locked for more than {seconds} s because another workbench "
                "process or thread is holding it. Wait for long-running jobs to finish and try again; if it "
                "persists, stop other workbench processes using this workspace.").format(
                    path=self.path, seconds=f"{self.busy_timeout_s:.0f}"))
        if "readonly" in low or "unable to open" in low or "permission" in low:
            return WorkspaceError(_(
                "cannot open the workspace database {path} for writing ({msg}). Make the folder writable, or choose "
                "another workspace folder with the BDA_WORKSPACE environment variable.").format(path=self.path,
                                                                                               msg=msg))
        if "disk is full" in low or "disk i/o" in low:
            return WorkspaceError(_(
                "the workspace database {path} could not be written ({msg}). Free disk space on that drive (or choose "
                "another workspace folder with BDA_WORKSPACE) and try again.").format(path=self.path, msg=msg))
        return WorkspaceError(_("workspace database error in {path}: {msg}; try again, and if it persists check the "
                                "workspace folder").format(path=self.path, msg=msg))

    # -- connections ----------------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=min(self.busy_timeout_s, 2.0), isolation_level=None,
                                   check_same_thread=True)
        except sqlite3.Error as exc:
            raise self.translate(exc) from exc
        conn.row_factory = sqlite3.Row
        try:
            self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use; a forked child opens its own)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid != os.getpid():
            _INHERITED.append(conn)  # SQLite: never use or close a connection inherited across fork()
            conn = None
        if conn is None:
            conn = self._open()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    # -- execution ------------------------------------------------------------------------------------------
    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` again while the database is busy, up to ``busy_timeout_s``; translate sqlite errors."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.Error as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
                    continue
                raise self.translate(exc) from exc

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read statement outside any transaction and return all rows."""
        conn = self.connection()
        return self._retry(lambda: conn.execute(sql, params).fetchall())

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: ``BEGIN IMMEDIATE`` (waiting while another writer holds the lock), ``COMMIT`` on
        success, ``ROLLBACK`` on any exception. sqlite errors inside are translated to :class:`WorkspaceError`."""
        conn = self.connection()
        if conn.in_transaction:
            raise RuntimeError(_("nested workspace write transaction"))
        self._retry(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            yield conn
            self._retry(lambda: conn.execute("COMMIT"))
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                raise self.translate(exc) from exc
            raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same consistent state (WAL snapshot)."""
        conn = self.connection()
        if conn.in_transaction:
            raise RuntimeError(_("nested workspace transaction"))
        self._retry(lambda: conn.execute("BEGIN DEFERRED"))
        try:
            yield conn
        except sqlite3.Error as exc:
            raise self.translate(exc) from exc
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    # -- schema ---------------------------------------------------------------------------------------------
    def schema_version(self) -> int:
        """Highest applied schema version (0 for a new, empty database)."""
        rows = self.query("SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'")
        if not rows:
            return 0
        return int(self.query("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    def migrate(self) -> int:
        """Apply missing migrations in order (each in its own transaction); return the resulting version."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise WorkspaceError(
                _("the workspace {parent} was written by a newer version of the workbench (schema {current}, this "
                  "version knows up to {schema_version}). Upgrade the workbench, or choose another workspace "
                  "folder with BDA_WORKSPACE.").format(
                    parent=self.path.parent, current=current, schema_version=SCHEMA_VERSION))
        if current == SCHEMA_VERSION:
            return current
        with self.write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                         "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        for version, statements in MIGRATIONS:
            with self.write() as conn:  # re-check inside the lock: another process may have migrated meanwhile
                done = conn.execute("SELECT 1 FROM schema_version WHERE version=?", (version,)).fetchone()
                if done:
                    continue
                for stmt in statements:
                    conn.execute(stmt)
                conn.execute("INSERT INTO schema_version(version, applied_at) VALUES (?, ?)", (version, utc_now()))
        return self.schema_version()

    def integrity_check(self) -> list[str]:
        """Problems SQLite finds in the file (``PRAGMA integrity_check`` + foreign keys); empty when healthy."""
        problems = [r[0] for r in self.query("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key violation in {r[0]} row {r[1]} -> {r[2]}"
                     for r in self.query("PRAGMA foreign_key_check")]
        return problems


def loads_row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    """A row as a plain dict (None stays None)."""
    return None if row is None else {k: row[k] for k in row.keys()}


def inserted_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row the INSERT run on ``cursor`` made (raises :class:`WorkspaceError` if there is none)."""
    rowid = cursor.lastrowid
    if rowid is None:
        raise WorkspaceError(_("the workspace database returned no id for a new record; check the workspace with "
                               "its integrity check before going on"))
    return rowid
