"""Analyst review of findings: every decision is committed the moment it is made and kept in an audit trail."""

from __future__ import annotations

from typing import Any

from core.errors import InputError, ReviewConflictError
from core.i18n import N_, _
from core.store.base import WorkspaceBase
from core.store.codec import DET_AUTOMATIC, DET_CONFIRMED, REVIEW_STATUSES, check_name, check_text, finding_from_row
from core.store.db import loads_row, utc_now
from core.types import Finding

#: ``reviews.outcome`` of a decision applied to the finding, and of one withdrawn after a review conflict.
OUTCOME_APPLIED = "applied"
OUTCOME_KEPT = "kept theirs"


def _missing(finding_id: str) -> InputError:
    return InputError(_("there is no finding with id {finding_id!r} in this workspace (ids look like 'A12-...'); "
                        "it may belong to a deleted analysis. Reload the analysis and pick it again.").format(
                            finding_id=finding_id))


class ReviewMixin(WorkspaceBase):
    """Review state of findings and its history."""

    def review_finding(self, finding_id: str, *, analyst: str, status: str | None = None, grade: str | None = None,
                       notes: str | None = None, expected_version: int | None = None) -> Finding:
        """Record an analyst's decision on a finding and return the finding in its new state.

        ``status``: unreviewed | confirmed | rejected; ``grade``: the damage grade (any label of the finding's
        grade scale); ``notes``: replaces the notes. Fields left None are unchanged. One audit row per call keeps
        who, when (UTC) and the values before and after. Confirming sets ``det_method`` to "semi-automatic
        extraction" (detector output checked by a person); un-confirming sets it back to "automatic extraction".

        ``expected_version``: the :meth:`review_version` the analyst's decision started from. When the finding has
        been reviewed since, nothing is saved and :class:`~core.errors.ReviewConflictError` says who changed what
        and when, so the analyst can keep that review (:meth:`keep_their_review`) or apply theirs on top of it
        (call again with the conflict's ``version``).
        """
        self._check_review(finding_id, analyst, status, grade, notes)
        analyst = check_name(analyst, N_("analyst name"), max_len=200)
        now = utc_now()
        with self._db.write() as conn:
            row = conn.execute("SELECT * FROM findings WHERE id=?", (finding_id,)).fetchone()
            if row is None:
                raise _missing(finding_id)
            if expected_version is not None:
                self._check_version(conn, finding_id, row, int(expected_version))
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

    @staticmethod
    def _check_review(finding_id: str, analyst: str, status: str | None, grade: str | None,
                      notes: str | None) -> None:
        check_text(finding_id, N_("finding id"), max_len=300, allow_empty=False)
        check_name(analyst, N_("analyst name"), max_len=200)
        if status is None and grade is None and notes is None:
            raise InputError(_("nothing to record: give a status, a grade or notes."))
        if status is not None and status not in REVIEW_STATUSES:
            raise InputError(_("review status must be one of {value}; got {status!r}.").format(
                                 value=', '.join(REVIEW_STATUSES), status=status))
        if grade is not None:
            check_text(grade, N_("grade"), max_len=100, allow_empty=False)
        if notes is not None:
            check_text(notes, N_("notes"), max_len=20000)

    @staticmethod
    def _version(conn: Any, finding_id: str) -> int:
        row = conn.execute("SELECT MAX(id) FROM reviews WHERE finding_id=?", (finding_id,)).fetchone()
        return int(row[0] or 0)

    def _check_version(self, conn: Any, finding_id: str, row: Any, expected: int) -> None:
        """Raise :class:`ReviewConflictError` when ``finding_id`` was reviewed after version ``expected``."""
        current = self._version(conn, finding_id)
        if current == expected:
            return
        since: list[dict[str, Any]] = [{k: r[k] for k in r.keys()} for r in conn.execute(
            "SELECT * FROM reviews WHERE finding_id=? AND id>? ORDER BY id", (finding_id, expected)).fetchall()]
        who = ", ".join(dict.fromkeys(f"{r['analyst']} at {str(r['at'])[:19].replace('T', ' ')} UTC" for r in since))
        raise ReviewConflictError(
            _("{finding_id} was reviewed by {value} after you opened it (now: {review_status}, grade {grade}); "
              "nothing of yours was saved. Keep their review, or apply yours on top of it.").format(
                finding_id=finding_id, value=who or 'someone else', review_status=row['review_status'],
                grade=row['grade']),
            finding=finding_from_row(row), since=since, version=current)

    def review_version(self, finding_id: str) -> int:
        """The finding's review version: the id of its latest audit row (0 before any review). A review saved with
        ``expected_version`` set to it fails if anyone reviews the finding in between."""
        check_text(finding_id, N_("finding id"), max_len=300, allow_empty=False)
        with self._db.snapshot() as conn:
            return self._version(conn, finding_id)

    def review_versions(self, analysis_id: int) -> dict[str, int]:
        """:meth:`review_version` of every finding of an analysis (finding id -> version)."""
        aid = self._require_analysis(analysis_id)
        rows = self._db.query(
            "SELECT f.id, COALESCE(MAX(r.id), 0) AS v FROM findings f LEFT JOIN reviews r ON r.finding_id = f.id "
            "WHERE f.analysis_id=? GROUP BY f.id", (aid,))
        return {str(r["id"]): int(r["v"]) for r in rows}

    def keep_their_review(self, finding_id: str, *, analyst: str, status: str | None = None,
                          grade: str | None = None, notes: str | None = None) -> None:
        """Record, after a :class:`~core.errors.ReviewConflictError`, that ``analyst`` kept the other analyst's
        review: the finding is unchanged and the trail keeps the decision ``analyst`` had proposed, with the
        outcome "kept theirs"."""
        self._check_review(finding_id, analyst, status, grade, notes)
        analyst = check_name(analyst, N_("analyst name"), max_len=200)
        with self._db.write() as conn:
            row = conn.execute("SELECT * FROM findings WHERE id=?", (finding_id,)).fetchone()
            if row is None:
                raise _missing(finding_id)
            conn.execute(
                "INSERT INTO reviews(finding_id, analyst, at, status_before, status_after, grade_before, grade_after, "
                "notes_before, notes_after, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (finding_id, analyst, utc_now(),
                 None if status is None else row["review_status"], status,
                 None if grade is None else row["grade"], grade,
                 None if notes is None else row["notes"], notes, OUTCOME_KEPT))

    def review_history(self, finding_id: str) -> list[dict[str, Any]]:
        """Every review of a finding, oldest first: id, finding_id, analyst, at (UTC ISO 8601) and
        ``<field>_before`` / ``<field>_after`` for status, grade and notes (both None when a call left the field
        unchanged), and ``outcome``: "applied", or "kept theirs" for a decision its analyst withdrew after a review
        conflict (:meth:`keep_their_review`)."""
        check_text(finding_id, N_("finding id"), max_len=300, allow_empty=False)
        with self._db.snapshot() as conn:
            if conn.execute("SELECT 1 FROM findings WHERE id=?", (finding_id,)).fetchone() is None:
                raise _missing(finding_id)
            rows = conn.execute("SELECT * FROM reviews WHERE finding_id=? ORDER BY id", (finding_id,)).fetchall()
        return [loads_row(r) for r in rows]  # type: ignore[misc]

    def get_finding(self, finding_id: str) -> Finding:
        """One finding in its current review state."""
        check_text(finding_id, N_("finding id"), max_len=300, allow_empty=False)
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
