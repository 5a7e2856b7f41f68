"""Registered models and background jobs (training, analyses) so their state survives a page change or restart."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

from core.atomic_files import atomic_write_stream
from core.errors import InputError
from core.file_names import safe_filename
from core.i18n import N_, _
from core.store.base import WorkspaceBase, this_owner
from core.store.codec import check_fraction, check_id, check_name, check_text, dumps, loads
from core.store.db import inserted_id, loads_row, utc_now
from core.store.files import decode_path, encode_path, file_sha256

JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
#: Statuses of a job still under way.
ACTIVE = ("queued", "running")
_FINAL = ("done", "failed", "cancelled", "interrupted")


class JobsMixin(WorkspaceBase):
    """Models registered by the user and background jobs."""

    # -- models ---------------------------------------------------------------------------------------------
    def models_dir(self) -> Path:
        """Folder for checkpoints that belong to the workspace (trained here or copied in)."""
        return self.root / "files" / "models"

    def register_model(self, path: Path, info: dict[str, Any], *, copy: bool = False,
                       registered_by: str | None = None) -> int:
        """Register a checkpoint file with its ``info`` (name, architecture, metrics...; JSON-safe); returns its id.

        The same file (same sha256) registered twice returns the first id. With ``copy`` the file is first copied
        into :meth:`models_dir`, so the workspace keeps it even when the original is removed.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(_("model file {path} does not exist or is not a file; check the path.").format(
                                 path=path))
        if not isinstance(info, dict):
            raise InputError(_("model info must be a dict (use {} when there is nothing to record)."))
        info_json = dumps(info, N_("model info"))
        name = check_name(str(info.get("name") or path.stem), "model name", max_len=200)
        if info.get("name") and name != info["name"]:
            info_json = dumps({**info, "name": name}, N_("model info"))
        try:
            sha, size = file_sha256(path), path.stat().st_size
        except OSError as exc:
            raise InputError(_("cannot read model file {path} ({value}).").format(
                                 path=path, value=exc.strerror or exc)) from exc
        known = self._db.query("SELECT id FROM models WHERE sha256=?", (sha,))
        if known:
            return int(known[0]["id"])
        if copy:
            path = self._copy_in(path, sha)
        stored = encode_path(path.absolute(), analysis_dir=None, root=self.root)
        with self._db.write() as conn:
            row = conn.execute("SELECT id FROM models WHERE sha256=?", (sha,)).fetchone()
            if row is not None:  # registered by another thread/process meanwhile
                return int(row["id"])
            return inserted_id(conn.execute(
                "INSERT INTO models(name, path, sha256, size_bytes, info_json, created_at, registered_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, stored, sha, size, info_json, utc_now(),
                 None if registered_by is None else check_name(registered_by, N_("user name"), max_len=200))))

    def _copy_in(self, src: Path, sha: str) -> Path:
        dest = self.models_dir() / sha[:16] / safe_filename(src.name, default="model")
        if dest.is_file() and file_sha256(dest) == sha:
            return dest
        with open(src, "rb") as inp:
            atomic_write_stream(dest, inp)
        return dest

    def _model_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        d = loads_row(row)
        assert d is not None
        d["info"] = loads(d.pop("info_json"), {})
        d["path"] = decode_path(d["path"], analysis_dir=None, root=self.root)
        d["exists"] = d["path"].is_file()
        return d

    def list_models(self) -> list[dict[str, Any]]:
        """Registered models, newest first: id, name, path, sha256, size_bytes, info, created_at, exists."""
        return [self._model_dict(r) for r in self._db.query("SELECT * FROM models ORDER BY id DESC")]

    def get_model(self, model_id: int) -> dict[str, Any]:
        """One registered model, as in :meth:`list_models`."""
        mid = check_id(model_id, N_("model id"))
        rows = self._db.query("SELECT * FROM models WHERE id=?", (mid,))
        if not rows:
            raise InputError(_("there is no registered model with id {mid}; pick one from the list of models.").format(
                                 mid=mid))
        return self._model_dict(rows[0])

    # -- jobs -----------------------------------------------------------------------------------------------
    def create_job(self, kind: str, params: dict[str, Any]) -> int:
        """A new background job (``queued``, owned by this process); returns its id."""
        check_text(kind, N_("job kind"), max_len=100, allow_empty=False)
        if not isinstance(params, dict):
            raise InputError(_("job params must be a dict."))
        params_json, now = dumps(params, N_("job parameters")), utc_now()
        with self._db.write() as conn:
            return inserted_id(conn.execute(
                "INSERT INTO jobs(kind, params_json, status, owner, created_at, updated_at) "
                "VALUES (?, ?, 'queued', ?, ?, ?)", (kind, params_json, this_owner(), now, now)))

    def _require_job(self, job_id: Any) -> int:
        jid = check_id(job_id, N_("job id"))
        if not self._db.query("SELECT 1 FROM jobs WHERE id=?", (jid,)):
            raise InputError(_("there is no job with id {jid}; pick one from the list of jobs.").format(jid=jid))
        return jid

    def update_job(self, job_id: int, *, status: str | None = None, progress: float | None = None,
                   message: str | None = None, result: Any = None, log_append: dict[str, Any] | None = None) -> None:
        """Update a job in one transaction. ``progress`` in [0, 1]; ``result`` any JSON-safe value (stored when not
        None); ``log_append`` adds one timestamped entry to the job's log (e.g. ``{"epoch": 3, "loss": 0.12}``).
        Setting ``running`` makes this process the job's owner; a final status records ``finished_at``."""
        jid = self._require_job(job_id)
        sets: list[str] = []
        vals: list[Any] = []
        now = utc_now()
        if status is not None:
            if status not in JOB_STATUSES:
                raise InputError(_("job status must be one of {value}; got {status!r}.").format(
                                     value=', '.join(JOB_STATUSES), status=status))
            sets.append("status=?")
            vals.append(status)
            if status == "running":
                sets += ["owner=?", "finished_at=NULL"]
                vals.append(this_owner())
            elif status in _FINAL:
                sets.append("finished_at=?")
                vals.append(now)
        if progress is not None:
            sets.append("progress=?")
            vals.append(check_fraction(progress, N_("job progress")))
        if message is not None:
            sets.append("message=?")
            vals.append(check_text(message, N_("job message"), max_len=20000))
        if result is not None:
            sets.append("result_json=?")
            vals.append(dumps(result, N_("job result")))
        log_json = None
        if log_append is not None:
            if not isinstance(log_append, dict):
                raise InputError(_("log_append must be a dict."))
            log_json = dumps(log_append, N_("job log entry"))
        with self._db.write() as conn:
            conn.execute(f"UPDATE jobs SET {', '.join(sets + ['updated_at=?'])} WHERE id=?", (*vals, now, jid))
            if log_json is not None:
                conn.execute("INSERT INTO job_log(job_id, at, data_json) VALUES (?, ?, ?)", (jid, now, log_json))

    def request_cancel(self, job_id: int) -> None:
        """Ask a job to stop; its worker sees ``get_job(id)["cancel_requested"]`` and ends with ``cancelled``."""
        jid = self._require_job(job_id)
        with self._db.write() as conn:
            conn.execute("UPDATE jobs SET cancel_requested=1, updated_at=? WHERE id=?", (utc_now(), jid))

    @staticmethod
    def _job_dict(row: sqlite3.Row) -> dict[str, Any]:
        d = loads_row(row)
        assert d is not None
        d["params"] = loads(d.pop("params_json"), {})
        d["result"] = loads(d.pop("result_json"))
        d["cancel_requested"] = bool(d["cancel_requested"])
        if isinstance(d["progress"], float) and math.isnan(d["progress"]):
            d["progress"] = 0.0
        return d

    def get_job(self, job_id: int) -> dict[str, Any]:
        """A job: id, kind, params, status, progress, message, result, cancel_requested, owner, timestamps, and
        ``log`` (entries oldest first, each with its ``at`` time)."""
        jid = check_id(job_id, N_("job id"))
        with self._db.snapshot() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id=?", (jid,)).fetchone()
            if row is None:
                raise InputError(_("there is no job with id {jid}; pick one from the list of jobs.").format(jid=jid))
            log = conn.execute("SELECT at, data_json FROM job_log WHERE job_id=? ORDER BY id", (jid,)).fetchall()
        d = self._job_dict(row)
        d["log"] = [{**loads(r["data_json"], {}), "at": r["at"]} for r in log]
        return d

    def list_jobs(self, *, kind: str | None = None, status: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
        """Jobs newest first (without their logs), optionally of one kind and/or status."""
        where, vals = [], []
        if kind is not None:
            where.append("kind=?")
            vals.append(kind)
        if status is not None:
            where.append("status=?")
            vals.append(status)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        return [self._job_dict(r) for r in self._db.query(sql, (*vals, max(1, int(limit))))]
