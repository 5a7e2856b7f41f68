"""A score, an EMS grade and a confidence per building footprint, from every map the analysis has.

For each analysed scene the footprints that overlap its rasters are rasterised once on its grid (in the raster's
CRS, :mod:`core.buildings.zonal`) and summarised on each map it has: the change heatmap of a pre/post pair
(``change_*``) and the post image's anomaly heatmap (``post_*``), both in calibrated units. A building is taken by
the first scene (in input order) where it has valid pixels; one that no scene covers is "not analysed".

Until an analyst calibrates, :func:`core.buildings.calibrate.apply_calibration` grades the buildings from the
prior read from all of them (:mod:`core.buildings.prior`: where the upper component of their scores' mixture takes
over). :func:`automatic_grade` (the 90th percentile of a building's scores on the primary map, graded with the
findings' bands and threshold, :func:`core.detection.grading.grade_for`) is the first grade every building gets
and the fallback when no prior can be read.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping

from core.buildings.footprints import Footprint, FootprintSet
from core.buildings.zonal import Zones, grid_gsd, inside, raster_grid, to_pixels
from core.detection.grading import confidence_for, get_scale, grade_for
from core.errors import CoreError
from core.i18n import N_
from core.types import SceneResult

#: Width of the context ring around each footprint, metres (pixels when the grid has no metric scale: 3 px).
RING_M = 3.0
RING_PX_DEFAULT = 3.0
#: What ``score`` means before and after an analyst calibration.
SCORE_AUTOMATIC = N_("automatic")
SCORE_CALIBRATED = N_("calibrated")
SCORE_PRIOR = N_("prior")  #: P(damaged) under the prior read from all buildings' scores, before any label
MAPS = ("change", "post")  #: map kinds, primary first when present
FEATURES = tuple(f"{m}_{s}" for m in MAPS for s in ("mean", "q90", "share", "ring"))


@dataclass
class Building:
    """One footprint with its statistics, score, grade and review state (JSON-safe through :meth:`to_dict`)."""

    building_id: str
    source: str
    scene_name: str | None = None
    geometry: dict[str, Any] | None = None  #: GeoJSON (Multi)Polygon, WGS84 lon/lat
    lat: float | None = None
    lon: float | None = None
    mgrs: str | None = None
    area_m2: float | None = None
    stats: dict[str, float | None] = field(default_factory=dict)  #: FEATURES and ``*_pixels``
    thresholds: dict[str, float] = field(default_factory=dict)  #: threshold of each map, calibrated units
    change_score: float | None = None  #: 90th percentile on the change heatmap
    post_score: float | None = None  #: 90th percentile on the post image's anomaly heatmap
    score: float | None = None  #: the score graded: primary-map q90, or P(damaged or worse) once calibrated
    score_kind: str = SCORE_AUTOMATIC
    grade: str = "not-analysed"
    auto_grade: str = "not-analysed"  #: the grade the tool gave (kept when an analyst changes ``grade``)
    confidence: float = 0.0
    grade_scale: str = "copernicus-ems"
    review_status: str = "unreviewed"
    analyst: str = ""
    notes: str = ""
    label: str | None = None  #: analyst label for calibration: "damaged", "not-damaged" or a grade key

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (non-finite numbers become None)."""
        out: dict[str, Any] = _clean(asdict(self))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Building:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def analysed(self) -> bool:
        """Whether any map covered the building."""
        return self.scene_name is not None and self.score is not None


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.floating, np.integer)):
        return _clean(obj.item())
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def scene_maps(sr: SceneResult) -> list[tuple[str, Path, float]]:
    """(kind, raster, threshold) of each map a scene result has, primary first."""
    from core.report.extraction import anomaly_threshold, change_meta

    out: list[tuple[str, Path, float]] = []
    if sr.change_path is not None and Path(sr.change_path).is_file():
        t = _f(change_meta(sr).get("threshold"))
        out.append(("change", Path(sr.change_path), t if t and t > 0 else 1.0))
    if sr.heatmap_path is not None and Path(sr.heatmap_path).is_file():
        t = anomaly_threshold(sr)
        out.append(("post", Path(sr.heatmap_path), t if t and t > 0 else 1.0))
    return out


def automatic_grade(b: Building, scale: str) -> None:
    """Grade ``b`` from its primary map's 90th percentile with the findings' bands (module docstring)."""
    primary = next((m for m in MAPS if b.stats.get(f"{m}_q90") is not None), None)
    b.score_kind = SCORE_AUTOMATIC
    if primary is None:
        b.score, b.confidence = None, 0.0
        b.grade = b.auto_grade = get_scale(scale).not_analysed.key
        return
    s, t = float(b.stats[f"{primary}_q90"] or 0.0), b.thresholds.get(primary, 1.0)
    b.score = s
    b.grade = b.auto_grade = grade_for(s, t, scale)
    c = confidence_for(s, t)
    b.confidence = c if s >= t else 1.0 - c


def _lonlat_props(b: Building, geom_ll: Any) -> None:
    from core.geo import georef as geo

    try:
        c = geom_ll.representative_point() if not geom_ll.centroid.within(geom_ll) else geom_ll.centroid
        b.lon, b.lat = float(c.x), float(c.y)
        b.mgrs = geo.to_mgrs(b.lat, b.lon)
        polys = list(geom_ll.geoms) if geom_ll.geom_type == "MultiPolygon" else [geom_ll]
        b.area_m2 = float(sum(geo.polygon_area_m2(list(p.exterior.coords))
                              - sum(geo.polygon_area_m2(list(r.coords)) for r in p.interiors) for p in polys))
        b.geometry = mapping(geom_ll)
    except (CoreError, ValueError):
        b.geometry = None


@dataclass
class BuildingSet:
    """The buildings of an analysis and what was said while reading their footprints."""

    buildings: list[Building] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    grade_scale: str = "copernicus-ems"
    calibration: dict[str, Any] | None = None

    def counts(self) -> dict[str, int]:
        """Buildings per grade key (every grade of the scale, zeros included)."""
        c = Counter(b.grade for b in self.buildings)
        return {g.key: int(c.get(g.key, 0)) for g in get_scale(self.grade_scale).grades()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (without the buildings)."""
        return {"errors": self.errors, "notes": self.notes, "files": self.files, "grade_scale": self.grade_scale,
                "counts": self.counts(), "calibration": self.calibration, "n": len(self.buildings)}


def assess_buildings(results: list[SceneResult], fps: FootprintSet, *, grade_scale: str = "copernicus-ems",
                     ring_m: float = RING_M) -> BuildingSet:
    """Statistics, score, grade and confidence of every footprint of ``fps`` over the analysed ``results``."""
    get_scale(grade_scale)
    out = BuildingSet(errors=list(fps.errors), notes=list(fps.notes), files=list(fps.files), grade_scale=grade_scale)
    prints: list[Footprint] = fps.footprints
    n = len(prints)
    blds = [Building(building_id=fp.building_id, source=fp.source, grade_scale=grade_scale) for fp in prints]
    geoms = np.array([fp.geometry for fp in prints], dtype=object)
    is_px = np.array([fp.is_pixel for fp in prints], dtype=bool)
    images = [fp.image for fp in prints]
    for k in np.flatnonzero(~is_px):
        _lonlat_props(blds[k], geoms[k])
    taken = np.zeros(n, dtype=bool)
    for sr in results:
        if sr.error is not None or n == 0 or taken.all():
            continue
        maps = scene_maps(sr)
        if not maps:
            continue
        try:
            grid = raster_grid(maps[0][1])
        except CoreError as exc:
            out.errors.append(f"{sr.scene_name}: {exc}")
            continue
        cand = np.zeros(n, dtype=bool)
        px = np.empty(n, dtype=object)
        ll_idx = np.flatnonzero(~is_px & ~taken)
        if len(ll_idx) and grid.crs is not None:
            px[ll_idx] = to_pixels(geoms[ll_idx], "EPSG:4326", grid)
            cand[ll_idx] = inside(px[ll_idx], grid.width, grid.height)
        stem = Path(sr.scene_name).stem
        for k in np.flatnonzero(is_px & ~taken):
            if images[k] and Path(str(images[k])).stem == stem:
                px[k] = geoms[k]
                cand[k] = True
        idx = np.flatnonzero(cand)
        if not len(idx):
            continue
        gsd = grid_gsd(grid)
        ring_px = min(20.0, max(1.0, ring_m / gsd)) if gsd else RING_PX_DEFAULT
        zones = Zones(np.asarray(px[idx], dtype=object), grid.width, grid.height, ring_px)
        per_map = {}
        for kind, path, thr in maps:
            try:
                per_map[kind] = (zones.stats(path, thr), thr)
            except CoreError as exc:
                out.errors.append(f"{sr.scene_name}: {exc}")
        if not per_map:
            continue
        for j, k in enumerate(idx):
            valid = any(st["pixels"][j] > 0 for st, _ in per_map.values())
            if not valid:
                continue
            b = blds[k]
            b.scene_name = sr.scene_name
            for kind, (st, thr) in per_map.items():
                for s in ("mean", "q90", "share", "ring"):
                    b.stats[f"{kind}_{s}"] = _f(st[s][j])
                b.stats[f"{kind}_pixels"] = float(st["pixels"][j])
                b.thresholds[kind] = float(thr)
            b.change_score = b.stats.get("change_q90")
            b.post_score = b.stats.get("post_q90")
            if is_px[k] and sr.georef is not None:
                _pixel_lonlat(b, geoms[k], sr)
            taken[k] = True
    for b in blds:
        automatic_grade(b, grade_scale)
    out.buildings = blds
    return out


def _pixel_lonlat(b: Building, geom_px: Any, sr: SceneResult) -> None:
    from core.geo import georef as geo

    assert sr.georef is not None
    georef = sr.georef

    def f(xy: np.ndarray) -> np.ndarray:
        lon, lat = geo.pixel_to_lonlat(georef, xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    try:
        _lonlat_props(b, shapely.transform(geom_px, f))
    except CoreError:
        pass


# -- outputs ---------------------------------------------------------------------------------------------------
#: Columns of buildings.csv (and the GeoJSON properties), in order.
COLUMNS = ("building_id", "grade", "grade_label", "score", "score_kind", "confidence", "change_score",
           "post_score", "review_status", "analyst", "notes", "label", "auto_grade", "area_m2", "mgrs", "lat",
           "lon", "scene_name", "source", "grade_scale") + FEATURES
_NUMERIC = {"score", "confidence", "change_score", "post_score", "area_m2", "lat", "lon", *FEATURES}


def building_record(b: Building) -> dict[str, Any]:
    """The output columns of one building (see :data:`COLUMNS`)."""
    scale = get_scale(b.grade_scale)
    try:
        label = scale.get(b.grade).label
    except CoreError:
        label = b.grade
    rec: dict[str, Any] = {k: getattr(b, k, None) for k in COLUMNS if hasattr(b, k)}
    rec["grade_label"] = label
    for f in FEATURES:
        rec[f] = b.stats.get(f)
    for k in _NUMERIC:
        v = _f(rec.get(k))
        rec[k] = None if v is None else round(v, 7 if k in ("lat", "lon") else 4)
    return {k: rec.get(k) for k in COLUMNS}


def _cell(v: Any) -> str:
    from core.report.tables import neutralise_cell

    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return neutralise_cell(str(v))


def write_buildings(buildings: list[Building], out_dir: str | Path) -> tuple[Path, Path]:
    """``buildings.geojson`` (RFC 7946; buildings without a location left out) and ``buildings.csv`` in
    ``out_dir``; returns both paths."""
    from core.report._io import atomic_output

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    feats = [{"type": "Feature", "id": b.building_id, "geometry": b.geometry, "properties": building_record(b)}
             for b in buildings if b.geometry is not None]
    gj, cs = out / "buildings.geojson", out / "buildings.csv"
    with atomic_output(gj) as tmp:
        tmp.write_text(json.dumps({"type": "FeatureCollection", "features": _clean(feats)}, ensure_ascii=False,
                                  allow_nan=False, separators=(",", ":")), encoding="utf-8")
    with atomic_output(cs) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\r\n")
            w.writerow(COLUMNS)
            for b in buildings:
                r = building_record(b)
                w.writerow([_cell(r[k]) for k in COLUMNS])
    return gj, cs


def grade_counts(buildings: list[Building], scale: str = "copernicus-ems") -> dict[str, int]:
    """Buildings per grade key of ``scale`` (rejected ones are not counted), every grade listed."""
    c = Counter(b.grade for b in buildings if b.review_status != "rejected")
    return {g.key: int(c.get(g.key, 0)) for g in get_scale(scale).grades()}
