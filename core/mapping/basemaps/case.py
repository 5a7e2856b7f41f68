"""A case's basemaps as the workspace remembers them (case setting ``basemaps``)."""

from __future__ import annotations

from typing import Any

from core.errors import InputError
from core.mapping.basemaps.layers import source_line
from core.mapping.basemaps.sources import WORLD, Basemap

SETTING = "basemaps"


def case_basemaps(ws: Any, case_id: int) -> list[dict[str, Any]]:
    """The case's basemaps as stored: ``[{"kind", "path", "name", "shown"}]``; the world layer, shown, comes first
    when the case has none yet (so the map is never blank). ``ws``: a :class:`core.store.Workspace`."""
    raw = ws.case_setting(case_id, SETTING)
    out: list[dict[str, Any]] = []
    for d in raw if isinstance(raw, list) else []:
        try:
            b = Basemap.from_dict(d)
        except InputError:
            continue
        out.append(b.to_dict() | {"shown": bool(d.get("shown", True))})
    if not any(d["kind"] == "world" for d in out):
        out.insert(0, WORLD.to_dict() | {"shown": True})
    return out


def shown_basemaps(ws: Any, case_id: int) -> list[Basemap]:
    """The case's basemaps that are switched on."""
    return [Basemap.from_dict(d) for d in case_basemaps(ws, case_id) if d["shown"]]


def case_sources(ws: Any, case_id: int) -> list[str]:
    """One line per shown basemap of the case (kind, name, file), for the report's sources."""
    return [source_line(b) for b in shown_basemaps(ws, case_id)]
