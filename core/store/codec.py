"""JSON encoding of what the workspace stores: plain dicts, ``SceneResult`` rows and ``Finding`` rows.

Stored JSON is exactly what was given (strings verbatim, NaN kept); numpy scalars/arrays and paths are converted
to plain values. Anything else that is not JSON-safe is refused with :class:`InputError` rather than pickled.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from core.errors import InputError
from core.file_names import clean_name
from core.i18n import _
from core.store.files import decode_path, encode_path
from core.types import Finding, SceneResult

REVIEW_STATUSES = ("unreviewed", "confirmed", "rejected")
#: Copernicus EMS "det_method" values: detector output, and detector output an analyst has confirmed.
DET_AUTOMATIC = "automatic extraction"
DET_CONFIRMED = "semi-automatic extraction"

_SCENE_PATH_FIELDS = ("heatmap_path", "overlay_path", "source_path", "change_path")
#: The path of a pair's pre-event image, kept in ``SceneResult.meta`` (see :func:`core.change.scene.analyze_pair`).
PRE_SOURCE = "pre_source"


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, PurePath):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=str)
    raise TypeError(_("{name} is not JSON-safe").format(name=type(o).__name__))


def dumps(value: Any, what: str) -> str:
    """JSON text of ``value``; :class:`InputError` naming ``what`` when it holds something that is not data."""
    try:
        return json.dumps(value, default=_default)
    except (TypeError, ValueError) as exc:
        raise InputError(_("{what} cannot be stored: {exc}. Pass plain numbers, strings, lists and dicts.").format(
                             what=_(what), exc=exc)) from exc


def loads(text: str | None, default: Any = None) -> Any:
    """Inverse of :func:`dumps` (None -> ``default``)."""
    return default if text is None else json.loads(text)


def _meta_paths(meta: dict[str, Any], convert: Callable[[str], str | None]) -> dict[str, Any]:
    """``meta`` with the file paths it keeps (the pre-event image, the change overlay) passed through ``convert``."""
    out = dict(meta)
    if isinstance(out.get(PRE_SOURCE), str) and out[PRE_SOURCE]:
        out[PRE_SOURCE] = convert(out[PRE_SOURCE])
    change = out.get("change")
    if isinstance(change, dict) and isinstance(change.get("overlay_path"), str) and change["overlay_path"]:
        out["change"] = {**change, "overlay_path": convert(change["overlay_path"])}
    return out


def scene_row(result: SceneResult, *, analysis_dir: Path, root: Path) -> str:
    """JSON of a ``SceneResult`` without its findings (those get rows of their own); paths stored portably."""
    d = result.to_dict()
    d.pop("findings", None)
    for name in _SCENE_PATH_FIELDS:
        d[name] = encode_path(getattr(result, name), analysis_dir=analysis_dir, root=root)
    if isinstance(d.get("meta"), dict):
        d["meta"] = _meta_paths(d["meta"], lambda v: encode_path(v, analysis_dir=analysis_dir, root=root))
    return dumps(d, f"scene result {result.scene_name!r}")


def scene_from_row(text: str, findings: list[Finding], *, analysis_dir: Path, root: Path) -> SceneResult:
    """Inverse of :func:`scene_row`, with the findings (already in their current review state)."""
    d = json.loads(text)
    for name in _SCENE_PATH_FIELDS:
        d[name] = decode_path(d.get(name), analysis_dir=analysis_dir, root=root)
    if isinstance(d.get("meta"), dict):
        d["meta"] = _meta_paths(d["meta"], lambda v: str(decode_path(v, analysis_dir=analysis_dir, root=root)))
    result = SceneResult.from_dict({**d, "findings": []})
    result.findings = findings
    return result


def finding_from_row(row: sqlite3.Row) -> Finding:
    """A ``Finding`` from its stored JSON with the current review columns laid over it."""
    d = json.loads(row["data_json"])
    d.update(id=row["id"], review_status=row["review_status"], grade=row["grade"], analyst=row["analyst"],
             notes=row["notes"], det_method=row["det_method"])
    return Finding.from_dict(d)


def check_text(value: Any, what: str, *, max_len: int, allow_empty: bool = True) -> str:
    """A string argument, refused with :class:`InputError` when it is not text, empty or too long."""
    if not isinstance(value, str):
        raise InputError(_("{what} must be text, got {name}.").format(what=_(what), name=type(value).__name__))
    if not allow_empty and not value.strip():
        raise InputError(_("{what} must not be empty.").format(what=_(what)))
    if len(value) > max_len:
        raise InputError(_("{what} is {value} characters long; the limit is {max_len}. Shorten it.").format(
                             what=_(what), value=len(value), max_len=max_len))
    if "\x00" in value:
        raise InputError(_("{what} contains a NUL character; remove it.").format(what=_(what)))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(_("{what} contains characters that are not valid Unicode text; retype it.").format(
                             what=_(what))) from None
    return value


def check_name(value: Any, what: str, *, max_len: int) -> str:
    """A name to store and show (case, input, scene, analyst, model): text, cleaned by
    :func:`core.file_names.clean_name` (no control, bidi-override or invisible characters), not empty once cleaned,
    at most ``max_len`` characters. Returns the cleaned name; :class:`InputError` otherwise."""
    if not isinstance(value, str):
        raise InputError(_("{what} must be text, got {name}.").format(what=_(what), name=type(value).__name__))
    name = clean_name(value, default="", max_len=max(len(value), 1))
    if not name:
        raise InputError(_("{what} must not be empty (control and invisible characters do not count).").format(
                             what=_(what)))
    return check_text(name, what, max_len=max_len)


def check_id(value: Any, what: str) -> int:
    """A positive integer row id, refused with :class:`InputError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise InputError(_("{what} must be a positive whole number, got {value!r}.").format(what=_(what), value=value))
    return int(value)


def check_fraction(value: Any, what: str) -> float:
    """A number in [0, 1], refused with :class:`InputError` otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(_("{what} must be a number between 0 and 1, got {value!r}.").format(
            what=_(what), value=value)) from None
    if not (0.0 <= v <= 1.0) or math.isnan(v):
        raise InputError(_("{what} must be between 0 and 1, got {v}.").format(what=_(what), v=v))
    return v
