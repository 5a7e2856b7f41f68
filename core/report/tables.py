"""Findings as a spreadsheet (CSV) and as GIS features (GeoJSON, RFC 7946), with the columns of :mod:`columns`."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.polygon import orient

from core.errors import ReportError
from core.i18n import _
from core.report._io import atomic_output
from core.report.columns import COLUMN_NAMES, NUMERIC_COLUMNS, finding_record
from core.report.context import ReportContext, is_rejected, ordered_findings
from core.types import Finding

#: Characters that make spreadsheet programs evaluate a cell (CSV / formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
_DECIMALS = {"lat": 7, "lon": 7, "area_m2": 2, "area_px": 1, "score_mean": 4, "score_max": 4, "threshold": 4,
             "confidence": 4, "sensor_gsd": 4}
_COORD_DECIMALS = 7  # ~1 cm in latitude: finer than any imagery we read

FindingsInput = ReportContext | Iterable[Finding]


def records(source: FindingsInput, include_rejected: bool = True) -> list[tuple[dict[str, Any], Finding]]:
    """Typed column records (see :data:`columns.FINDING_COLUMNS`) with their findings, in obj_id order."""
    if isinstance(source, ReportContext):
        source.validate()
        scene_of = {}
        for s in source.scenes:
            for f in s.findings:
                scene_of[id(f)] = s
        pairs = ordered_findings(source.findings())
        out = [(finding_record(i, f, scene_of.get(id(f)), source.model_info), f) for i, f in pairs]
    elif isinstance(source, (str, bytes, Path)) or not isinstance(source, Iterable):
        raise ReportError(_("expected a ReportContext or a list of findings, got {name}").format(
                              name=type(source).__name__))
    else:
        out = [(finding_record(i, f), f) for i, f in ordered_findings(source)]
    if not include_rejected:
        out = [(r, f) for r, f in out if not is_rejected(f)]
    for r, _f in out:
        for k, d in _DECIMALS.items():
            if r[k] is not None:
                r[k] = round(r[k], d)
    return out


def neutralise_cell(text: str) -> str:
    """Prefix a text cell with a single quote when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _csv_cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if name in NUMERIC_COLUMNS:
        return str(int(value)) if isinstance(value, int) else repr(float(value))
    return neutralise_cell(str(value))


def write_csv(ctx_or_findings: FindingsInput, path: str | Path, bom: bool = False,
              include_rejected: bool = True) -> Path:
    """Write the findings table as UTF-8 CSV (``bom=True`` adds a BOM so Excel detects UTF-8); returns ``path``.

    Numeric columns are plain numbers; every text cell that a spreadsheet would evaluate (starting with
    = + - @ tab CR LF) is prefixed with a single quote. Rejected findings are included with
    ``review_status=rejected`` unless ``include_rejected`` is False.
    """
    rows = records(ctx_or_findings, include_rejected)
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\r\n")
            w.writerow(COLUMN_NAMES)
            for r, _ in rows:
                w.writerow([_csv_cell(k, r[k]) for k in COLUMN_NAMES])
    return Path(path)


def _round_coords(obj: Any) -> Any:
    if isinstance(obj, (list, tuple)):
        if obj and isinstance(obj[0], (int, float)):
            return [round(float(v), _COORD_DECIMALS) for v in obj]
        return [_round_coords(o) for o in obj]
    return obj


def clean_geometry(geometry: Any) -> dict[str, Any] | None:
    """RFC 7946 form of a finding's geometry, or None when it cannot be used.

    Polygon / MultiPolygon in WGS84 lon/lat only; rings closed, exterior counter-clockwise and holes clockwise
    (right-hand rule), self-intersections repaired, coordinates rounded to 1e-7 degrees.
    """
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        return None
    try:
        geom = shape(geometry)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.ShapelyError):
        return None
    if geom.is_empty:
        return None
    coords = shapely.get_coordinates(geom)
    if not (len(coords) and all(math.isfinite(v) for v in coords.ravel())):
        return None
    if (abs(coords[:, 0]) > 180).any() or (abs(coords[:, 1]) > 90).any():
        return None
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        polys = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, (Polygon, MultiPolygon))]
        parts = [p for g in polys for p in getattr(g, "geoms", [g]) if not p.is_empty]
        if not parts:
            return None
        geom = parts[0] if len(parts) == 1 else MultiPolygon(parts)
    if isinstance(geom, Polygon):
        geom = orient(geom, sign=1.0)
    else:
        geom = MultiPolygon([orient(p, sign=1.0) for p in geom.geoms])
    out = mapping(geom)
    return {"type": out["type"], "coordinates": _round_coords(out["coordinates"])}


def feature_collection(source: FindingsInput,
                       include_rejected: bool = True) -> tuple[dict[str, Any], list[Finding]]:
    """(GeoJSON FeatureCollection, findings left out for lack of usable georeferencing)."""
    features, left_out = [], []
    for r, f in records(source, include_rejected):
        geom = clean_geometry(f.geometry)
        if geom is None:
            left_out.append(f)
            continue
        features.append({"type": "Feature", "id": r["finding_id"], "geometry": geom, "properties": r})
    fc: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if features:
        xy = [c for feat in features for c in shapely.get_coordinates(shape(feat["geometry"])).tolist()]
        fc["bbox"] = [round(min(c[0] for c in xy), 7), round(min(c[1] for c in xy), 7),
                      round(max(c[0] for c in xy), 7), round(max(c[1] for c in xy), 7)]
    return fc, left_out


def write_geojson(ctx_or_findings: FindingsInput, path: str | Path, include_rejected: bool = True) -> Path:
    """Write the georeferenced findings as an RFC 7946 FeatureCollection (WGS84 lon/lat, no ``crs`` member).

    Properties are the CSV columns with JSON types. Findings without usable georeferencing are left out (see
    :func:`feature_collection` to count them). Returns ``path``.
    """
    fc, _left_out = feature_collection(ctx_or_findings, include_rejected)
    text = json.dumps(fc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
