"""Georeferencing helpers the figures and chips need on top of :mod:`core.geo.georef`."""

from __future__ import annotations

import numpy as np
from pyproj import Geod

from core.geo.georef import lonlat_to_pixel, pixel_to_lonlat
from core.types import GeoRef

_GEOD = Geod(ellps="WGS84")
to_lonlat = pixel_to_lonlat
from_lonlat = lonlat_to_pixel


def pixel_size_m(georef: GeoRef, col: float, row: float) -> tuple[float, float]:
    """Ground length in metres of one column step and one row step at pixel (col, row)."""
    lon, lat = to_lonlat(georef, np.array([col, col + 1, col]), np.array([row, row, row + 1]))
    _, _, dx = _GEOD.inv(lon[0], lat[0], lon[1], lat[1])
    _, _, dy = _GEOD.inv(lon[0], lat[0], lon[2], lat[2])
    return float(dx), float(dy)


def north_vector(georef: GeoRef, col: float, row: float) -> tuple[float, float]:
    """Unit (d_col, d_row) vector pointing to geographic north at pixel (col, row)."""
    lon, lat = to_lonlat(georef, np.array([col]), np.array([row]))
    c, r = from_lonlat(georef, lon, lat + 1e-4)
    v = np.array([float(c[0]) - col, float(r[0]) - row])
    n = float(np.hypot(*v))
    return (0.0, -1.0) if not np.isfinite(n) or n == 0 else (float(v[0] / n), float(v[1] / n))
