"""Georeferencing: pixel <-> CRS <-> WGS84, GSD, geodesic areas, MGRS and the approximate georefs of frames.

All pixel coordinates are (col, row) floats in the *corner* convention of GDAL/rasterio: (0, 0) is the top-left
corner of the top-left pixel, (0.5, 0.5) its centre. A :class:`~core.types.GeoRef` transform is an
:class:`affine.Affine` ``x = a*col + b*row + c ; y = d*col + e*row + f`` and may be rotated or sheared.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import mgrs as _mgrs
import numpy as np
from affine import Affine
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError, ProjError

from core.errors import GeoreferenceError
from core.i18n import _
from core.types import GeoRef

WGS84 = "EPSG:4326"
_GEOD = Geod(ellps="WGS84")
_local = threading.local()  # pyproj Transformer / mgrs objects are kept per thread


def _transformer(src: str, dst: str) -> Transformer:
    cache = _local.__dict__.setdefault("transformers", {})
    key = (src, dst)
    if key not in cache:
        try:
            cache[key] = Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)
        except (CRSError, ProjError) as exc:
            raise GeoreferenceError(_("unknown or unsupported coordinate reference system {src!r} / {dst!r}: "
                                      "{exc}. Use an EPSG code (e.g. 'EPSG:32615') or WKT.").format(
                                        src=src, dst=dst, exc=exc)) from exc
    return cache[key]


def _check_lonlat(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise GeoreferenceError(_("invalid position lon={lon}, lat={lat}: longitude must be within ±180° and "
                                  "latitude within ±90°; check the coordinates (and their order)").format(
                                    lon=lon, lat=lat))


def utm_crs_for(lon: float, lat: float) -> str:
    """The WGS84 / UTM zone CRS ("EPSG:326zz" north, "EPSG:327zz" south) containing the point.

    Includes the Norway (32V) and Svalbard (31X-37X) zone exceptions. Beyond 84°N / 80°S UTM is still returned
    (distortion grows but stays usable for local metric work).
    """
    _check_lonlat(lon, lat)
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    elif 72.0 <= lat <= 84.0 and 0.0 <= lon < 42.0:
        zone = 31 if lon < 9 else 33 if lon < 21 else 35 if lon < 33 else 37
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def pixel_to_crs(georef: GeoRef, cols: np.ndarray | float, rows: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (col, row) -> coordinates in the georef's own CRS."""
    t = georef.transform
    a, b, c, d, e, f = t.a, t.b, t.c, t.d, t.e, t.f
    cols = np.asarray(cols, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64)
    return a * cols + b * rows + c, d * cols + e * rows + f


def crs_to_pixel(georef: GeoRef, xs: np.ndarray | float, ys: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in the georef's CRS -> pixel (col, row); inverse of :func:`pixel_to_crs`."""
    t = georef.transform
    a, b, c, d, e, f = t.a, t.b, t.c, t.d, t.e, t.f
    det = a * e - b * d
    if det == 0 or not math.isfinite(det):
        raise GeoreferenceError(_("the georeference transform is singular (zero determinant): it cannot be "
                                  "inverted; re-place the image or fix its geotransform"))
    dx = np.asarray(xs, dtype=np.float64) - c
    dy = np.asarray(ys, dtype=np.float64) - f
    return (e * dx - b * dy) / det, (-d * dx + a * dy) / det


def pixel_to_lonlat(georef: GeoRef, cols: np.ndarray | float,
                    rows: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (col, row) -> WGS84 (lon, lat) in degrees."""
    x, y = pixel_to_crs(georef, cols, rows)
    lon, lat = _transformer(georef.crs, WGS84).transform(x, y)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def lonlat_to_pixel(georef: GeoRef, lons: np.ndarray | float,
                    lats: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 (lon, lat) -> pixel (col, row) floats (may fall outside the image)."""
    x, y = _transformer(WGS84, georef.crs).transform(np.asarray(lons, dtype=np.float64),
                                                     np.asarray(lats, dtype=np.float64))
    return crs_to_pixel(georef, x, y)


def edge_pixels(width: int, height: int, n: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """(cols, rows) of ``n`` points along each edge of the image, clockwise from the top-left corner."""
    t = np.linspace(0.0, 1.0, n)
    cols = np.concatenate([t * width, np.full(n, float(width)), t[::-1] * width, np.zeros(n)])
    rows = np.concatenate([np.zeros(n), t * height, np.full(n, float(height)), t[::-1] * height])
    return cols, rows


def bounds_wgs84(georef: GeoRef, width: int, height: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the whole image in WGS84, from densified edges (21 points per edge)."""
    lon, lat = pixel_to_lonlat(georef, *edge_pixels(width, height))
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        raise GeoreferenceError(_("the image footprint cannot be expressed in longitude/latitude (the CRS "
                                  "transform returned non-finite values); check the file's CRS and geotransform"))
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def gsd_m(georef: GeoRef, width: int, height: int) -> float:
    """Ground sample distance at the image centre: mean geodesic size of one pixel along columns and rows (m)."""
    step = max(1.0, min(width, height) / 10.0)
    cc, rc = width / 2.0, height / 2.0
    lon, lat = pixel_to_lonlat(georef, np.array([cc, cc + step, cc]), np.array([rc, rc, rc + step]))
    _az1, _az2, dx = _GEOD.inv(lon[0], lat[0], lon[1], lat[1])
    _az3, _az4, dy = _GEOD.inv(lon[0], lat[0], lon[2], lat[2])
    return float((dx + dy) / (2.0 * step))


def polygon_area_m2(lonlat_ring: Sequence[tuple[float, float]]) -> float:
    """Geodesic area (m², WGS84 ellipsoid) of a lon/lat ring; orientation and closure do not matter."""
    pts = np.asarray(lonlat_ring, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3:
        return 0.0
    if not np.all(np.isfinite(pts)):
        raise GeoreferenceError(_("polygon has non-finite coordinates; cannot compute its area"))
    area, _perimeter = _GEOD.polygon_area_perimeter(pts[:, 0], pts[:, 1])
    return float(abs(area))


def to_mgrs(lat: float, lon: float, precision: int = 5) -> str:
    """MGRS reference of a point; ``precision`` 5 = 1 m, 4 = 10 m, ... 0 = 100 km square."""
    _check_lonlat(lon, lat)
    if not 0 <= precision <= 5:
        raise ValueError(_("MGRS precision must be 0..5 (5 = 1 m)"))
    conv = _local.__dict__.get("mgrs")
    if conv is None:
        conv = _local.mgrs = _mgrs.MGRS()
    try:
        ref = conv.toMGRS(lat, lon, MGRSPrecision=precision)
    except Exception as exc:  # the C library raises a bare MGRSError/ValueError for unsupported points
        raise GeoreferenceError(_("cannot express lat={lat}, lon={lon} in MGRS: {exc}").format(
                                    lat=lat, lon=lon, exc=exc)) from exc
    return ref.decode() if isinstance(ref, bytes) else str(ref)


def fit_affine_georef(px: np.ndarray, lonlat: np.ndarray) -> tuple[GeoRef, float]:
    """Least-squares affine georef from pixel (col, row) <-> (lon, lat) pairs, in the local UTM CRS.

    Returns the georef (method "fitted", approximate) and the RMS residual in metres.
    """
    px = np.asarray(px, dtype=np.float64).reshape(-1, 2)
    ll = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
    if len(px) != len(ll):
        raise GeoreferenceError(_("{px} pixel points but {ll} lon/lat points: pairs must match").format(
                                    px=len(px), ll=len(ll)))
    ok = np.all(np.isfinite(px), axis=1) & np.all(np.isfinite(ll), axis=1)
    px, ll = px[ok], ll[ok]
    design = np.column_stack([px, np.ones(len(px))])
    if len(px) < 3 or np.linalg.matrix_rank(design) < 3:
        raise GeoreferenceError(_("at least 3 non-collinear point pairs are needed to fit a georeference"))
    lon0, lat0 = float(np.median(ll[:, 0])), float(np.median(ll[:, 1]))
    crs = utm_crs_for(lon0, lat0)
    x, y = _transformer(WGS84, crs).transform(ll[:, 0], ll[:, 1])
    target = np.column_stack([x, y])
    coef, *_rest = np.linalg.lstsq(design, target, rcond=None)
    resid = design @ coef - target
    rms = float(np.sqrt(np.mean(np.sum(resid**2, axis=1))))
    (a, d), (b, e), (c, f) = coef
    georef = GeoRef(crs=crs, transform=Affine(float(a), float(b), float(c), float(d), float(e), float(f)),
                    method="fitted", approximate=True,
                    note=f"affine fitted to {len(px)} point pairs, RMS residual {rms:.2f} m")
    return georef, rms


def _centred_transform(lat: float, lon: float, gsd: float, width: int, height: int,
                       yaw_deg: float) -> tuple[str, Affine]:
    """Local-UTM transform of a ``width``x``height`` grid centred on (lat, lon) whose top points to ``yaw_deg``.

    ``yaw_deg`` is clockwise from true north; UTM grid convergence is corrected so the heading is geographic.
    """
    crs = utm_crs_for(lon, lat)
    tr = _transformer(WGS84, crs)
    x0, y0 = tr.transform(lon, lat)
    xn, yn = tr.transform(lon, min(lat + 1e-3, 90.0))
    convergence = math.atan2(xn - x0, yn - y0)  # true north, measured clockwise from grid north
    yaw = math.radians(yaw_deg) + convergence
    cy, sy = math.cos(yaw), math.sin(yaw)
    a, b = gsd * cy, -gsd * sy
    d, e = -gsd * sy, -gsd * cy
    c = x0 - a * width / 2.0 - b * height / 2.0
    f = y0 - d * width / 2.0 - e * height / 2.0
    return crs, Affine(a, b, c, d, e, f)


def footprint_georef(lat: float, lon: float, agl_m: float, focal_mm: float, sensor_width_mm: float,
                     width: int, height: int, yaw_deg: float = 0.0) -> GeoRef:
    """Approximate nadir footprint of a camera frame at (lat, lon), ``agl_m`` above ground.

    GSD = sensor_width · AGL / (focal · image_width), with ``image_width`` the long side in pixels; the frame is
    centred on the GPS point and its top turned to ``yaw_deg`` (clockwise from north).
    """
    _check_lonlat(lon, lat)
    for label, v in (("height above ground", agl_m), ("focal length", focal_mm), ("sensor width", sensor_width_mm)):
        if not (math.isfinite(v) and v > 0):
            raise GeoreferenceError(_("{label} must be a positive number to compute a footprint (got {v})").format(
                                        label=label, v=v))
    gsd = sensor_width_mm * agl_m / (focal_mm * max(width, height))
    crs, transform = _centred_transform(lat, lon, gsd, width, height, yaw_deg)
    return GeoRef(crs=crs, transform=transform, method="gps-footprint", approximate=True,
                  note=f"approximate nadir footprint: GSD {gsd:.3f} m from {agl_m:.1f} m above ground, "
                       f"focal {focal_mm:g} mm, sensor width {sensor_width_mm:g} mm, yaw {yaw_deg:.1f}°")


def user_georef(center_lat: float, center_lon: float, gsd_m: float, width: int, height: int,
                yaw_deg: float = 0.0) -> GeoRef:
    """Georef of a frame placed by the analyst: centre point, metres per pixel and heading of the image top."""
    _check_lonlat(center_lon, center_lat)
    if not (math.isfinite(gsd_m) and gsd_m > 0):
        raise GeoreferenceError(_("ground sample distance must be a positive number of metres per pixel (got "
                                  "{gsd_m})").format(gsd_m=gsd_m))
    crs, transform = _centred_transform(center_lat, center_lon, gsd_m, width, height, yaw_deg)
    return GeoRef(crs=crs, transform=transform, method="user", approximate=True,
                  note=f"placed by analyst: centre {center_lat:.6f}, {center_lon:.6f}, GSD {gsd_m:g} m, "
                       f"yaw {yaw_deg:g}°")


def bounds_georef(west: float, south: float, east: float, north: float, width: int, height: int) -> GeoRef:
    """North-up EPSG:4326 georef stretching the image over the given WGS84 bounds."""
    _check_lonlat(west, south)
    _check_lonlat(east, north)
    if not (east > west and north > south):
        raise GeoreferenceError(_("bounds must satisfy west < east and south < north (got west={west}, "
                                  "south={south}, east={east}, north={north})").format(
                                    west=west, south=south, east=east, north=north))
    if width <= 0 or height <= 0:
        raise GeoreferenceError(_("image width and height must be positive"))
    return GeoRef(crs=WGS84, transform=Affine((east - west) / width, 0.0, west, 0.0, -(north - south) / height, north),
                  method="user", approximate=True, note="placed by analyst from WGS84 bounds")


def placement_georef(width: int, height: int, *, center: tuple[float, float] | None = None,
                     gsd_m: float | None = None, yaw_deg: float = 0.0,
                     bounds: tuple[float, float, float, float] | None = None) -> tuple[GeoRef, dict[str, Any]]:
    """The georef of an image the analyst places by hand, and the record of how: either ``center`` (lat, lon) with
    ``gsd_m`` metres per pixel and the heading of the image top ``yaw_deg``, or WGS84 ``bounds`` (west, south,
    east, north) for a north-up image. Raises :class:`GeoreferenceError` saying what is missing or wrong."""
    if (center is None) == (bounds is None):
        raise GeoreferenceError(_("place the image either by its centre and ground sample distance or by its WGS84 "
                                  "bounds (west, south, east, north), not both and not neither"))
    if bounds is not None:
        w, s_, e, n = (float(v) for v in bounds)
        return bounds_georef(w, s_, e, n, width, height), {"bounds_wgs84": [w, s_, e, n]}
    if gsd_m is None:
        raise GeoreferenceError(_("placing the image by its centre needs its ground sample distance (metres per "
                                  "pixel)"))
    lat, lon = (float(v) for v in center)
    return (user_georef(lat, lon, float(gsd_m), width, height, yaw_deg=float(yaw_deg)),
            {"center_lat": lat, "center_lon": lon, "gsd_m": float(gsd_m), "yaw_deg": float(yaw_deg)})


def validate_georef(georef: GeoRef, width: int, height: int) -> None:
    """Raise :class:`GeoreferenceError` unless ``georef`` maps the ``width``x``height`` grid onto valid lon/lat."""
    if width <= 0 or height <= 0:
        raise GeoreferenceError(_("image size must be positive (got {width}x{height})").format(
                                    width=width, height=height))
    t = tuple(georef.transform)[:6]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in t):
        raise GeoreferenceError(_("geotransform {t!r} must be 6 finite numbers; fix or re-place the image").format(
                                    t=t))
    a, b, _c, d, e, _f = t
    scale = max(abs(a), abs(b), abs(d), abs(e))
    if scale == 0 or abs(a * e - b * d) <= 1e-12 * scale * scale:
        raise GeoreferenceError(_("the geotransform is degenerate (zero pixel size or zero determinant); fix the "
                                  "file's georeferencing or place the image by hand"))
    try:
        CRS.from_user_input(georef.crs)
    except CRSError as exc:
        raise GeoreferenceError(_("unknown coordinate reference system {crs!r}: {exc}").format(
                                    crs=georef.crs, exc=exc)) from exc
    with np.errstate(all="ignore"):
        lon, lat = pixel_to_lonlat(georef, *edge_pixels(width, height, 5))
    tol = 1e-6
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))
            and lon.min() >= -180 - tol and lon.max() <= 180 + tol
            and lat.min() >= -90 - tol and lat.max() <= 90 + tol):
        raise GeoreferenceError(
            _("the image footprint falls outside valid longitude/latitude (±180°, ±90°); the CRS or geotransform "
              "is wrong (CRS {crs!r}, transform {t}). Fix the file or place the image by hand").format(
                crs=georef.crs, t=t))
