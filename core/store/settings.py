"""Per-case settings: small JSON values an analyst chose for a case (e.g. the Map page's offline basemaps), and the
case's finding counts as every page states them (:mod:`core.detection.verdict`: rejected findings are not counted)."""

from __future__ import annotations

import json
from typing import Any

from core.errors import InputError
from core.i18n import N_, _
from core.store.base import WorkspaceBase
from core.store.codec import check_id
from core.store.db import utc_now

#: Keys a case setting may have (one name for one thing): ``basemaps`` is a list of {"kind", "path", "name"}.
CASE_SETTING_KEYS = ("basemaps",)
_MAX_JSON = 64_000


class SettingsMixin(WorkspaceBase):
    """Read and write per-case settings (table ``case_settings``)."""

    def case_setting(self, case_id: int, key: str, default: Any = None) -> Any:
        """The value stored for ``key`` in case ``case_id``, else ``default``."""
        cid = check_id(case_id, N_("case id"))
        _check_key(key)
        rows = self._db.query("SELECT value_json FROM case_settings WHERE case_id=? AND key=?", (cid, key))
        if not rows:
            return default
        try:
            return json.loads(rows[0]["value_json"])
        except ValueError:
            return default

    def case_finding_counts(self, case_id: int) -> tuple[int, int]:
        """``(counted, rejected)`` findings of every analysis of the case (the rule of detection.verdict)."""
        cid = check_id(case_id, N_("case id"))
        rows = self._db.query(
            "SELECT SUM(f.review_status != 'rejected') AS counted, SUM(f.review_status = 'rejected') AS rejected "
            "FROM findings f JOIN analyses a ON a.id = f.analysis_id WHERE a.case_id=?", (cid,))
        return int(rows[0]["counted"] or 0), int(rows[0]["rejected"] or 0)

    def set_case_setting(self, case_id: int, key: str, value: Any, *, user: str | None = None) -> None:
        """Store ``value`` (JSON-serialisable, at most 64 kB as JSON) for ``key`` in case ``case_id``."""
        self.get_case(case_id)  # type: ignore[attr-defined]  # raises a clear error for an unknown case
        cid = check_id(case_id, N_("case id"))
        _check_key(key)
        text = json.dumps(value, ensure_ascii=False)
        if len(text) > _MAX_JSON:
            raise InputError(_("the case setting {key!r} is too large ({n} characters, at most {limit}); keep fewer "
                               "entries in it").format(key=key, n=len(text), limit=_MAX_JSON))
        with self._db.write() as conn:
            conn.execute("INSERT INTO case_settings(case_id, key, value_json, updated_at, updated_by) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT(case_id, key) DO UPDATE SET "
                         "value_json=excluded.value_json, updated_at=excluded.updated_at, "
                         "updated_by=excluded.updated_by", (cid, key, text, utc_now(), user))


def _check_key(key: str) -> None:
    if key not in CASE_SETTING_KEYS:
        raise InputError(_("unknown case setting {key!r}; known: {keys}").format(
            key=key, keys=", ".join(CASE_SETTING_KEYS)))
