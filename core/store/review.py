"""Analyst review of findings: every decision is committed the moment it is made and kept in an audit trail."""

from __future__ import annotations

from typing import Any

from core.errors import InputError
from core.store.base import WorkspaceBase
from core.store.codec import DET_AUTOMATIC, DET_CONFIRMED, REVIEW_STATUSES, check_name, check_text, finding_from_row
from core.store.db import loads_row, utc_now
from core.types import Finding


def _missing(finding_id: str) -> InputError:
    return InputError(f"there is no finding with id {finding_id!r} in this workspace (ids look like 'A12-...'); "
                      "it may belong to a deleted analysis. Reload the analysis and pick it again.")


class ReviewMixin(WorkspaceBase):
    """Review state of findings and its history."""

    def review_finding(self, finding_id: str, *, analyst: str, status: str | None = None, grade: str | None = None,
                       notes: str | None = None) -> Finding:
        """Record an analyst's decision on a finding and return the finding in its new state.

        ``status``: unreviewed | confirmed | rejected; ``grade``: the damage grade (any label of the finding's
        grade scale); ``notes``: replaces the notes. Fields left None are unchanged. One audit row per call keeps
        who, when (UTC) and the values before and after. Confirming sets ``det_method`` to "semi-automatic
        extraction" (detector output checked by a person); un-confirming sets it back to "automatic extraction".
        """
        check_text(finding_id, "finding id", max_len=300, allow_empty=False)
        analyst = check_name(analyst, "analyst name", max_len=200)
        if status is None and grade is None and notes is None:
            raise InputError("nothing to record: give a status, a grade or notes.")
        if status is not None and status not in REVIEW_STATUSES:
            raise InputError(f"review status must be one of {', '.join(REVIEW_STATUSES)}; got {status!r}.")
        if grade is not None:
            check_text(grade, "grade", max_len=100, allow_empty=False)
        if notes is not None:
            check_text(notes, "notes", max_len=20000)
        now = utc_now()
        with self._db.write() as conn:
            row = conn.execute("SELECT * FROM findings WHERE id=?", (finding_id,)).fetchone()
            if row is None:
                raise _missing(finding_id)
            new_status = row["review_status"] if status is None else status
            det = row["det_method"]
            if status == "confirmed":
                det = DET_CONFIRMED
            elif status is not None and det == DET_CONFIRMED:
                det = DET_AUTOMATIC
            conn.execute(
                "UPDATE findings SET review_status=?, grade=?, notes=?, analyst=?, det_method=?, reviewed_at=? "
                "WHERE id=?",
                (new_status, row["grade"] if grade is None else grade, row["notes"] if notes is None else notes,
                 analyst, det, now, finding_id))
            conn.execute(
                "INSERT INTO reviews(finding_id, analyst, at, status_before, status_after, grade_before, grade_after, "
                "notes_before, notes_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (finding_id, analyst, now,
                 None if status is None else row["review_status"], status,
                 None if grade is None else row["grade"], grade,
                 None if notes is None else row["notes"], notes))
            updated = conn.execute("SELECT * FROM findings WHERE id=?", (finding_id,)).fetchone()
        return finding_from_row(updated)

    def review_history(self, finding_id: str) -> list[dict]:
        """Every review of a finding, oldest first: id, finding_id, analyst, at (UTC ISO 8601) and
        ``<field>_before`` / ``<field>_after`` for status, grade and notes (both None when a call left the field
        unchanged)."""
        check_text(finding_id, "finding id", max_len=300, allow_empty=False)
        with self._db.snapshot() as conn:
            if conn.execute("SELECT 1 FROM findings WHERE id=?", (finding_id,)).fetchone() is None:
                raise _missing(finding_id)
            rows = conn.execute("SELECT * FROM reviews WHERE finding_id=? ORDER BY id", (finding_id,)).fetchall()
        return [loads_row(r) for r in rows]  # type: ignore[misc]

    def get_finding(self, finding_id: str) -> Finding:
        """One finding in its current review state."""
        check_text(finding_id, "finding id", max_len=300, allow_empty=False)
        rows = self._db.query("SELECT * FROM findings WHERE id=?", (finding_id,))
        if not rows:
            raise _missing(finding_id)
        return finding_from_row(rows[0])

    def finding_analysis(self, finding_id: str) -> dict[str, Any]:
        """Where a finding lives: ``{"analysis_id", "case_id", "input_name"}``."""
        rows = self._db.query(
            "SELECT f.analysis_id, a.case_id, s.input_name FROM findings f JOIN analyses a ON a.id = f.analysis_id "
            "JOIN scenes s ON s.id = f.scene_id WHERE f.id=?", (finding_id,))
        if not rows:
            raise _missing(finding_id)
        return loads_row(rows[0])  # type: ignore[return-value]
