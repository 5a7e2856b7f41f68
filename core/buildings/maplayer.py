"""Buildings on the offline folium map: footprints coloured by grade, a tooltip naming each building (what a click
returns) and a popup with its grade, score and review."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.buildings.assess import Building
from core.buildings.labels import label_text
from core.detection.grading import get_scale
from core.errors import CoreError
from core.i18n import N_, _

#: The tooltip naming a building on the map, in the page's language (a click hands it back).
TOOLTIP = N_("Building {id}")


def building_tooltip(b: Building) -> str:
    """The tooltip text of a building on the map (a click hands it back, see :func:`clicked_building`)."""
    return _(TOOLTIP).format(id=b.building_id)


def _tooltip_id(text: str) -> str | None:
    """The building id in a tooltip drawn in this language or in English (the map may predate a switch)."""
    for template in {_(TOOLTIP), TOOLTIP}:
        head, _sep, tail = template.partition("{id}")
        if text.startswith(head) and text.endswith(tail) and len(text) > len(head) + len(tail):
            return text[len(head):len(text) - len(tail)]
    return None


def clicked_building(clicked: object, buildings: Iterable[Building] = ()) -> str | None:
    """The building id a map click refers to: the clicked footprint's tooltip, else the building under the clicked
    point (``clicked``: what streamlit-folium returns); None for anything else."""
    if not isinstance(clicked, dict):
        return None
    text = " ".join(str(clicked.get("last_object_clicked_tooltip") or "").split())
    if (bid := _tooltip_id(text)) is not None:
        return bid
    pt = clicked.get("last_object_clicked")
    if isinstance(pt, dict) and isinstance(pt.get("lat"), (int, float)) and isinstance(pt.get("lng"), (int, float)):
        from shapely.geometry import Point, shape

        p = Point(float(pt["lng"]), float(pt["lat"]))
        for b in buildings:
            if b.geometry is not None and shape(b.geometry).buffer(1e-9).contains(p):
                return b.building_id
    return None


def grade_colour(b: Building) -> tuple[str, str]:
    """(label, colour) of a building's grade."""
    try:
        g = get_scale(b.grade_scale).get(b.grade)
        return g.label, g.color
    except CoreError:
        return b.grade, "#a0aec0"


def buildings_layer(buildings: Iterable[Building], *, name: str | None = None) -> Any:
    """The located buildings as one folium GeoJSON layer (one feature collection: light however many buildings),
    coloured by grade, rejected ones dashed; None when none has a location. Pass it to
    :func:`core.mapping.webmap.build_map` (``layers=``) so the layer control knows it."""
    import folium

    feats = []
    for b in buildings:
        if b.geometry is None:
            continue
        label, colour = grade_colour(b)
        score = f"{b.score:.2f}" if b.score is not None else "n/a"
        feats.append({"type": "Feature", "geometry": b.geometry, "properties": {
            "tip": building_tooltip(b), "grade": _(label), "score": f"{score} ({_(b.score_kind)})",
            "confidence": f"{b.confidence:.0%}", "review": _(b.review_status),
            "label": label_text(b.label),
            "colour": colour, "rejected": b.review_status == "rejected"}})
    if not feats:
        return None

    def style(feature: dict[str, Any]) -> dict[str, Any]:
        p = feature["properties"]
        return {"color": "#718096" if p["rejected"] else p["colour"], "weight": 1.5, "fillColor": p["colour"],
                "fillOpacity": 0.15 if p["rejected"] else 0.55, "dashArray": "4" if p["rejected"] else None}

    fields = ["grade", "score", "confidence", "review", "label"]  # words the catalog holds (ui.buildings' table)
    return folium.GeoJson({"type": "FeatureCollection", "features": feats}, name=name or _("Buildings"),
                          style_function=style, tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False),
                          popup=folium.GeoJsonPopup(fields=["tip", *fields], aliases=["", *map(_, fields)]))
