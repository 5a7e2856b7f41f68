"""What the report needs of a building beyond its record: its outline on the scene's pixel grid, in the shape of a
:class:`~core.types.Finding`, so the report's image chips (:func:`core.report.chips.finding_panels`) can cut the
post-event image, the pre-event image and the heatmaps around it."""

from __future__ import annotations

import math

import numpy as np
from shapely.geometry import shape

from core.buildings.assess import Building
from core.errors import CoreError
from core.geo import georef as geo
from core.types import Finding, SceneResult


def building_outline(b: Building, sr: SceneResult) -> Finding | None:
    """The building's exterior ring in ``sr``'s pixels as a chip-drawing record (None without a location)."""
    if b.geometry is None or sr.georef is None:
        return None
    try:
        g = shape(b.geometry)
        poly = max(g.geoms, key=lambda p: p.area) if g.geom_type == "MultiPolygon" else g
        lon, lat = np.asarray(poly.exterior.coords).T
        cols, rows = geo.lonlat_to_pixel(sr.georef, lon, lat)
    except (CoreError, ValueError, AttributeError):
        return None
    cols, rows = np.asarray(cols, dtype=float), np.asarray(rows, dtype=float)
    if not (np.all(np.isfinite(cols)) and np.all(np.isfinite(rows))):
        return None
    bbox = (max(0, math.floor(cols.min())), max(0, math.floor(rows.min())), min(sr.width, math.ceil(cols.max())),
            min(sr.height, math.ceil(rows.max())))
    score = float(b.score) if b.score is not None else float("nan")
    return Finding(id=f"B:{b.building_id}", scene_name=sr.scene_name,
                   polygon_px=[(float(c), float(r)) for c, r in zip(cols, rows, strict=True)], bbox_px=bbox,
                   area_px=0.0, score_mean=score, score_max=score, threshold=float("nan"),
                   confidence=b.confidence, grade=b.grade, grade_scale=b.grade_scale)
