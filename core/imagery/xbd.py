"""xBD (xView2) tiles: label JSON -> building polygons, damage subtypes and a fitted georeference.

An xBD label holds every building twice, as pixel WKT (``features.xy``) and lon/lat WKT (``features.lng_lat``),
paired by ``properties.uid``. Their vertices give point pairs from which an affine georef is fitted in the local UTM
CRS (method "fitted", approximate; the RMS residual in metres goes into the note and meta).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import shapely.wkt
from shapely.errors import ShapelyError

from core.errors import GeoreferenceError, InputError
from core.geo import georef as geo
from core.i18n import N_, Message, _, message
from core.imagery.exif import exif_datetime
from core.types import GeoRef

XBD_NAME = re.compile(r"_(pre|post)_disaster$", re.IGNORECASE)
#: A fitted georef whose RMS residual exceeds this is kept but flagged.
RESIDUAL_WARN_M = 10.0


def find_xbd_labels(image_path: Path) -> Path | None:
    """The label JSON of an xBD image: ``../labels/<stem>.json`` or ``<stem>.json`` beside it, if present."""
    stem = image_path.stem
    for cand in (image_path.parent.parent / "labels" / f"{stem}.json", image_path.parent / f"{stem}.json"):
        if cand.is_file():
            return cand
    return None


def load_xbd_labels(label_path: Path) -> dict[str, Any]:
    """Parse an xBD label file; :class:`InputError` when it is not xBD label JSON."""
    try:
        data = json.loads(Path(label_path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(_("label file not found: {label_path}; give the "
                           "xBD label JSON that belongs to the image").format(
                             label_path=label_path)) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(_("label file {label_path} is not readable JSON ({exc}); give the xBD label JSON (with "
                           "features.xy and features.lng_lat)").format(label_path=label_path, exc=exc)) from exc
    feats = data.get("features") if isinstance(data, dict) else None
    if not isinstance(feats, dict) or not isinstance(feats.get("xy", []), list):
        raise InputError(_("label file {label_path} is not an xBD label (no features.xy / features.lng_lat "
                           "lists)").format(
                             label_path=label_path))
    return data


def _ring(wkt: str) -> list[list[float]] | None:
    try:
        geom = shapely.wkt.loads(wkt)
    except (ShapelyError, TypeError, ValueError):
        return None
    if geom.is_empty or geom.geom_type != "Polygon":
        return None
    return [[float(x), float(y)] for x, y in geom.exterior.coords]


def xbd_scene_info(labels: dict[str, Any], name: str, width: int, height: int) -> tuple[
        GeoRef | None, dict[str, Any], str | None, list[Message]]:
    """(fitted georef or None, meta["xbd"], capture time, warnings) for one xBD tile."""
    warnings: list[Message] = []
    md = labels.get("metadata") or {}
    feats = labels.get("features") or {}
    m = XBD_NAME.search(Path(name).stem) or XBD_NAME.search(Path(str(md.get("img_name", ""))).stem)
    phase = m.group(1).lower() if m else None
    lonlat_by_uid: dict[str, list[list[float]]] = {}
    for f in feats.get("lng_lat") or []:
        uid = (f.get("properties") or {}).get("uid")
        ring = _ring(f.get("wkt", ""))
        if uid and ring:
            lonlat_by_uid[uid] = ring
    buildings: list[dict[str, Any]] = []
    px_pts: list[list[float]] = []
    ll_pts: list[list[float]] = []
    for f in feats.get("xy") or []:
        props = f.get("properties") or {}
        ring = _ring(f.get("wkt", ""))
        if ring is None:
            continue
        uid = props.get("uid")
        ll = lonlat_by_uid.get(uid)
        buildings.append({"uid": uid, "subtype": props.get("subtype"), "feature_type": props.get("feature_type"),
                          "polygon_px": ring, "polygon_lonlat": ll})
        if ll is not None and len(ll) == len(ring):
            px_pts.extend(ring[:-1])
            ll_pts.extend(ll[:-1])
    info: dict[str, Any] = {"disaster": md.get("disaster"), "disaster_type": md.get("disaster_type"),
                            "phase": phase, "sensor": md.get("sensor"), "gsd": md.get("gsd"),
                            "off_nadir_angle": md.get("off_nadir_angle"), "buildings": buildings}
    lw, lh = md.get("width"), md.get("height")
    if isinstance(lw, int) and isinstance(lh, int) and (lw, lh) != (width, height):
        warnings.append(message(N_("label was made for a {lw}x{lh} image but the image is {width}x{height}; "
                                   "building polygons may not line up"), lw=lw, lh=lh, width=width, height=height))
    georef = None
    if not px_pts:
        warnings.append(message(N_("the xBD label has no building polygons with lon/lat: the tile cannot be "
                                   "georeferenced from its labels; it is treated as an un-georeferenced frame "
                                   "(place it by hand if needed)")))
    else:
        try:
            georef, rms = geo.fit_affine_georef(np.array(px_pts), np.array(ll_pts))
            geo.validate_georef(georef, width, height)
            info["georef_residual_m"] = rms
            info["georef_points"] = len(px_pts)
            span = np.ptp(np.array(px_pts), axis=0)
            if span.max() < 0.25 * min(width, height):
                warnings.append(message(N_("georeference fitted from {n} building(s) covering a small part of the "
                                           "tile: positions far from them are extrapolated and less certain"),
                                        n=len(buildings)))
            if rms > RESIDUAL_WARN_M:
                warnings.append(message(N_("georeference fitted from the labels has a large residual ({rms} m "
                                           "RMS): positions on the map are rough"), rms=f"{rms:.1f}"))
        except GeoreferenceError as exc:
            georef = None
            warnings.append(message(N_("could not fit a georeference from the label polygons ({exc})"), exc=exc))
    return georef, info, exif_datetime(md.get("capture_date")), warnings
