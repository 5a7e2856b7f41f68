"""Cases, analyses and their scene results: the part of the workspace a detector run writes."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.file_names import clean_name
from core.i18n import N_, _
from core.store.base import WorkspaceBase, owner_alive, this_owner
from core.store.codec import (
    DET_AUTOMATIC,
    REVIEW_STATUSES,
    check_id,
    check_name,
    check_text,
    dumps,
    finding_from_row,
    loads,
    scene_from_row,
    scene_row,
)
from core.store.db import inserted_id, loads_row, utc_now
from core.store.files import decode_path, encode_path
from core.store.merge import match_reviewed
from core.types import Finding, SceneResult

ANALYSIS_STATUSES = ("running", "done", "failed", "interrupted")
#: Names the tool gives cases by itself, stored in English whatever the language (a language-free marker that
#: existing workspaces already hold) and shown translated by :func:`case_display_name`.
CLI_CASE = N_("Command line")  #: where ``python -m core analyze`` files a run without ``--case``
FIRST_CASE = N_("Case 1")  #: the case the app creates in an empty workspace
FIRST_CASE_NOTE = N_("created automatically on first use")
_TOOL_CASE_NAMES = frozenset({CLI_CASE, FIRST_CASE})


def case_display_name(name: object) -> str:
    """A case's name as a person reads it: the names the tool gives (:data:`CLI_CASE`, :data:`FIRST_CASE`) in the
    language in use, any other name as the analyst wrote it."""
    text = str(name)
    return _(text) if text in _TOOL_CASE_NAMES else text

_ANALYSIS_SQL = """
SELECT a.*,
  (SELECT COUNT(*) FROM analysis_inputs i WHERE i.analysis_id = a.id) AS n_inputs,
  (SELECT COUNT(*) FROM scenes s WHERE s.analysis_id = a.id AND s.status = 'done') AS n_done,
  (SELECT COUNT(*) FROM scenes s WHERE s.analysis_id = a.id AND s.status = 'failed') AS n_failed,
  (SELECT COUNT(*) FROM findings f WHERE f.analysis_id = a.id) AS n_findings
FROM analyses a"""


def _input_dict(row: sqlite3.Row, root: Path) -> dict[str, Any]:
    pre = decode_path(row["pre_path"], analysis_dir=None, root=root)
    return {**loads(row["extra_json"], {}), "path": str(decode_path(row["path"], analysis_dir=None, root=root)),
            "name": row["name"], "pre_path": None if pre is None else str(pre)}


class AnalysesMixin(WorkspaceBase):
    """Cases, analyses, scene results and their findings."""

    # -- cases ----------------------------------------------------------------------------------------------
    def create_case(self, name: str, *, event: str = "", description: str = "") -> int:
        """New case (an event or task grouping analyses); returns its id."""
        name = check_name(name, N_("case name"), max_len=200)
        check_text(event, N_("event"), max_len=200)
        check_text(description, N_("case description"), max_len=20000)
        now = utc_now()
        with self._db.write() as conn:
            cur = conn.execute("INSERT INTO cases(name, event, description, created_at, updated_at) "
                               "VALUES (?, ?, ?, ?, ?)", (name, event, description, now, now))
            return inserted_id(cur)

    def ensure_case(self, name: str, *, description: str = "") -> int:
        """Id of the oldest case, creating ``name`` when the workspace has none: one transaction, so sessions and
        processes opening an empty workspace at the same moment end up with one first case, not one each."""
        name = check_name(name, N_("case name"), max_len=200)
        with self._db.write() as conn:
            row = conn.execute("SELECT id FROM cases ORDER BY id LIMIT 1").fetchone()
            if row is not None:
                return int(row[0])
            now = utc_now()
            cur = conn.execute("INSERT INTO cases(name, event, description, created_at, updated_at) "
                               "VALUES (?, '', ?, ?, ?)", (name, description, now, now))
            return inserted_id(cur)

    def list_cases(self) -> list[dict[str, Any]]:
        """All cases, newest first, each with ``n_analyses``."""
        rows = self._db.query("SELECT c.*, (SELECT COUNT(*) FROM analyses a WHERE a.case_id = c.id) AS n_analyses "
                              "FROM cases c ORDER BY c.id DESC")
        return [loads_row(r) for r in rows]  # type: ignore[misc]

    def get_case(self, case_id: int) -> dict[str, Any]:
        """One case as a dict (id, name, event, description, created_at, updated_at, n_analyses)."""
        cid = check_id(case_id, N_("case id"))
        rows = self._db.query("SELECT c.*, (SELECT COUNT(*) FROM analyses a WHERE a.case_id = c.id) AS n_analyses "
                              "FROM cases c WHERE c.id=?", (cid,))
        if not rows:
            raise InputError(_("there is no case with id {cid} in the workspace {root}; pick one from the list of "
                               "cases or create it.").format(cid=cid, root=self.root))
        return loads_row(rows[0])  # type: ignore[return-value]

    # -- analyses -------------------------------------------------------------------------------------------
    def create_analysis(self, case_id: int, inputs: list[dict[str, Any]], *, model: dict[str, Any],
                        threshold: float | None, options: dict[str, Any], created_by: str | None = None) -> int:
        """Record a detector run over ``inputs`` (``[{"path", "name"?, "pre_path"?, ...extra}]``; ``name``
        defaults to the file name and must be unique) before it starts; status ``running``. Returns its id.
        ``created_by``: the logged-in user who started it (None without accounts)."""
        if created_by is not None:
            created_by = check_name(created_by, N_("user name"), max_len=200)
        cid = self.get_case(case_id)["id"]
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise InputError(_("an analysis needs at least one input: pass [{'path': ..., 'name': ...}, ...]."))
        rows, seen = [], set()
        for pos, item in enumerate(inputs, start=1):
            if not isinstance(item, dict) or not item.get("path"):
                raise InputError(_("input #{pos} must be a dict with a 'path', got {item!r}.").format(
                                     pos=pos, item=item))
            path = str(item["path"])
            name = check_name(str(item.get("name") or Path(path).name), f"input #{pos} name", max_len=1000)
            check_text(path, f"input #{pos} path", max_len=4096)
            if name in seen:
                raise InputError(_("two inputs are named {name!r}; give each input a distinct 'name'.").format(
                                     name=name))
            seen.add(name)
            pre = item.get("pre_path")
            extra = {k: v for k, v in item.items() if k not in ("path", "name", "pre_path")}
            # inside the workspace (uploads) the paths are stored relative to it, so that it can move and a case
            # archive can carry them
            rows.append((pos, name, encode_path(Path(path).absolute(), analysis_dir=None, root=self.root),
                         None if pre is None else encode_path(Path(str(pre)).absolute(), analysis_dir=None,
                                                              root=self.root),
                         dumps(extra, f"input {name!r}")))
        if not isinstance(model, dict) or not isinstance(options, dict):
            raise InputError(_("model and options must be dicts (use {} when there is nothing to record)."))
        if threshold is not None:
            try:
                threshold = float(threshold)
            except (TypeError, ValueError):
                raise InputError(_("threshold must be a number or None, got {threshold!r}.").format(
                                     threshold=threshold)) from None
            if not math.isfinite(threshold):
                raise InputError(_("threshold must be a finite number, got {threshold}.").format(
                                     threshold=threshold))
        model_json, options_json = dumps(model, N_("model description")), dumps(options, N_("analysis options"))
        now = utc_now()
        with self._db.write() as conn:
            aid = inserted_id(conn.execute(
                "INSERT INTO analyses(case_id, model_json, threshold, options_json, status, owner, created_at, "
                "updated_at, created_by) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (cid, model_json, threshold, options_json, this_owner(), now, now, created_by)))
            conn.executemany("INSERT INTO analysis_inputs(analysis_id, position, name, path, pre_path, extra_json) "
                             "VALUES (?, ?, ?, ?, ?, ?)", [(aid, *r) for r in rows])
            conn.execute("UPDATE cases SET updated_at=? WHERE id=?", (now, cid))
            # a folder with this id can only be left over by an import that crashed before committing it
            self._to_trash(self._analysis_path(aid))
        self.analysis_dir(aid)
        return aid

    def pending_inputs(self, analysis_id: int, *, include_failed: bool = False) -> list[dict[str, Any]]:
        """Inputs with no saved result yet, in input order (what a resumed run still has to do). With
        ``include_failed`` the inputs whose result was an error are listed too, to retry them."""
        aid = self._require_analysis(analysis_id)
        cond = "s.id IS NULL OR s.status = 'failed'" if include_failed else "s.id IS NULL"
        rows = self._db.query(
            "SELECT i.* FROM analysis_inputs i LEFT JOIN scenes s ON s.analysis_id = i.analysis_id "
            f"AND s.input_name = i.name WHERE i.analysis_id = ? AND ({cond}) ORDER BY i.position", (aid,))
        return [_input_dict(r, self.root) for r in rows]

    def analysis_inputs(self, analysis_id: int) -> list[dict[str, Any]]:
        """All inputs of an analysis, in order, as given to :meth:`create_analysis`."""
        aid = self._require_analysis(analysis_id)
        rows = self._db.query("SELECT * FROM analysis_inputs WHERE analysis_id=? ORDER BY position", (aid,))
        return [_input_dict(r, self.root) for r in rows]

    def resume_analysis(self, analysis_id: int) -> list[dict[str, Any]]:
        """Take over an interrupted (or finished) analysis: status back to ``running`` owned by this process;
        returns :meth:`pending_inputs`."""
        aid = self._require_analysis(analysis_id)
        with self._db.write() as conn:
            conn.execute("UPDATE analyses SET status='running', owner=?, finished_at=NULL, updated_at=? WHERE id=?",
                         (this_owner(), utc_now(), aid))
        return self.pending_inputs(aid)

    def finish_analysis(self, analysis_id: int, status: str = "done") -> None:
        """Close a run: ``done``, ``failed`` or ``interrupted``."""
        if status not in ANALYSIS_STATUSES[1:]:
            raise InputError(_("analysis status must be one of done, failed, interrupted; got {status!r}.").format(
                                 status=status))
        aid = self._require_analysis(analysis_id)
        now = utc_now()
        with self._db.write() as conn:
            conn.execute("UPDATE analyses SET status=?, finished_at=?, updated_at=? WHERE id=?",
                         (status, now, now, aid))

    def _analysis_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        d = loads_row(row)
        assert d is not None
        d["model"] = loads(d.pop("model_json"), {})
        d["options"] = loads(d.pop("options_json"), {})
        d["dir"] = self._analysis_path(d["id"])
        return d

    def get_analysis(self, analysis_id: int) -> dict[str, Any]:
        """An analysis: id, case_id, model, threshold, options, status, owner, created_at, updated_at,
        finished_at, n_inputs, n_done, n_failed, n_findings, dir."""
        aid = check_id(analysis_id, N_("analysis id"))
        rows = self._db.query(_ANALYSIS_SQL + " WHERE a.id=?", (aid,))
        if not rows:
            raise InputError(_("there is no analysis with id {aid} in the workspace {root}; pick one from the list "
                               "of analyses.").format(aid=aid, root=self.root))
        return self._analysis_dict(rows[0])

    def list_analyses(self, case_id: int | None = None) -> list[dict[str, Any]]:
        """Analyses (of one case, or all), newest first, in the form of :meth:`get_analysis`."""
        if case_id is None:
            rows = self._db.query(_ANALYSIS_SQL + " ORDER BY a.id DESC")
        else:
            rows = self._db.query(_ANALYSIS_SQL + " WHERE a.case_id=? ORDER BY a.id DESC",
                                  (check_id(case_id, N_("case id")),))
        return [self._analysis_dict(r) for r in rows]

    def delete_analysis(self, analysis_id: int) -> None:
        """Delete an analysis with its results, findings, reviews and files. Refused while a live process is still
        running it (mark it finished or interrupted first)."""
        aid = self._require_analysis(analysis_id)
        with self._db.write() as conn:
            row = conn.execute("SELECT status, owner, updated_at FROM analyses WHERE id=?", (aid,)).fetchone()
            if row["status"] == "running" and owner_alive(row["owner"], row["updated_at"]):
                raise InputError(_("analysis {aid} is still running; stop it (or wait until it ends) before "
                                   "deleting it.").format(aid=aid))
            conn.execute("DELETE FROM analyses WHERE id=?", (aid,))
        self._to_trash(self._analysis_path(aid))

    # -- scene results --------------------------------------------------------------------------------------
    def save_scene_result(self, analysis_id: int, result: SceneResult, *, input_name: str | None = None) -> None:
        """Store one scene's result and all its findings in one transaction.

        Keyed by (analysis, input name): ``input_name`` or else ``result.scene_name``, which must name an input of
        the analysis. Saving again (a resumed run, findings re-extracted at another threshold) replaces the scene's
        data and unreviewed findings; a reviewed finding continues as the new finding covering the same region
        (same id, review state, analyst's grade and audit trail) or, when none does, is kept as it was. A result
        with ``error`` set is stored as a failed input. Finding ids are stored as ``A<analysis id>-<id>``, made
        unique in the workspace (``A<analysis id>-<input position>-<id>`` when another scene already has the id).
        """
        if not isinstance(result, SceneResult):
            raise InputError(_("save_scene_result needs a SceneResult, got {name}.").format(
                                 name=type(result).__name__))
        aid = self._require_analysis(analysis_id)
        name = check_name(input_name if input_name is not None else result.scene_name, N_("scene name"), max_len=1000)
        if isinstance(result.scene_name, str) and result.scene_name != clean_name(result.scene_name):
            result = dataclasses.replace(result, scene_name=clean_name(result.scene_name, default=name))
        if isinstance(result.pre_scene_name, str) and result.pre_scene_name != clean_name(result.pre_scene_name):
            result = dataclasses.replace(result, pre_scene_name=clean_name(result.pre_scene_name, default="pre"))
        if result.error is not None:
            check_text(result.error, N_("error message"), max_len=100000)
        adir = self._analysis_path(aid)
        scene_json = scene_row(result, analysis_dir=adir, root=self.root)
        findings = self._finding_rows(result.findings)
        status = "failed" if result.error is not None else "done"
        now = utc_now()
        with self._db.write() as conn:
            inp = conn.execute("SELECT position FROM analysis_inputs WHERE analysis_id=? AND name=?",
                               (aid, name)).fetchone()
            if inp is None:
                names = [r[0] for r in conn.execute(
                    "SELECT name FROM analysis_inputs WHERE analysis_id=? ORDER BY position LIMIT 5", (aid,))]
                raise InputError(_("{name!r} is not an input of analysis {aid} (inputs: {value}, ...); save the "
                                   "result under its input's name (input_name=...).").format(
                                     name=name, aid=aid, value=', '.join(names)))
            old = conn.execute("SELECT id FROM scenes WHERE analysis_id=? AND input_name=?", (aid, name)).fetchone()
            if old is None:
                sid = inserted_id(conn.execute(
                    "INSERT INTO scenes(analysis_id, input_name, status, error, result_json, n_findings, saved_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (aid, name, status, result.error, scene_json, len(findings), now)))
            else:
                sid = int(old["id"])
                conn.execute("UPDATE scenes SET status=?, error=?, result_json=?, n_findings=?, saved_at=? "
                             "WHERE id=?", (status, result.error, scene_json, len(findings), now, sid))
            self._write_findings(conn, aid, sid, int(inp["position"]), findings)
            conn.execute("UPDATE analyses SET updated_at=? WHERE id=?", (now, aid))

    @staticmethod
    def _finding_rows(findings: list[Finding]) -> list[tuple[str, dict[str, Any], str]]:
        """(raw id, dict, JSON without the id) per finding, validated before the transaction starts. The stored
        JSON leaves the id out: it is the row's key, set when the finding is read back."""
        out, seen = [], set()
        for f in findings:
            if not isinstance(f, Finding):
                raise InputError(_("findings must be Finding objects, got {name}.").format(name=type(f).__name__))
            check_text(f.id, N_("finding id"), max_len=200, allow_empty=False)
            if f.id in seen:
                raise InputError(_("two findings of scene {scene_name!r} share the id {id!r}; ids must differ.").format(
                                     scene_name=f.scene_name, id=f.id))
            seen.add(f.id)
            if f.review_status not in REVIEW_STATUSES:
                raise InputError(_("finding {id!r} has review status {review_status!r}; use one of {value}.").format(
                                     id=f.id, review_status=f.review_status, value=', '.join(REVIEW_STATUSES)))
            d = f.to_dict()
            del d["id"]
            out.append((f.id, d, dumps(d, f"finding {f.id!r}")))
        return out

    @staticmethod
    def _write_findings(conn: sqlite3.Connection, aid: int, sid: int, position: int,
                        findings: list[tuple[str, dict[str, Any], str]]) -> None:
        """Replace a scene's findings; reviewed ones continue as the new finding on the same region (see
        :mod:`core.store.merge`) or are kept; unreviewed ones are replaced."""
        prefix = f"A{aid}-"
        conn.execute("DELETE FROM findings WHERE scene_id=? AND review_status='unreviewed' "
                     "AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.finding_id = findings.id)", (sid,))
        reviewed = conn.execute(
            "SELECT f.id, f.data_json, EXISTS (SELECT 1 FROM reviews r WHERE r.finding_id = f.id "
            "AND r.grade_after IS NOT NULL) AS graded FROM findings f WHERE f.scene_id=? ORDER BY f.position",
            (sid,)).fetchall()
        cands = [raw if raw.startswith(prefix) else prefix + raw for raw, _, _ in findings]
        matched = match_reviewed([(r["id"], loads(r["data_json"])) for r in reviewed],
                                 [(c, d) for c, (_, d, _) in zip(cands, findings, strict=True)])
        graded = {r["id"]: bool(r["graded"]) for r in reviewed}
        owners: dict[str, int] = {}  # stored id -> scene id, for the candidate ids (one query per 500)
        for i in range(0, len(cands), 500):
            chunk = cands[i:i + 500]
            owners.update((r[0], r[1]) for r in conn.execute(
                f"SELECT id, scene_id FROM findings WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        assigned = set(graded)

        def free(fid: str) -> bool:
            if fid in assigned or fid in owners:
                return False
            return conn.execute("SELECT 1 FROM findings WHERE id=?", (fid,)).fetchone() is None

        for pos, ((raw, d, data_json), cand) in enumerate(zip(findings, cands, strict=True)):
            if pos in matched:  # the region an analyst reviewed: same id, review state and audit trail
                fid = matched[pos]
                conn.execute("UPDATE findings SET data_json=?, position=?, grade=CASE WHEN ? THEN grade ELSE ? END "
                             "WHERE id=?", (data_json, pos, graded[fid], str(d["grade"]), fid))
                continue
            fid = cand
            if owners.get(fid, sid) != sid:  # the same raw id in another scene of this analysis
                fid = f"{prefix}{position}-{raw.removeprefix(prefix)}"
            base, n = fid, 2
            while not free(fid):
                fid, n = f"{base}-{n}", n + 1
            assigned.add(fid)
            conn.execute(
                "INSERT INTO findings(id, analysis_id, scene_id, position, data_json, review_status, grade, "
                "analyst, notes, det_method) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (fid, aid, sid, pos, data_json, d["review_status"], str(d["grade"]), str(d["analyst"]),
                 str(d["notes"]), str(d["det_method"] or DET_AUTOMATIC)))
        kept = [r["id"] for r in reviewed if r["id"] not in matched.values()]
        for extra, fid in enumerate(kept):  # reviewed regions the new extraction lacks: after the new findings
            conn.execute("UPDATE findings SET position=? WHERE id=?", (len(findings) + extra, fid))
        conn.execute("UPDATE scenes SET n_findings=(SELECT COUNT(*) FROM findings WHERE scene_id=?) WHERE id=?",
                     (sid, sid))

    def scene_results(self, analysis_id: int) -> list[SceneResult]:
        """Saved results in input order, findings in their current review state (failed inputs have ``error``)."""
        aid = self._require_analysis(analysis_id)
        adir = self._analysis_path(aid)
        with self._db.snapshot() as conn:
            scenes = conn.execute(
                "SELECT s.id, s.result_json FROM scenes s JOIN analysis_inputs i ON i.analysis_id = s.analysis_id "
                "AND i.name = s.input_name WHERE s.analysis_id=? ORDER BY i.position", (aid,)).fetchall()
            frows = conn.execute("SELECT * FROM findings WHERE analysis_id=? ORDER BY scene_id, position",
                                 (aid,)).fetchall()
        by_scene: dict[int, list[Finding]] = {}
        for r in frows:
            by_scene.setdefault(r["scene_id"], []).append(finding_from_row(r))
        return [scene_from_row(s["result_json"], by_scene.get(s["id"], []), analysis_dir=adir, root=self.root)
                for s in scenes]
