"""The findings table schema shared by the CSV, the GeoJSON properties and the package README.

Names follow Copernicus EMS vector products where a matching field exists (``obj_id``, ``damage_gra``,
``det_method``, ``notation``, ``or_src_id``, ``src_name``, ``src_date``, ``sensor_gsd``); the rest are ours.
The order and names are stable: append new columns at the end, never rename.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.i18n import N_, _
from core.report.context import grade_label, is_confirmed, is_rejected
from core.report.extraction import finding_kind
from core.types import Finding, SceneResult


@dataclass(frozen=True)
class Column:
    """One findings column: name, value kind ("int" | "float" | "str" | "bool") and meaning (English, marked for
    translation: shown with ``_()``)."""

    name: str
    kind: str
    description: str


#: The findings columns, in file order. Used by the CSV/GeoJSON writers and printed in README.txt.
FINDING_COLUMNS: tuple[Column, ...] = (
    Column("obj_id", "int", N_("EMS object id: 1..N, same number as '#' in the PDF (peak score order, rejected "
                               "last)")),
    Column("finding_id", "str", N_("stable finding id from the analysis (e.g. <scene>-F001)")),
    Column("damage_gra", "str", N_("EMS damage grade label (Destroyed / Damaged / Possibly damaged ...)")),
    Column("grade_key", "str", N_("machine value of the grade (destroyed, damaged, possibly-damaged ...)")),
    Column("grade_scale", "str", N_("grading scale of the grade: copernicus-ems, xview2-jds or unosat")),
    Column("det_method", "str", N_("EMS detection method: 'automatic extraction' until an analyst confirms")),
    Column("review_status", "str", N_("unreviewed | confirmed | rejected (rejected rows are not counted in the "
                                      "report)")),
    Column("notation", "str", N_("EMS notation: validation state and location quality in words")),
    Column("analyst", "str", N_("analyst who reviewed the finding")),
    Column("notes", "str", N_("analyst note (free text)")),
    Column("lat", "float", N_("centroid latitude, WGS84 decimal degrees (empty without georeferencing)")),
    Column("lon", "float", N_("centroid longitude, WGS84 decimal degrees (empty without georeferencing)")),
    Column("mgrs", "str", N_("centroid MGRS grid reference, 1 m precision")),
    Column("location_approx", "bool", N_("true when the location is approximate (drone footprint, fitted georef)")),
    Column("area_m2", "float", N_("area of the anomalous region in square metres (geodesic)")),
    Column("area_px", "float", N_("area of the region in image pixels")),
    Column("score_mean", "float", N_("mean calibrated score in the region, in the units of its heatmap (column "
                                     "heatmap): anomaly, 1 = 99th pct of normal pixels; change, 1 = 99th pct of "
                                     "no-change pixels")),
    Column("score_max", "float", N_("peak calibrated score in the region (units of column heatmap)")),
    Column("threshold", "float", N_("calibrated score threshold used to extract the region (units of column "
                                    "heatmap)")),
    Column("confidence", "float", N_("detector confidence 0..1 (margin of the score over the threshold)")),
    Column("scene_name", "str", N_("analysed scene (image) name")),
    Column("src_name", "str", N_("EMS source name: post-event image the finding was extracted from")),
    Column("src_date", "str", N_("capture date-time of the post-event image (ISO 8601) when known")),
    Column("sensor_gsd", "float", N_("ground sample distance of the post-event image, metres per pixel")),
    Column("or_src_id", "str", N_("EMS origin source id: image the geometry was delineated on (= src_name)")),
    Column("pre_src_name", "str", N_("pre-event image compared with, when any")),
    Column("pre_src_date", "str", N_("capture date-time of the pre-event image when known")),
    Column("model_name", "str", N_("detector model name")),
    Column("model_version", "str", N_("detector model version")),
    Column("model_sha256", "str", N_("SHA-256 of the model checkpoint file")),
    Column("processed_at", "str", N_("when the analysis ran (ISO 8601, UTC)")),
    Column("heatmap", "str", N_("heatmap the region was extracted from: 'change' (post- vs pre-event image) or "
                                "'anomaly' (the post-event image alone)")),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in FINDING_COLUMNS)
NUMERIC_COLUMNS: frozenset[str] = frozenset(c.name for c in FINDING_COLUMNS if c.kind in ("int", "float"))


def columns_doc() -> str:
    """Plain-text description of every column (for README.txt), in the language in use; names stay English."""
    width = max(len(c.name) for c in FINDING_COLUMNS)
    return "\n".join(f"  {c.name:<{width}}  {c.kind:<5}  {_(c.description)}" for c in FINDING_COLUMNS)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def notation(f: Finding) -> str:
    """EMS-style notation text for a finding."""
    if is_rejected(f):
        text = "rejected by analyst"
    elif is_confirmed(f):
        text = "confirmed by analyst"
    else:
        text = "automatic extraction, not field-validated"
    if f.geometry is None:
        text += "; no georeferencing"
    elif f.location_approximate:
        text += "; approximate location"
    return text


def finding_record(obj_id: int, f: Finding, scene: SceneResult | None = None,
                   model_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Typed values of every column for one finding (None where unknown).

    Blank provenance fields of the finding are filled from its ``scene`` (capture date, GSD) and from
    ``model_info`` (name, version, sha256) when given.
    """
    mi = model_info or {}
    det = f.det_method or "automatic extraction"
    if is_confirmed(f) and det == "automatic extraction":
        det = "automatic extraction, analyst-confirmed"
    src_name = f.source_name or (scene.source_path.name if scene and scene.source_path else "") or f.scene_name
    return {
        "obj_id": obj_id,
        "finding_id": f.id,
        "damage_gra": grade_label(f.grade, f.grade_scale),
        "grade_key": f.grade,
        "grade_scale": f.grade_scale,
        "det_method": det,
        "review_status": f.review_status,
        "notation": notation(f),
        "analyst": f.analyst,
        "notes": f.notes,
        "lat": _num(f.centroid_lat),
        "lon": _num(f.centroid_lon),
        "mgrs": f.mgrs or "",
        "location_approx": bool(f.location_approximate),
        "area_m2": _num(f.area_m2),
        "area_px": _num(f.area_px),
        "score_mean": _num(f.score_mean),
        "score_max": _num(f.score_max),
        "threshold": _num(f.threshold),
        "confidence": _num(f.confidence),
        "scene_name": f.scene_name,
        "src_name": src_name,
        "src_date": f.source_date or (scene.capture_time if scene else None) or "",
        "sensor_gsd": _num(f.source_gsd if f.source_gsd is not None else (scene.gsd_m if scene else None)),
        "or_src_id": src_name,
        "pre_src_name": f.pre_source_name or (scene.pre_scene_name if scene else None) or "",
        "pre_src_date": f.pre_source_date or "",
        "model_name": f.model_name or str(mi.get("name") or ""),
        "model_version": f.model_version or str(mi.get("version") or ""),
        "model_sha256": f.model_sha256 or str(mi.get("sha256") or ""),
        "processed_at": f.processed_at,
        "heatmap": finding_kind(f, scene),
    }
