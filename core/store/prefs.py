"""Per-user preferences of a workspace (today: the interface language), kept beside the database.

A small JSON file ``preferences.json`` in the workspace folder: ``{"language": {"": "ko", "kim": "en"}}``, where
``""`` is the single analyst of a workspace without accounts. It is written atomically (a temporary file renamed
over it) under a lock. A file, not a table: preferences are per workspace, never part of a case archive, and need
no schema migration.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from core.i18n import normalise

PREFS_NAME = "preferences.json"
_LOCK = threading.Lock()


def _path(root: str | Path) -> Path:
    return Path(root) / PREFS_NAME


def _read(root: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(_path(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no preferences yet, or an unreadable file: the defaults apply
    return data if isinstance(data, dict) else {}


def get_language(root: str | Path, user: str | None) -> str | None:
    """The language ``user`` chose in the workspace at ``root`` (None = the single analyst), or None."""
    langs = _read(root).get("language")
    return normalise(langs.get(user or "")) if isinstance(langs, dict) else None


def set_language(root: str | Path, user: str | None, lang: str) -> None:
    """Remember ``lang`` for ``user`` (None = the single analyst). A workspace that cannot be written keeps the
    choice for this session only (no error: it is a preference)."""
    code = normalise(lang)
    if code is None:
        return
    with _LOCK:
        data = _read(root)
        langs = data.get("language")
        langs = dict(langs) if isinstance(langs, dict) else {}
        if langs.get(user or "") == code:
            return
        langs[user or ""] = code
        data["language"] = langs
        path = _path(root)
        tmp = path.with_name(f".{PREFS_NAME}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
