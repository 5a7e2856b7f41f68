"""Buildings on the offline folium map: footprints coloured by grade, a tooltip naming each building (what a click
returns) and a popup with its grade, score and review."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from core.buildings.assess import Building
from core.errors import CoreError
from core.grading import get_scale

TOOLTIP_PREFIX = "Building "


def building_tooltip(b: Building) -> str:
    """The tooltip text of a building on the map (a click hands it back, see :func:`clicked_building`)."""
    return f"{TOOLTIP_PREFIX}{b.building_id}"


def clicked_building(tooltip: object) -> str | None:
    """The building id of a clicked footprint's tooltip (None for anything else)."""
    text = str(tooltip or "").strip()
    return text[len(TOOLTIP_PREFIX):] if text.startswith(TOOLTIP_PREFIX) else None


def grade_colour(b: Building) -> tuple[str, str]:
    """(label, colour) of a building's grade."""
    try:
        g = get_scale(b.grade_scale).get(b.grade)
        return g.label, g.color
    except CoreError:
        return b.grade, "#a0aec0"


def add_buildings(fmap: Any, buildings: Iterable[Building], *, name: str = "Buildings") -> int:
    """Add the located buildings to ``fmap`` as one layer; returns how many were drawn."""
    import folium

    layer = folium.FeatureGroup(name=name, show=True)
    n = 0
    for b in buildings:
        if b.geometry is None:
            continue
        label, colour = grade_colour(b)
        rejected = b.review_status == "rejected"
        score = f"{b.score:.2f}" if b.score is not None else "n/a"
        popup = (f"<b>{escape(building_tooltip(b))}</b><br>{escape(label)} · score {score} ({escape(b.score_kind)})"
                 f"<br>confidence {b.confidence:.0%} · {escape(b.review_status)}"
                 + (f"<br>label: {escape(b.label)}" if b.label else ""))

        def style(_: Any, colour: str = colour, rejected: bool = rejected) -> dict[str, Any]:
            return {"color": "#718096" if rejected else colour, "weight": 1.5, "fillColor": colour,
                    "fillOpacity": 0.15 if rejected else 0.55, "dashArray": "4" if rejected else None}

        gj = folium.GeoJson({"type": "Feature", "geometry": b.geometry, "properties": {}}, style_function=style,
                            tooltip=building_tooltip(b))
        folium.Popup(popup, max_width=280).add_to(gj)
        gj.add_to(layer)
        n += 1
    layer.add_to(fmap)
    return n
