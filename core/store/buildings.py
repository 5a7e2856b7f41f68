"""Buildings of an analysis in the workspace: the tool's record, the analyst's review and labels with their audit
trail, and the fitted few-label calibration (tables of schema version 4)."""

from __future__ import annotations

import json
from typing import Any

from core.errors import InputError, ReviewConflictError
from core.i18n import N_, _
from core.store.base import WorkspaceBase
from core.store.codec import REVIEW_STATUSES, check_name, check_text
from core.store.db import loads_row, utc_now

OUTCOME_APPLIED = "applied"
OUTCOME_KEPT = "kept theirs"  #: a decision its analyst withdrew after a review conflict


def building_ref(analysis_id: int, building_id: str) -> str:
    """The workspace id of a building: ``A<analysis>-B:<building_id>`` (unique across analyses)."""
    return f"A{int(analysis_id)}-B:{building_id}"


def _check_review(ref: str, analyst: str, status: str | None, grade: str | None, notes: str | None,
                  label: str | None, clear_label: bool) -> tuple[str, str | None]:
    """Check a building review's fields (:class:`InputError` says what is wrong); returns the analyst and label."""
    check_text(ref, N_("building id"), max_len=400, allow_empty=False)
    analyst = check_name(analyst, N_("analyst name"), max_len=200)
    if status is None and grade is None and notes is None and label is None and not clear_label:
        raise InputError(_("nothing to record: give a status, a grade, notes or a label."))
    if status is not None and status not in REVIEW_STATUSES:
        raise InputError(_("review status must be one of {value}; got {status!r}.").format(
            value=", ".join(REVIEW_STATUSES), status=status))
    if grade is not None:
        check_text(grade, N_("grade"), max_len=100, allow_empty=False)
    if notes is not None:
        check_text(notes, N_("notes"), max_len=20000)
    if label is not None:
        from core.buildings.labels import parse_label

        label = parse_label(label)
    return analyst, label


def _missing(ref: str) -> InputError:
    return InputError(_("there is no building {ref!r} in this workspace (ids look like 'A12-B:<footprint id>'); it "
                        "may belong to a deleted analysis. Reload the analysis and pick it again.").format(ref=ref))


def _merged(row: Any) -> dict[str, Any]:
    """A building's record with its review applied (``grade`` the analyst's when they set one)."""
    d: dict[str, Any] = json.loads(row["data_json"])
    d.update(review_status=row["review_status"], analyst=row["analyst"], notes=row["notes"], label=row["label"],
             ref=row["id"], reviewed_at=row["reviewed_at"])
    if row["analyst_grade"]:
        d["grade"] = row["analyst_grade"]
    return d


class BuildingsMixin(WorkspaceBase):
    """Per-building records, reviews, labels and calibration of analyses."""

    def save_buildings(self, analysis_id: int, buildings: list[dict[str, Any]], summary: dict[str, Any],
                       calibration: dict[str, Any] | None = None) -> None:
        """Store the buildings of an analysis (each a :meth:`core.buildings.Building.to_dict`): existing rows keep
        their review and label, buildings no longer present are removed; ``summary`` and ``calibration`` replace
        the analysis' building set."""
        aid = self._require_analysis(analysis_id)
        now = utc_now()
        with self._db.write() as conn:
            keep = set()
            for pos, b in enumerate(buildings):
                ref = building_ref(aid, str(b["building_id"]))
                keep.add(ref)
                conn.execute(
                    "INSERT INTO buildings(id, analysis_id, position, building_id, data_json) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET position=excluded.position, data_json=excluded.data_json",
                    (ref, aid, pos, str(b["building_id"]), json.dumps(b, allow_nan=False)))
            old = [r[0] for r in conn.execute("SELECT id FROM buildings WHERE analysis_id=?", (aid,)).fetchall()]
            conn.executemany("DELETE FROM buildings WHERE id=?", [(r,) for r in old if r not in keep])
            conn.execute(
                "INSERT INTO building_sets(analysis_id, summary_json, calibration_json, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(analysis_id) DO UPDATE SET summary_json=excluded.summary_json, "
                "calibration_json=excluded.calibration_json, updated_at=excluded.updated_at",
                (aid, json.dumps(summary), json.dumps(calibration) if calibration is not None else None, now))

    def buildings(self, analysis_id: int) -> list[dict[str, Any]]:
        """The buildings of an analysis in footprint order, reviews applied (``ref`` is the workspace id)."""
        aid = self._require_analysis(analysis_id)
        rows = self._db.query("SELECT * FROM buildings WHERE analysis_id=? ORDER BY position", (aid,))
        return [_merged(r) for r in rows]

    def building_set(self, analysis_id: int) -> dict[str, Any] | None:
        """``{"summary", "calibration", "updated_at"}`` of an analysis' buildings (None when it has none)."""
        aid = self._require_analysis(analysis_id)
        rows = self._db.query("SELECT * FROM building_sets WHERE analysis_id=?", (aid,))
        if not rows:
            return None
        r = rows[0]
        return {"summary": json.loads(r["summary_json"]),
                "calibration": json.loads(r["calibration_json"]) if r["calibration_json"] else None,
                "updated_at": r["updated_at"]}

    def building_labels(self, analysis_id: int) -> dict[str, str]:
        """``building_id -> label`` of every labelled building of an analysis."""
        aid = self._require_analysis(analysis_id)
        rows = self._db.query("SELECT building_id, label FROM buildings WHERE analysis_id=? AND label IS NOT NULL",
                              (aid,))
        return {str(r["building_id"]): str(r["label"]) for r in rows}

    def review_building(self, ref: str, *, analyst: str, status: str | None = None, grade: str | None = None,
                        notes: str | None = None, label: str | None = None, clear_label: bool = False,
                        expected_version: int | None = None) -> dict[str, Any]:
        """Record an analyst's decision on a building (status, grade, notes, calibration label) with one audit row,
        as :meth:`~core.store.review.ReviewMixin.review_finding` does for findings; returns the building.
        ``clear_label`` removes its label. A stale ``expected_version`` raises :class:`ReviewConflictError`."""
        analyst, label = _check_review(ref, analyst, status, grade, notes, label, clear_label)
        now = utc_now()
        with self._db.write() as conn:
            row = conn.execute("SELECT * FROM buildings WHERE id=?", (ref,)).fetchone()
            if row is None:
                raise _missing(ref)
            if expected_version is not None:
                cur = self._building_version(conn, ref)
                if cur != int(expected_version):
                    since = [loads_row(r) for r in conn.execute(
                        "SELECT * FROM building_reviews WHERE building_ref=? AND id>? ORDER BY id",
                        (ref, int(expected_version))).fetchall()]
                    who = ", ".join(dict.fromkeys(
                        _("{analyst} at {at} UTC").format(analyst=r["analyst"], at=str(r["at"])[:19].replace("T", " "))
                        for r in since if r))
                    raise ReviewConflictError(
                        _("{ref} was reviewed by {who} after you opened it; nothing of yours was saved. Keep their "
                          "review, or apply yours on top.").format(ref=ref, who=who or _("someone else")),
                        finding=_merged(row), since=since, version=cur)  # type: ignore[arg-type]
            new_label = None if clear_label else (label if label is not None else row["label"])
            cur_grade = row["analyst_grade"] or json.loads(row["data_json"]).get("grade")
            conn.execute(
                "UPDATE buildings SET review_status=?, analyst_grade=?, notes=?, label=?, analyst=?, reviewed_at=? "
                "WHERE id=?",
                (row["review_status"] if status is None else status,
                 row["analyst_grade"] if grade is None else grade,
                 row["notes"] if notes is None else notes, new_label, analyst, now, ref))
            label_changed = clear_label or label is not None
            conn.execute(
                "INSERT INTO building_reviews(building_ref, analyst, at, status_before, status_after, grade_before, "
                "grade_after, notes_before, notes_after, label_before, label_after) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ref, analyst, now, None if status is None else row["review_status"], status,
                 None if grade is None else cur_grade, grade, None if notes is None else row["notes"], notes,
                 row["label"] if label_changed else None, new_label if label_changed else None))
            updated = conn.execute("SELECT * FROM buildings WHERE id=?", (ref,)).fetchone()
        return _merged(updated)

    def keep_their_building_review(self, ref: str, *, analyst: str, status: str | None = None,
                                   grade: str | None = None, notes: str | None = None, label: str | None = None,
                                   clear_label: bool = False) -> None:
        """Record, after a :class:`ReviewConflictError`, that ``analyst`` kept the other analyst's review of a
        building: the building is unchanged and its trail keeps the decision ``analyst`` had proposed, with the
        outcome "kept theirs" (as :meth:`~core.store.review.ReviewMixin.keep_their_review` does for findings)."""
        analyst, label = _check_review(ref, analyst, status, grade, notes, label, clear_label)
        with self._db.write() as conn:
            row = conn.execute("SELECT * FROM buildings WHERE id=?", (ref,)).fetchone()
            if row is None:
                raise _missing(ref)
            label_changed = clear_label or label is not None
            cur_grade = row["analyst_grade"] or json.loads(row["data_json"]).get("grade")
            conn.execute(
                "INSERT INTO building_reviews(building_ref, analyst, at, status_before, status_after, grade_before, "
                "grade_after, notes_before, notes_after, label_before, label_after, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ref, analyst, utc_now(), None if status is None else row["review_status"], status,
                 None if grade is None else cur_grade, grade, None if notes is None else row["notes"], notes,
                 row["label"] if label_changed else None, (None if clear_label else label) if label_changed else None,
                 OUTCOME_KEPT))

    @staticmethod
    def _building_version(conn: Any, ref: str) -> int:
        row = conn.execute("SELECT MAX(id) FROM building_reviews WHERE building_ref=?", (ref,)).fetchone()
        return int(row[0] or 0)

    def building_version(self, ref: str) -> int:
        """The building's review version (id of its latest audit row, 0 before any)."""
        with self._db.snapshot() as conn:
            return self._building_version(conn, ref)

    def building_history(self, ref: str) -> list[dict[str, Any]]:
        """Every review of a building, oldest first (like :meth:`review_history`, plus label before/after)."""
        check_text(ref, N_("building id"), max_len=400, allow_empty=False)
        with self._db.snapshot() as conn:
            if conn.execute("SELECT 1 FROM buildings WHERE id=?", (ref,)).fetchone() is None:
                raise _missing(ref)
            rows = conn.execute("SELECT * FROM building_reviews WHERE building_ref=? ORDER BY id", (ref,)).fetchall()
        return [loads_row(r) for r in rows]  # type: ignore[misc]

    def set_building_labels(self, analysis_id: int, labels: dict[str, str], *, analyst: str) -> int:
        """Label many buildings at once (e.g. from a labels CSV), one audit row each; returns how many changed."""
        aid = self._require_analysis(analysis_id)
        from core.buildings.labels import parse_label

        clean = {str(k): parse_label(v) for k, v in labels.items()}
        analyst = check_name(analyst, N_("analyst name"), max_len=200)
        now = utc_now()
        n = 0
        with self._db.write() as conn:
            rows = {str(r["building_id"]): r for r in conn.execute(
                "SELECT * FROM buildings WHERE analysis_id=?", (aid,)).fetchall()}
            unknown = [k for k in clean if k not in rows]
            if unknown:
                raise InputError(_("{n} labelled building id(s) are not footprints of analysis {aid}: {ids}; check "
                                   "the building_id column against buildings.csv").format(
                                       n=len(unknown), aid=aid,
                                       ids=", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")))
            for bid, lab in clean.items():
                r = rows[bid]
                if r["label"] == lab:
                    continue
                conn.execute("UPDATE buildings SET label=?, analyst=?, reviewed_at=? WHERE id=?",
                             (lab, analyst, now, r["id"]))
                conn.execute("INSERT INTO building_reviews(building_ref, analyst, at, label_before, label_after) "
                             "VALUES (?, ?, ?, ?, ?)", (r["id"], analyst, now, r["label"], lab))
                n += 1
        return n

    def building_rows(self, analysis_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                       dict[str, Any] | None]:
        """(buildings rows, building_reviews rows, building_sets row) of an analysis, as stored (for archives)."""
        aid = self._require_analysis(analysis_id)
        with self._db.snapshot() as conn:
            b = [loads_row(r) for r in conn.execute("SELECT * FROM buildings WHERE analysis_id=? ORDER BY position",
                                                    (aid,)).fetchall()]
            rv = [loads_row(r) for r in conn.execute(
                "SELECT r.* FROM building_reviews r JOIN buildings b ON b.id = r.building_ref WHERE b.analysis_id=? "
                "ORDER BY r.id", (aid,)).fetchall()]
            s = loads_row(conn.execute("SELECT * FROM building_sets WHERE analysis_id=?", (aid,)).fetchone())
        return b, rv, s  # type: ignore[return-value]
