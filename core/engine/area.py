"""Area outputs of a run: one mosaic of the scenes' heatmaps and one set of findings merged across scene seams.

- :func:`write_mosaic`: ``area/area_heatmap.vrt`` (a GDAL VRT over the per-scene heatmap GeoTIFFs, NaN as nodata)
  and ``area/area_heatmap.tif`` (a Cloud Optimized GeoTIFF of it, deflate, sparse, with average overviews), in one
  CRS: the CRS most scenes use; scenes in another CRS (or rotated) are warped into it first (``area/warped/``). No
  mosaic when the scenes cover under :data:`MIN_MOSAIC_COVER` of the area's extent (scattered scenes).
- :func:`merge_findings`: a damaged block cut by a tile edge is found twice, once in each scene; findings of
  different scenes that touch across a seam (within two heatmap-preview pixels) become one area finding, its
  geometry the union, its area counted once, its grade the worst of its parts.
- :func:`write_area_outputs`: both, plus ``area/area_findings.geojson``, ``area_findings.csv`` and
  ``area_summary.json`` (scenes, CRS, extent, findings per grade before and after merging): the area's summary.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds
from shapely.geometry import mapping, shape
from shapely.ops import unary_union
from shapely.strtree import STRtree

from core.atomic_files import atomic_write_text
from core.detection.grading import get_scale
from core.errors import InputError
from core.geo import georef as geo
from core.i18n import _
from core.types import Finding, SceneResult

AREA_DIR = "area"
MOSAIC_VRT = "area_heatmap.vrt"
MOSAIC_COG = "area_heatmap.tif"
SEAM_PX = 2.0  #: findings of two scenes closer than this many heatmap-preview pixels are one finding
#: Below this share of the area's extent covered by scenes, no mosaic is made (merged findings and the summary
#: still are). Scattered scenes make a mostly empty mosaic: 4 xBD Harvey images spread over Houston span 10,654 ×
#: 54,762 px, 0.7 % of it data; its COG took 5.4 s (2.3 s with sparse blocks) and warping 14 scenes onto its grid
#: 1.4 s, against 0.5 s for the model on 4 images, for a picture that shows nothing the per-scene heatmaps on the
#: Map page do not.
MIN_MOSAIC_COVER = 0.05


def mosaic_path(out_dir: str | Path) -> Path | None:
    """The area mosaic COG of an analysis folder, None when the run wrote none."""
    p = Path(out_dir) / AREA_DIR / MOSAIC_COG
    return p if p.is_file() else None


def _mosaic_members(results: list[SceneResult]) -> list[tuple[SceneResult, Path]]:
    return [(r, Path(r.heatmap_path)) for r in results
            if r.error is None and r.georef is not None and r.heatmap_path is not None
            and Path(r.heatmap_path).is_file()]


def area_crs(results: list[SceneResult]) -> str:
    """The CRS most of the georeferenced scenes use (ties: the first scene's)."""
    crss = [r.georef.crs for r, _ in _mosaic_members(results) if r.georef is not None]
    if not crss:
        raise InputError(_("no georeferenced heatmap in this run: an area mosaic needs georeferenced scenes"))
    return Counter(crss).most_common(1)[0][0]


def _north_up(t: Affine) -> bool:
    return t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0


def _warp(src_path: Path, dst_path: Path, crs: str, res: float, anchor: tuple[float, float]) -> Path:
    """Reproject a heatmap into ``crs`` onto the mosaic's grid (pixel size ``res``, pixel corners on ``anchor`` +
    whole pixels), bilinear, NaN outside."""
    with rasterio.open(src_path) as src:
        dst_crs = CRS.from_user_input(crs)
        xmin, ymin, xmax, ymax = transform_bounds(src.crs, dst_crs, *src.bounds, densify_pts=21)
        k0, k1 = math.floor((xmin - anchor[0]) / res), math.ceil((xmax - anchor[0]) / res)
        m0, m1 = math.floor((anchor[1] - ymax) / res), math.ceil((anchor[1] - ymin) / res)
        tr = Affine(res, 0.0, anchor[0] + k0 * res, 0.0, -res, anchor[1] - m0 * res)
        prof = src.profile | {"crs": dst_crs, "transform": tr, "width": max(1, k1 - k0),
                              "height": max(1, m1 - m0), "nodata": float("nan")}
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(dst_path, "w", **prof) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.bilinear,
                      src_nodata=float("nan"), dst_nodata=float("nan"))
    return dst_path


def _on_grid(t: Affine, res: float, anchor: tuple[float, float]) -> bool:
    """Whether a north-up raster's pixels are the mosaic grid's (same size, corners on whole grid pixels)."""
    if not (_north_up(t) and math.isclose(t.a, res, rel_tol=1e-9) and math.isclose(-t.e, res, rel_tol=1e-9)):
        return False
    fx, fy = (t.c - anchor[0]) / res, (anchor[1] - t.f) / res
    return abs(fx - round(fx)) < 1e-3 and abs(fy - round(fy)) < 1e-3


def write_mosaic(results: list[SceneResult], out_dir: str | Path, *, cog: bool = True) -> dict[str, Any]:
    """Write the area VRT (and COG) of ``results``' heatmaps under ``out_dir/area``; returns what was written.

    The mosaic's grid is that of the scenes in the area CRS (finest pixel size); a scene off that grid (another
    CRS, rotated, another pixel size or offset by part of a pixel) is warped onto it first, so every VRT source is
    a plain block copy at whole-pixel offsets (a VRT resampling its sources on the fly is a hundred times slower).
    """
    members = _mosaic_members(results)
    crs = area_crs(results)
    dst_crs = CRS.from_user_input(crs)
    area = Path(out_dir) / AREA_DIR
    area.mkdir(parents=True, exist_ok=True)
    heads = []  # each heatmap's header, read once
    for r, path in members:
        with rasterio.open(path) as ds:
            heads.append((r, path, ds.crs, ds.transform, ds.width, ds.height, ds.bounds))
    boxes = [transform_bounds(h[2], dst_crs, *h[6], densify_pts=21) for h in heads]
    ext = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    cover = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) / max((ext[2] - ext[0]) * (ext[3] - ext[1]), 1e-9)
    if cover < MIN_MOSAIC_COVER:  # scattered scenes: a mosaic of mostly nothing (see MIN_MOSAIC_COVER)
        for stale in (area / MOSAIC_VRT, area / MOSAIC_COG):  # an earlier run's mosaic of other scenes
            stale.unlink(missing_ok=True)
        return {"vrt": None, "cog": None, "crs": crs, "bounds": list(ext), "scenes": len(members), "warped": [],
                "cover": round(cover, 4), "skipped": "sparse"}
    native = [t for _, _, c, t, _, _, _ in heads if c is not None and c == dst_crs and _north_up(t)]
    if native:
        ref = min(native, key=lambda t: (abs(t.a), -t.f, t.c))
        res, anchor = abs(ref.a), (ref.c, ref.f)
    else:  # every scene needs warping: the grid of the first, reprojected
        _, _, c0, _, w0, h0, b0 = heads[0]
        tr, _, _ = calculate_default_transform(c0, dst_crs, w0, h0, *b0)
        res, anchor = abs(tr.a), (tr.c, tr.f)
    sources: list[tuple[Path, Affine, int, int]] = []
    warped = []
    for r, path, c, t, w, h, _b in heads:
        if c is not None and c == dst_crs and _on_grid(t, res, anchor):
            sources.append((path, t, w, h))
            continue
        wp = _warp(path, area / "warped" / path.name, crs, res, anchor)
        warped.append(r.scene_name)
        with rasterio.open(wp) as ds:
            sources.append((wp, ds.transform, ds.width, ds.height))
    offs = [(round((t.c - anchor[0]) / res), round((anchor[1] - t.f) / res)) for _, t, _, _ in sources]
    x0, y0 = min(o[0] for o in offs), min(o[1] for o in offs)
    width = max(o[0] + s[2] for o, s in zip(offs, sources, strict=True)) - x0
    height = max(o[1] + s[3] for o, s in zip(offs, sources, strict=True)) - y0
    left, top = anchor[0] + x0 * res, anchor[1] - y0 * res
    right, bottom = left + width * res, top - height * res
    parts = []
    for (path, _, w, h), (ox, oy) in zip(sources, offs, strict=True):
        rel_s = os.path.relpath(Path(path).resolve(), area.resolve())
        parts.append(
            f'    <ComplexSource>\n      <SourceFilename relativeToVRT="1">{escape(rel_s)}</SourceFilename>\n'
            f'      <SourceBand>1</SourceBand>\n      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>\n'
            f'      <DstRect xOff="{ox - x0}" yOff="{oy - y0}" xSize="{w}" ySize="{h}"/>\n'
            "      <NODATA>nan</NODATA>\n    </ComplexSource>\n")
    wkt = CRS.from_user_input(crs).to_wkt()
    vrt = (f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n  <SRS>{escape(wkt)}</SRS>\n'
           f"  <GeoTransform>{left!r}, {res!r}, 0.0, {top!r}, 0.0, {-res!r}</GeoTransform>\n"
           '  <VRTRasterBand dataType="Float32" band="1">\n    <NoDataValue>nan</NoDataValue>\n'
           "    <Description>anomaly score (calibrated), area mosaic</Description>\n"
           + "".join(parts) + "  </VRTRasterBand>\n</VRTDataset>\n")
    vrt_path = area / MOSAIC_VRT
    atomic_write_text(vrt_path, vrt)
    out: dict[str, Any] = {"vrt": str(vrt_path), "cog": None, "crs": crs, "width": width, "height": height,
                           "resolution": res, "bounds": [left, bottom, right, top], "scenes": len(sources),
                           "warped": warped, "cover": round(min(cover, 1.0), 4)}
    if cog:
        cog_path = area / MOSAIC_COG
        tmp = cog_path.with_name(f".{cog_path.name}.part")
        with rasterio.Env(GDAL_CACHEMAX=256), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            rasterio.shutil.copy(str(vrt_path), str(tmp), driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES",
                                 OVERVIEWS="AUTO", RESAMPLING="AVERAGE", BLOCKSIZE="512", BIGTIFF="IF_SAFER",
                                 NUM_THREADS="2", SPARSE_OK="TRUE")  # blocks without a scene are not written
        tmp.replace(cog_path)
        with rasterio.open(cog_path) as ds:
            out["overviews"] = ds.overviews(1)
        out["cog"] = str(cog_path)
    return out


def _metric_crs(results: list[SceneResult], crs: str) -> str:
    if CRS.from_user_input(crs).is_projected:
        return crs
    b = [r.bounds_wgs84 for r in results if r.bounds_wgs84]
    lon = float(np.mean([(x[0] + x[2]) / 2 for x in b])) if b else 0.0
    lat = float(np.mean([(x[1] + x[3]) / 2 for x in b])) if b else 0.0
    return geo.utm_crs_for(lon, lat)


def _coords(tr: Transformer) -> Any:
    def f(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return f


def merge_findings(results: list[SceneResult]) -> list[dict[str, Any]]:
    """Findings of the area with those that touch across scene seams merged (see module doc). Each: id, parts
    (finding ids), scenes, grade, grade_scale, score_max, score_mean, threshold, area_m2, centroid_lat/lon, mgrs,
    geometry (GeoJSON, WGS84). Findings without a geometry (scenes not georeferenced) are left out."""
    ok = [r for r in results if r.error is None and r.georef is not None]
    items: list[tuple[SceneResult, Finding]] = [(r, f) for r in ok for f in r.findings if f.geometry]
    if not items:
        return []
    metric = _metric_crs(ok, area_crs(ok) if _mosaic_members(ok) else "EPSG:4326")
    fwd = _coords(Transformer.from_crs("EPSG:4326", metric, always_xy=True))
    back = _coords(Transformer.from_crs(metric, "EPSG:4326", always_xy=True))
    geoms = [shapely.transform(shape(f.geometry), fwd).buffer(0) for _, f in items]
    tol = [SEAM_PX * float(r.meta.get("preview_scale", 1.0) or 1.0) * float(r.gsd_m or 1.0) for r, _ in items]
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = STRtree(geoms)
    for i, g in enumerate(geoms):
        for j in tree.query(g.buffer(tol[i])):
            j = int(j)
            if j <= i or items[i][0].scene_name == items[j][0].scene_name:
                continue  # within a scene the stitched heatmap already joined what belongs together
            if g.distance(geoms[j]) <= max(tol[i], tol[j]):
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(find(i), []).append(i)
    out = []
    for n, members in enumerate(sorted(groups.values(), key=lambda m: min(m)), start=1):
        fs = [items[i][1] for i in members]
        t = max(tol[i] for i in members)
        union = unary_union([geoms[i].buffer(t) for i in members]).buffer(-t) if len(members) > 1 else geoms[members[0]]
        if union.is_empty:
            union = unary_union([geoms[i] for i in members])
        scale = get_scale(fs[0].grade_scale)
        order = [g.key for g in scale.grades()]  # most severe first
        grade = min((f.grade for f in fs), key=lambda k: order.index(k) if k in order else len(order))
        weights = [max(f.area_px, 1.0) for f in fs]
        wgs = shapely.transform(union, back)
        c = wgs.centroid
        out.append({"id": f"AREA-f{n}", "parts": [f.id for f in fs],
                    "scenes": sorted({items[i][0].scene_name for i in members}), "grade": grade,
                    "grade_scale": fs[0].grade_scale, "score_max": max(f.score_max for f in fs),
                    "score_mean": float(np.average([f.score_mean for f in fs], weights=weights)),
                    "threshold": max(f.threshold for f in fs), "area_m2": float(union.area),
                    "centroid_lat": float(c.y), "centroid_lon": float(c.x), "mgrs": geo.to_mgrs(c.y, c.x),
                    "geometry": mapping(wgs)})
    return out


CSV_FIELDS = ("id", "grade", "grade_scale", "score_max", "score_mean", "threshold", "area_m2", "centroid_lat",
              "centroid_lon", "mgrs", "scenes", "parts")


def write_area_outputs(results: list[SceneResult], out_dir: str | Path, *, cog: bool = True,
                       engine: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Mosaic, merged findings and the area summary of a run (see module doc); None when fewer than two scenes
    are georeferenced (one scene is its own area: its outputs say it all)."""
    if len(_mosaic_members(results)) < 2:
        return None
    area = Path(out_dir) / AREA_DIR
    mosaic = write_mosaic(results, out_dir, cog=cog)
    merged = merge_findings(results)
    fc = {"type": "FeatureCollection",
          "features": [{"type": "Feature", "geometry": m["geometry"],
                        "properties": {k: v for k, v in m.items() if k != "geometry"}} for m in merged]}
    atomic_write_text(area / "area_findings.geojson", json.dumps(fc))
    with open(area / "area_findings.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for m in merged:
            w.writerow({k: ";".join(m[k]) if isinstance(m[k], list) else m[k] for k in CSV_FIELDS})
    ok = [r for r in results if r.error is None]
    scene_findings = [f for r in ok for f in r.findings]
    bounds = [r.bounds_wgs84 for r in ok if r.bounds_wgs84]
    summary = {
        "scenes": len(results), "analysed": len(ok), "failed": [r.scene_name for r in results if r.error],
        "crs": mosaic["crs"], "mosaic": {k: (Path(v).name if k in ("vrt", "cog") and v else v)
                                         for k, v in mosaic.items()},
        "extent_wgs84": [min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds),
                         max(b[3] for b in bounds)] if bounds else None,
        "findings": {"per_scene": len(scene_findings), "merged": len(merged),
                     "joined_across_seams": sum(1 for m in merged if len(m["scenes"]) > 1),
                     "by_grade": dict(Counter(m["grade"] for m in merged))},
        "area_m2_flagged": float(sum(m["area_m2"] for m in merged)), "engine": engine or {},
    }
    atomic_write_text(area / "area_summary.json", json.dumps(summary, indent=2, default=str))
    return summary
