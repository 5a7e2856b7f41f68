"""What a click on the Map page's streamlit-folium map refers to: streamlit-folium's payload is the dashboard's
business, so its parsing lives here and not in core."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from shapely.geometry import Point, shape

from core.mapping.webmap import finding_tooltip
from core.types import Finding, SceneResult


def clicked_finding(results: Sequence[SceneResult], clicked: Mapping[str, Any] | None) -> Finding | None:
    """The finding a streamlit-folium click refers to: by its tooltip text, else by the clicked point."""
    if not clicked:
        return None
    findings = [f for sr in results for f in sr.findings if f.geometry]
    tip = clicked.get("last_object_clicked_tooltip")
    if tip:
        for f in findings:
            if html.unescape(finding_tooltip(f)).strip() == str(tip).strip():
                return f
    pt = clicked.get("last_object_clicked")
    if isinstance(pt, Mapping) and isinstance(pt.get("lat"), (int, float)) and isinstance(pt.get("lng"),
                                                                                          (int, float)):
        p = Point(float(pt["lng"]), float(pt["lat"]))
        hits = [f for f in findings if shape(f.geometry).buffer(1e-9).contains(p)]
        if hits:
            return max(hits, key=lambda f: f.score_max if math.isfinite(f.score_max) else -math.inf)
    return None
