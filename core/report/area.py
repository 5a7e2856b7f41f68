"""The area of a multi-scene analysis as the report states it: one extent, one mosaic, one set of findings.

An analysis of two or more georeferenced scenes (tiles of one event) writes an area mosaic and findings merged
across scene seams (:mod:`core.engine.area`). The report recomputes the merge from the scenes it is given, so the
analysts' reviews count: rejected findings are left out and edited grades are used; a damaged block cut by a tile
seam is one area finding, counted once. :func:`area_of` builds the :class:`AreaSection`; :func:`write_area_csv`
and :func:`write_area_geojson` export its findings (the PDF section is :mod:`core.report.area_pdf`).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from pyproj.exceptions import CRSError, ProjError
from shapely.geometry import Polygon, shape
from shapely.ops import unary_union

from core.engine.area import AREA_DIR, MOSAIC_COG, MOSAIC_VRT, merge_findings
from core.errors import CoreError
from core.geo.georef import edge_pixels, pixel_to_crs, utm_crs_for
from core.report._io import atomic_output
from core.report.context import grade_key, grade_label, grade_rank, is_confirmed, is_rejected
from core.report.tables import clean_geometry, neutralise_cell
from core.types import SceneResult

log = logging.getLogger(__name__)

#: Columns of area_findings.csv (and the GeoJSON properties), in order.
AREA_COLUMNS = ("obj_id", "area_finding_id", "grade", "grade_scale", "score_max", "score_mean", "threshold",
                "area_m2", "centroid_lat", "centroid_lon", "mgrs", "n_scenes", "scenes", "n_parts", "parts",
                "confirmed_parts")
_NUMERIC = {"obj_id", "score_max", "score_mean", "threshold", "area_m2", "centroid_lat", "centroid_lon", "n_scenes",
            "n_parts", "confirmed_parts"}


@dataclass
class AreaSection:
    """What the report says about the whole area (see module doc)."""

    crs: str  #: the mosaic's CRS (the one most scenes use)
    extent_wgs84: tuple[float, float, float, float]  #: west, south, east, north of the georeferenced scenes
    area_m2: float | None  #: ground area covered by the scenes' footprints (overlaps counted once)
    scenes: list[str]  #: the georeferenced scenes the area is made of
    findings: list[dict[str, Any]] = field(default_factory=list)  #: merged, counted findings, worst grade first
    per_scene: int = 0  #: counted per-scene findings with a geometry (before merging)
    rejected: int = 0  #: findings rejected by an analyst (not merged, not counted)
    mosaic: Path | None = None  #: the mosaic heatmap (COG, else VRT) written by the analysis, if any
    #: share of the area's extent the scenes cover, when the analysis made no mosaic because they lie far apart
    sparse_cover: float | None = None

    @property
    def joined(self) -> int:
        """Area findings made of parts from more than one scene (joined across a seam)."""
        return sum(1 for f in self.findings if len(f["scenes"]) > 1)

    def by_grade(self) -> list[tuple[str, int, float]]:
        """(grade label, area findings, their area m²) per grade, most severe first."""
        counts: Counter[str] = Counter()
        areas: dict[str, float] = {}
        scale: dict[str, str] = {}
        for f in self.findings:
            k = grade_key(f["grade"])
            counts[k] += 1
            areas[k] = areas.get(k, 0.0) + float(f["area_m2"])
            scale.setdefault(k, f["grade_scale"])
        keys = sorted(counts, key=lambda k: (grade_rank(k, scale[k]), k))
        return [(grade_label(k, scale[k]), counts[k], areas[k]) for k in keys]


def _footprint(sr: SceneResult, to_metric: Transformer) -> Polygon | None:
    g = sr.georef
    if g is None or sr.width <= 0 or sr.height <= 0:
        return None
    cols, rows = edge_pixels(sr.width, sr.height)
    try:
        xs, ys = pixel_to_crs(g, cols, rows)
        mx, my = to_metric.transform(np.asarray(xs, float), np.asarray(ys, float))
    except Exception:  # noqa: BLE001 - a broken CRS means "no area", never a failed report
        return None
    if not (np.isfinite(mx).all() and np.isfinite(my).all()):
        return None
    poly = Polygon(np.column_stack([mx, my])).buffer(0)
    return poly if not poly.is_empty else None


def _sparse_cover(out_dir: str | Path | None) -> float | None:
    """The scenes' cover of the area's extent when the analysis skipped the mosaic as sparse (its summary says)."""
    if out_dir is None:
        return None
    try:
        m = json.loads((Path(out_dir) / AREA_DIR / "area_summary.json").read_text(encoding="utf-8"))["mosaic"]
        return float(m["cover"]) if m.get("skipped") == "sparse" else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _mosaic_file(out_dir: str | Path | None) -> Path | None:
    if out_dir is None:
        return None
    area = Path(out_dir) / AREA_DIR
    return next((p for p in (area / MOSAIC_COG, area / MOSAIC_VRT) if p.is_file()), None)


def area_of(scenes: list[SceneResult], out_dir: str | Path | None = None) -> AreaSection | None:
    """The area section of an analysis of ``scenes`` (its output folder ``out_dir`` holds the mosaic), or None
    when fewer than two scenes are georeferenced (one scene is its own area: the per-scene sections say it all)
    or their georeferencing cannot be combined (logged; the per-scene report is still written)."""
    try:
        return _area_of(scenes, out_dir)
    except (CoreError, ValueError, CRSError, ProjError) as exc:
        log.warning("no area section: the scenes' georeferencing cannot be combined (%s)", exc)
        return None


def _area_of(scenes: list[SceneResult], out_dir: str | Path | None) -> AreaSection | None:
    geo = [r for r in scenes if r.error is None and r.georef is not None]
    if len(geo) < 2:
        return None
    bounds = [r.bounds_wgs84 for r in geo if r.bounds_wgs84]
    if not bounds:
        return None
    extent = (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds),
              max(b[3] for b in bounds))
    mosaic = _mosaic_file(out_dir)
    crs = _mosaic_crs(mosaic) or Counter(r.georef.crs for r in geo if r.georef is not None).most_common(1)[0][0]
    lon, lat = (extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2
    metric = utm_crs_for(lon, lat)
    area_m2 = None
    polys = []
    for r in geo:
        assert r.georef is not None
        fp = _footprint(r, Transformer.from_crs(r.georef.crs, metric, always_xy=True))
        if fp is not None:
            polys.append(fp)
    if polys:
        area_m2 = float(unary_union(polys).area)
    kept = [replace(r, findings=[f for f in r.findings if not is_rejected(f)]) for r in geo]
    merged = merge_findings(kept)
    by_id = {f.id: f for r in kept for f in r.findings}
    merged.sort(key=lambda m: (grade_rank(m["grade"], m["grade_scale"]), -_num(m["score_max"]), m["id"]))
    for n, m in enumerate(merged, start=1):
        m["obj_id"], m["id"] = n, f"AREA-f{n}"
        m["confirmed_parts"] = sum(1 for p in m["parts"] if p in by_id and is_confirmed(by_id[p]))
    return AreaSection(crs=crs, extent_wgs84=extent, area_m2=area_m2, scenes=[r.scene_name for r in geo],
                       findings=merged, per_scene=sum(1 for r in kept for f in r.findings if f.geometry),
                       rejected=sum(len(r.findings) - len(k.findings) for r, k in zip(geo, kept, strict=True)),
                       mosaic=mosaic, sparse_cover=None if mosaic is not None else _sparse_cover(out_dir))


def _num(v: object) -> float:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else -math.inf


def _mosaic_crs(path: Path | None) -> str | None:
    if path is None:
        return None
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as ds:
            return None if ds.crs is None else str(ds.crs.to_string())
    except RasterioError:
        return None


def area_rows(section: AreaSection) -> list[dict[str, Any]]:
    """One record per area finding with the :data:`AREA_COLUMNS`."""
    rows = []
    for m in section.findings:
        rows.append({"obj_id": m["obj_id"], "area_finding_id": m["id"], "grade": m["grade"],
                     "grade_scale": m["grade_scale"], "score_max": round(float(m["score_max"]), 4),
                     "score_mean": round(float(m["score_mean"]), 4), "threshold": round(float(m["threshold"]), 4),
                     "area_m2": round(float(m["area_m2"]), 1), "centroid_lat": round(float(m["centroid_lat"]), 7),
                     "centroid_lon": round(float(m["centroid_lon"]), 7), "mgrs": m["mgrs"],
                     "n_scenes": len(m["scenes"]), "scenes": ";".join(m["scenes"]), "n_parts": len(m["parts"]),
                     "parts": ";".join(m["parts"]), "confirmed_parts": m["confirmed_parts"]})
    return rows


def write_area_csv(section: AreaSection, path: str | Path, bom: bool = False) -> Path:
    """The area findings as UTF-8 CSV (text cells a spreadsheet would evaluate prefixed with a quote)."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\r\n")
            w.writerow(AREA_COLUMNS)
            for r in area_rows(section):
                w.writerow([("" if r[k] is None else repr(r[k]) if isinstance(r[k], float) else str(r[k]))
                            if k in _NUMERIC else neutralise_cell(str(r[k] or "")) for k in AREA_COLUMNS])
    return Path(path)


def write_area_geojson(section: AreaSection, path: str | Path) -> Path:
    """The area findings as an RFC 7946 FeatureCollection (WGS84), properties as in :func:`write_area_csv`."""
    feats = []
    for m, r in zip(section.findings, area_rows(section), strict=True):
        geom = clean_geometry(m["geometry"])
        if geom is not None:
            feats.append({"type": "Feature", "id": m["id"], "geometry": geom, "properties": r})
    fc: dict[str, Any] = {"type": "FeatureCollection", "features": feats}
    if feats:
        b = shapely.bounds(unary_union([shape(f["geometry"]) for f in feats]))
        fc["bbox"] = [round(float(v), 7) for v in b]
    text = json.dumps(fc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
