"""Carrying reviews over when a scene's findings are extracted again (new threshold, resumed run).

Finding ids come from the extraction (``<scene>-F001`` ranks regions by score), so after re-extraction the same id
may name another region. Reviews therefore follow the *region*: each reviewed finding continues as the new
finding that overlaps it most (polygon IoU >= :data:`MIN_IOU`, one-to-one, best overlaps first), keeping its id,
review state and audit trail. A reviewed finding that no new finding overlaps is kept as it is: an analyst's
decision is never dropped by a re-run.
"""

from __future__ import annotations

from typing import Any

from shapely.geometry import Polygon, box

MIN_IOU = 0.3


def _shape(d: dict[str, Any]) -> Polygon | None:
    """The finding's region in pixel coordinates (its polygon, else its bounding box)."""
    try:
        if len(d.get("polygon_px") or []) >= 3:
            poly = Polygon([tuple(p[:2]) for p in d["polygon_px"]])
            if not poly.is_valid:
                poly = poly.buffer(0)
            if poly.area > 0:
                return poly
        c0, r0, c1, r1 = (float(v) for v in d.get("bbox_px") or (0, 0, 0, 0))
        return box(c0, r0, c1, r1) if c1 > c0 and r1 > r0 else None
    except (TypeError, ValueError):
        return None


def region_iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Intersection over union of two findings' regions (0 when either has none)."""
    sa, sb = _shape(a), _shape(b)
    if sa is None or sb is None or not sa.intersects(sb):
        return 0.0
    inter = sa.intersection(sb).area
    union = sa.area + sb.area - inter
    return float(inter / union) if union > 0 else 0.0


def match_reviewed(reviewed: list[tuple[str, dict[str, Any]]],
                   new: list[tuple[str, dict[str, Any]]]) -> dict[int, str]:
    """``{index in new: id of the reviewed finding it continues}``.

    ``reviewed`` and ``new`` are (stored id, finding dict) pairs. Pairs are taken best overlap first; on equal
    overlap a new finding with the same id wins, so saving an identical result again changes nothing.
    """
    pairs = []
    for i, (old_id, od) in enumerate(reviewed):
        for k, (new_id, nd) in enumerate(new):
            iou = region_iou(od, nd)
            if iou >= MIN_IOU:
                pairs.append((-iou, old_id != new_id, i, k, old_id))
    pairs.sort()
    out: dict[int, str] = {}
    used: set[str] = set()
    for _, _, _, k, old_id in pairs:
        if k not in out and old_id not in used:
            out[k] = old_id
            used.add(old_id)
    return out
