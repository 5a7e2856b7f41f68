"""Calibrated heatmap -> graded findings: threshold, clean up, connected regions, polygons, WGS84, m², MGRS.

Steps (:func:`extract_findings`):

1. pixels with a finite score ``>= threshold`` (NaN = nodata never qualifies);
2. morphological opening then closing (OpenCV, a ~3 full-res-px square, which keeps rectilinear shapes exact)
   to drop speckle and bridge 1-px gaps, then nodata is removed again so a closed region never reaches into it;
3. 8-connected regions smaller than ``min_area_px`` (full-res px) are dropped;
4. the outline of each region is traced with ``cv2.findContours``, pushed out half a pixel so it follows pixel
   edges (a one-pixel region is a square, not a point), simplified, and scaled to full-res pixel coordinates
   (``scores`` may be a preview in which one pixel is ``scale`` full-res pixels);
5. with a georef: a WGS84 GeoJSON Polygon (RFC 7946: lon/lat, closed rings, exterior counter-clockwise, holes
   - enclosed nodata or cold pixels - clockwise; ``polygon_px`` keeps the exterior ring only), the
   centroid's lat/lon and 1 m MGRS, and the area in m² (flagged pixel count × the geodesic area of one pixel at
   the centroid: metric, holes excluded, never square degrees);
6. grade and confidence from the region's 90th-percentile score (:mod:`core.detection.grading`), provenance copied in,
   findings sorted by score and given stable ids ``<scene-stem>-F001``, ``-F002``, ...
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

import cv2
import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.geometry.polygon import orient

from core.detection.findings_split import BLOCK_M2, BLOCK_PX, split_region
from core.detection.grading import confidence_for, get_scale, grade_for, region_statistic
from core.errors import GeoreferenceError, InputError
from core.geo import georef as geo
from core.i18n import _
from core.types import Finding, GeoRef

DEFAULT_MIN_AREA_PX = 64  #: smallest finding, full-res pixels (16 m² at 0.5 m GSD)
MORPH_PX = 3  #: cleanup kernel size in full-res pixels
COORD_DECIMALS = 7  #: GeoJSON lon/lat decimals (~1 cm)
_IMAGE_EXT = {".tif", ".tiff", ".jpg", ".jpeg", ".png", ".jp2", ".vrt", ".img", ".webp", ".bmp", ".gif", ".ntf"}
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
#: Finding fields that ``provenance`` may fill.
PROVENANCE_FIELDS = ("source_name", "source_date", "source_gsd", "pre_source_name", "pre_source_date",
                     "model_name", "model_version", "model_sha256", "processed_at", "det_method")


def safe_name(name: str, max_len: int = 80) -> str:
    """A file-name-safe stem for output files, whatever ``name`` was.

    Drops a directory part and a known image extension, keeps ASCII letters, digits, ``.``, ``_`` and ``-``
    (other characters become ``_``), never contains ``..`` or a path separator, is at most ``max_len`` characters
    and never empty. When characters were lost (non-ASCII, truncation, nothing left) a short hash of the original
    name is appended so that different inputs keep different names.
    """
    raw = str(name)
    base = re.split(r"[\\/]", raw)[-1]
    stem = base
    suffix = PurePosixPath(base).suffix
    if suffix.lower() in _IMAGE_EXT and len(base) > len(suffix):
        stem = base[: -len(suffix)]
    ascii_ = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    lossy = any(ord(ch) > 127 for ch in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(ch))
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_)
    s = re.sub(r"\.{2,}", ".", s)
    s = re.sub(r"_{2,}", "_", s).strip("._-")
    max_len = max(max_len, 16)
    if not s:
        s, lossy = "scene", True
    if lossy or len(s) > max_len:
        digest = hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        s = f"{s[: max_len - 9].rstrip('._-') or 'scene'}-{digest}"
    if s.split(".")[0].upper() in _RESERVED:
        s = f"{s}_"
    return s


def _largest_polygon(geom: Any) -> Polygon | None:
    if geom is None or geom.is_empty:
        return None
    if isinstance(geom, Polygon):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]
    polys += [p for g in getattr(geom, "geoms", []) if isinstance(g, MultiPolygon) for p in g.geoms]
    return max(polys, key=lambda p: p.area) if polys else None


def _outline(region: np.ndarray, ox: int, oy: int, simplify: float) -> Polygon:
    """Pixel-edge outline of one connected region (bool crop at offset ox, oy), in score-pixel units, with holes."""
    padded = np.pad(region.astype(np.uint8), 1)
    contours, _hier = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contour = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    poly = _buffered(contour, ox - 1, oy - 1)
    # holes: background pixels not 4-connected to the outside of the crop (nodata or cold pixels enclosed)
    outside = 1 - padded
    cv2.floodFill(outside, None, (0, 0), 0, flags=4)
    if outside.any():
        hcs, _hier = cv2.findContours(outside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        poly = poly.difference(shapely.union_all([_buffered(c, ox - 1, oy - 1) for c in hcs]))
    if simplify > 0:
        poly = poly.simplify(simplify, preserve_topology=True)
    out = _largest_polygon(poly)
    if out is None:  # cannot happen for a non-empty region; fall back to its bounding box
        ys, xs = np.nonzero(region)
        out = box(xs.min() + ox, ys.min() + oy, xs.max() + ox + 1, ys.max() + oy + 1)
    return out


def _buffered(contour: np.ndarray, ox: int, oy: int) -> Any:
    """A contour through boundary pixel centres, pushed out half a pixel so it follows the pixel edges."""
    pts = contour.reshape(-1, 2).astype(np.float64) + 0.5 + (ox, oy)
    if len(pts) == 1:
        geom: Any = Point(pts[0])
    elif len(pts) == 2 or cv2.contourArea(contour) == 0:
        geom = shapely.LineString(pts)
    else:
        geom = shapely.make_valid(Polygon(pts))
    return geom.buffer(0.5, cap_style="square", join_style="mitre")


def _geojson(georef: GeoRef, poly_px: Polygon) -> dict[str, Any]:
    def to_ll(ring: Any) -> np.ndarray:
        cols, rows = np.asarray(ring.coords).T
        lon, lat = geo.pixel_to_lonlat(georef, cols, rows)
        if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
            raise GeoreferenceError(_("a finding's outline cannot be expressed in longitude/latitude; check the "
                                      "scene's CRS and geotransform"))
        return np.column_stack([lon, lat])

    ll = _largest_polygon(shapely.make_valid(Polygon(to_ll(poly_px.exterior),
                                                     [to_ll(r) for r in poly_px.interiors])))
    if ll is None:
        raise GeoreferenceError(_("a finding's outline collapsed when projected to WGS84; check the georeference"))
    ll = orient(ll, sign=1.0)  # RFC 7946 right-hand rule: exterior counter-clockwise, holes clockwise
    rings = []
    for ring in (ll.exterior, *ll.interiors):
        pts = [[round(float(x), COORD_DECIMALS), round(float(y), COORD_DECIMALS)] for x, y in ring.coords]
        pts[-1] = pts[0]
        rings.append(pts)
    return {"type": "Polygon", "coordinates": rings}


def _pixel_area_m2(georef: GeoRef, col: float, row: float) -> float:
    c = np.array([col - 0.5, col + 0.5, col + 0.5, col - 0.5])
    r = np.array([row - 0.5, row - 0.5, row + 0.5, row + 0.5])
    lon, lat = geo.pixel_to_lonlat(georef, c, r)
    return geo.polygon_area_m2(list(zip(lon.tolist(), lat.tolist(), strict=True)))


def extract_findings(scores: np.ndarray, scale: float, threshold: float, *, georef: GeoRef | None,
                     scene_name: str, min_area_px: float = DEFAULT_MIN_AREA_PX,
                     grade_scale: str = "copernicus-ems", provenance: Mapping[str, Any] | None = None,
                     bands: Sequence[float] | None = None, full_size: tuple[int, int] | None = None,
                     max_findings: int | None = None, simplify_px: float = 0.75) -> list[Finding]:
    """Graded, georeferenced findings from a calibrated score raster (see the module docstring for the steps).

    ``scores``: calibrated scores (H×W, NaN = nodata), full resolution or a preview where one pixel is ``scale``
    full-res pixels. ``full_size`` is the full-res (width, height) used to clip outlines (default: the score
    shape × scale). ``bands`` overrides the scale's grade band edges (multiples of the threshold).
    ``max_findings`` keeps only the highest-scoring ones. ``simplify_px`` is the outline tolerance in score pixels.
    """
    s = np.asarray(scores, dtype=np.float32)
    if s.ndim != 2 or s.size == 0:
        raise InputError(_("scores must be a non-empty 2-D array, got shape {shape}").format(shape=s.shape))
    if not (math.isfinite(scale) and scale > 0):
        raise InputError(_("scale must be a positive number of full-res pixels per score pixel, got {scale}").format(
                             scale=scale))
    sc = get_scale(grade_scale)
    grade_for(1.0, threshold, sc, bands)  # validates threshold and bands before any work
    t = float(threshold)
    fw, fh = full_size if full_size is not None else (round(s.shape[1] * scale), round(s.shape[0] * scale))
    finite = np.isfinite(s)
    with np.errstate(invalid="ignore"):
        mask = (finite & (s >= t)).astype(np.uint8)
    k = round(MORPH_PX / scale)
    if k >= 2:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k | 1, k | 1))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
        mask &= finite.astype(np.uint8)
    n, labels, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    prov = dict(provenance or {})
    processed_at = str(prov.get("processed_at") or datetime.now(timezone.utc).isoformat(timespec="seconds"))
    common = {k_: prov[k_] for k_ in PROVENANCE_FIELDS if prov.get(k_) is not None}
    common.setdefault("source_name", scene_name)
    common["processed_at"] = processed_at
    frame = box(0, 0, fw, fh)
    raw: list[tuple[tuple[float, ...], dict[str, Any]]] = []
    for i in range(1, n):
        x0, y0, w0, h0, cnt0 = (int(v) for v in stats[i])
        if cnt0 * scale * scale < min_area_px:
            continue
        whole = labels[y0:y0 + h0, x0:x0 + w0] == i
        block_px = BLOCK_PX / scale ** 2  # a finding never covers more than a building block (findings_split)
        if georef is not None:
            px_m2 = _pixel_area_m2(georef, (cents[i][0] + 0.5) * scale, (cents[i][1] + 0.5) * scale) * scale ** 2
            block_px = BLOCK_M2 / px_m2 if px_m2 > 0 else block_px
        pieces = split_region(whole, s[y0:y0 + h0, x0:x0 + w0], block_px,
                              max(3, round(math.sqrt(block_px) / 2)))
        for region, px, py in pieces:
            rec = _piece(region, x0 + px, y0 + py, s, scale, t, sc, bands, simplify_px, frame, scene_name, common,
                         georef, min_area_px if len(pieces) == 1 else min_area_px / 4)
            if rec is not None:
                raw.append(rec)
    raw.sort(key=lambda r: r[0])
    if max_findings is not None:
        raw = raw[:max(0, int(max_findings))]
    stem = safe_name(scene_name)
    return [Finding(id=f"{stem}-F{j:03d}", **rec) for j, (_, rec) in enumerate(raw, start=1)]


def _piece(region: np.ndarray, x: int, y: int, s: np.ndarray, scale: float, t: float, sc: Any,
           bands: Sequence[float] | None, simplify_px: float, frame: Any, scene_name: str, common: dict[str, Any],
           georef: GeoRef | None, min_area_px: float) -> tuple[tuple[float, ...], dict[str, Any]] | None:
    """The finding record of one region (bool crop at column ``x``, row ``y`` of the score raster) with its sort
    key, or None when it is smaller than ``min_area_px`` full-res pixels or lies outside the frame."""
    h, w = region.shape
    area_px = float(region.sum()) * scale * scale
    if area_px == 0 or area_px < min_area_px:
        return None
    fw, fh = int(frame.bounds[2]), int(frame.bounds[3])
    ys, xs = np.nonzero(region)
    vals = s[y:y + h, x:x + w][region]
    stat = region_statistic(vals)
    poly = _outline(region, x, y, simplify_px)
    poly = _largest_polygon(affinity.scale(poly, scale, scale, origin=(0, 0)).intersection(frame))
    if poly is None:
        return None
    cx, cy = (x + float(xs.mean()) + 0.5) * scale, (y + float(ys.mean()) + 0.5) * scale
    rec: dict[str, Any] = dict(
        scene_name=scene_name,
        polygon_px=[(round(float(a), 2), round(float(b), 2)) for a, b in poly.exterior.coords],
        bbox_px=(max(0, math.floor(x * scale)), max(0, math.floor(y * scale)),
                 min(fw, math.ceil((x + w) * scale)), min(fh, math.ceil((y + h) * scale))),
        area_px=area_px, score_mean=float(vals.mean()), score_max=float(vals.max()), threshold=t,
        confidence=confidence_for(stat, t), grade=grade_for(stat, t, sc, bands), grade_scale=sc.key, **common)
    if georef is not None:
        rec["geometry"] = _geojson(georef, poly)
        lon, lat = geo.pixel_to_lonlat(georef, cx, cy)
        rec["centroid_lon"], rec["centroid_lat"] = float(lon), float(lat)
        try:
            rec["mgrs"] = geo.to_mgrs(float(lat), float(lon), precision=5)
        except GeoreferenceError:
            rec["mgrs"] = None  # e.g. outside the MGRS grid; the lat/lon still locate it
        rec["area_m2"] = float(area_px * _pixel_area_m2(georef, cx, cy))
        rec["location_approximate"] = bool(georef.approximate)
    return ((-stat, -rec["score_max"], -area_px, y, x), rec)
