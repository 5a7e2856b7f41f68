"""core.geo.georef against independent computations (pyproj, shapely, mgrs) and its own inverse functions."""

from __future__ import annotations

import json
import math

import mgrs
import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer
from shapely.geometry import Polygon

from core.errors import CoreError, GeoreferenceError
from core.geo import georef as geo
from core.types import GeoRef

GEOD = Geod(ellps="WGS84")


@pytest.mark.parametrize(("lon", "lat", "crs"), [
    (-94.5, 37.07, "EPSG:32615"),  # Joplin
    (-95.59, 29.53, "EPSG:32615"),  # Houston
    (120.95, 24.68, "EPSG:32651"),  # Taiwan
    (-70.0, -33.0, "EPSG:32719"),  # southern hemisphere
    (-180.0, 0.0, "EPSG:32601"),
    (180.0, 0.0, "EPSG:32660"),
    (5.0, 60.0, "EPSG:32632"),  # Norway exception (would be 31)
    (15.0, 78.0, "EPSG:32633"),  # Svalbard exception
    (128.6, 37.6, "EPSG:32652"),  # Korea
])
def test_utm_crs_for(lon: float, lat: float, crs: str) -> None:
    assert geo.utm_crs_for(lon, lat) == crs


@pytest.mark.parametrize(("lon", "lat"), [(200.0, 10.0), (10.0, 95.0), (math.nan, 0.0)])
def test_utm_crs_for_rejects_invalid(lon: float, lat: float) -> None:
    with pytest.raises(GeoreferenceError, match="longitude"):
        geo.utm_crs_for(lon, lat)


def _utm_georef() -> GeoRef:
    return GeoRef("EPSG:32615", Affine(0.6, 0.0, 366642.6, 0.0, -0.6, 4104511.2))


def test_pixel_crs_and_lonlat_round_trip() -> None:
    g = _utm_georef()
    cols, rows = np.array([0.0, 512.5, 1024.0]), np.array([0.0, 100.25, 1024.0])
    x, y = geo.pixel_to_crs(g, cols, rows)
    assert x[0] == pytest.approx(366642.6) and y[0] == pytest.approx(4104511.2)
    assert x[2] == pytest.approx(366642.6 + 614.4) and y[2] == pytest.approx(4104511.2 - 614.4)
    lon, lat = geo.pixel_to_lonlat(g, cols, rows)
    ref_lon, ref_lat = Transformer.from_crs("EPSG:32615", "EPSG:4326", always_xy=True).transform(x, y)
    np.testing.assert_allclose(lon, ref_lon, atol=1e-12)
    np.testing.assert_allclose(lat, ref_lat, atol=1e-12)
    c2, r2 = geo.lonlat_to_pixel(g, lon, lat)
    np.testing.assert_allclose(c2, cols, atol=1e-6)
    np.testing.assert_allclose(r2, rows, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0.05, 50), rot=st.floats(-180, 180), shear=st.floats(-0.3, 0.3),
       col=st.floats(0, 4000), row=st.floats(0, 4000))
def test_rotated_transform_inverse_property(a: float, rot: float, shear: float, col: float, row: float) -> None:
    """pixel -> lon/lat -> pixel is the identity for any rotated / sheared, non-degenerate transform."""
    r = math.radians(rot)
    t = Affine(a * math.cos(r), -a * math.sin(r) + shear * a, 500000.0, -a * math.sin(r), -a * math.cos(r), 4000000.0)
    g = GeoRef("EPSG:32633", t)
    lon, lat = geo.pixel_to_lonlat(g, col, row)
    c2, r2 = geo.lonlat_to_pixel(g, lon, lat)
    assert float(c2) == pytest.approx(col, abs=1e-5) and float(r2) == pytest.approx(row, abs=1e-5)


def test_bounds_wgs84_densified_matches_pyproj() -> None:
    g = _utm_georef()
    w, s, e, n = geo.bounds_wgs84(g, 1024, 1024)
    tr = Transformer.from_crs("EPSG:32615", "EPSG:4326", always_xy=True)
    ref = tr.transform_bounds(366642.6, 4104511.2 - 614.4, 366642.6 + 614.4, 4104511.2, densify_pts=21)
    np.testing.assert_allclose((w, s, e, n), ref, atol=1e-9)
    assert w < e and s < n


def test_bounds_of_rotated_georef_contain_all_corners() -> None:
    g = geo.user_georef(37.07, -94.49, 0.5, 800, 400, yaw_deg=30.0)
    w, s, e, n = geo.bounds_wgs84(g, 800, 400)
    lon, lat = geo.pixel_to_lonlat(g, np.array([0, 800, 800, 0]), np.array([0, 0, 400, 400]))
    assert np.all((lon >= w - 1e-12) & (lon <= e + 1e-12) & (lat >= s - 1e-12) & (lat <= n + 1e-12))
    # a 30° rotated 400 m x 200 m frame spans more east-west than 400 m * cos 30°
    width_m = GEOD.inv(w, 37.07, e, 37.07)[2]
    assert width_m == pytest.approx(400 * math.cos(math.radians(30)) + 200 * math.sin(math.radians(30)), rel=0.01)


def test_gsd_m_in_metric_geographic_and_web_mercator() -> None:
    assert geo.gsd_m(_utm_georef(), 1024, 1024) == pytest.approx(0.6, rel=2e-3)
    g4326 = GeoRef("EPSG:4326", Affine(6e-6, 0.0, -94.4996, 0.0, -6e-6, 37.0751))
    # 6e-6° ≈ 0.533 m east-west and 0.666 m north-south at 37°N; the mean of the two
    ew = GEOD.inv(-94.4965, 37.072, -94.4965 + 6e-6, 37.072)[2]
    ns = GEOD.inv(-94.4965, 37.072, -94.4965, 37.072 + 6e-6)[2]
    assert geo.gsd_m(g4326, 1024, 1024) == pytest.approx((ew + ns) / 2, rel=1e-3)
    # Web Mercator 30 m pixels at 37.8°N are ~23.7 m on the ground
    g3857 = GeoRef("EPSG:3857", Affine(30.0, 0.0, -13651650.0, 0.0, -30.0, 4576290.0))
    lat = geo.pixel_to_lonlat(g3857, 1090, 958)[1]
    assert geo.gsd_m(g3857, 2181, 1917) == pytest.approx(30 * math.cos(math.radians(float(lat))), rel=5e-3)


def test_polygon_area_matches_utm_planar_area() -> None:
    # a ~ 120 m x 80 m irregular block in Joplin
    ring = [(-94.4950, 37.0700), (-94.4937, 37.0701), (-94.4936, 37.0708), (-94.4944, 37.0710),
            (-94.4951, 37.0706), (-94.4950, 37.0700)]
    tr = Transformer.from_crs("EPSG:4326", "EPSG:32615", always_xy=True)
    utm_area = shapely.transform(Polygon(ring), lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))).area
    assert geo.polygon_area_m2(ring) == pytest.approx(utm_area, rel=0.005)
    assert geo.polygon_area_m2(ring[::-1]) == pytest.approx(geo.polygon_area_m2(ring))  # orientation-free
    assert geo.polygon_area_m2(ring[:-1]) == pytest.approx(geo.polygon_area_m2(ring))  # closure-free
    assert geo.polygon_area_m2(ring[:2]) == 0.0


def test_polygon_area_of_one_hectare_square() -> None:
    # 100 m x 100 m square built with geodesic offsets near the equator
    lon0, lat0 = 30.0, 0.5
    lon1 = GEOD.fwd(lon0, lat0, 90, 100)[0]
    lat1 = GEOD.fwd(lon0, lat0, 0, 100)[1]
    ring = [(lon0, lat0), (lon1, lat0), (lon1, lat1), (lon0, lat1)]
    assert geo.polygon_area_m2(ring) == pytest.approx(10000.0, rel=0.005)


@pytest.mark.parametrize(("lat", "lon"), [(37.0700, -94.4950), (45.03799, -94.34876), (-33.45, -70.66),
                                          (24.68028, 120.95170), (60.1, 5.2)])
def test_mgrs_round_trips_within_2_m(lat: float, lon: float) -> None:
    ref = geo.to_mgrs(lat, lon)
    assert isinstance(ref, str) and len(ref) == 15  # zone(2) band(1) square(2) 5+5 digits
    lat2, lon2 = mgrs.MGRS().toLatLon(ref)
    assert GEOD.inv(lon, lat, lon2, lat2)[2] < 2.0


def test_mgrs_known_value_and_precision() -> None:
    # Joplin lies in UTM zone 15, latitude band S
    assert geo.to_mgrs(37.07, -94.5).startswith("15S")
    assert len(geo.to_mgrs(37.07, -94.5, precision=1)) == 7
    with pytest.raises(GeoreferenceError):
        geo.to_mgrs(95.0, 0.0)


def test_fit_affine_georef_recovers_a_known_transform() -> None:
    truth = GeoRef("EPSG:32615", Affine(0.47, 0.01, 250000.0, 0.02, -0.47, 3270000.0))
    rng = np.random.default_rng(0)
    px = rng.uniform(0, 1024, size=(200, 2))
    lon, lat = geo.pixel_to_lonlat(truth, px[:, 0], px[:, 1])
    g, rms = geo.fit_affine_georef(px, np.column_stack([lon, lat]))
    assert g.method == "fitted" and g.approximate and g.crs == "EPSG:32615"
    assert rms < 0.01
    c, r = geo.lonlat_to_pixel(g, lon, lat)
    np.testing.assert_allclose(np.column_stack([c, r]), px, atol=0.02)
    # noise of ~1 m shows up in the residual
    noisy = np.column_stack([lon + rng.normal(0, 1e-5, 200), lat + rng.normal(0, 1e-5, 200)])
    _, rms_noisy = geo.fit_affine_georef(px, noisy)
    assert 0.5 < rms_noisy < 3.0


def test_fit_affine_georef_rejects_degenerate_input() -> None:
    with pytest.raises(GeoreferenceError, match="non-collinear"):
        geo.fit_affine_georef(np.array([[0, 0], [1, 1], [2, 2], [3, 3]]),
                              np.array([[-94.0, 37.0], [-94.0001, 37.0001], [-94.0002, 37.0002], [-94.0003, 37.0003]]))
    with pytest.raises(GeoreferenceError, match="pairs must match"):
        geo.fit_affine_georef(np.zeros((3, 2)), np.zeros((4, 2)))


def test_footprint_georef_size_gsd_and_centre() -> None:
    # DJI FC6310 at 100 m: GSD = 13.2 * 100 / (8.8 * 5472) = 2.74 cm, footprint 150 m x 100 m
    g = geo.footprint_georef(45.0, -94.3, 100.0, 8.8, 13.2, 5472, 3648)
    assert g.method == "gps-footprint" and g.approximate
    assert geo.gsd_m(g, 5472, 3648) == pytest.approx(13.2 * 100 / (8.8 * 5472), rel=2e-3)
    lon, lat = geo.pixel_to_lonlat(g, 5472 / 2, 3648 / 2)
    assert float(lon) == pytest.approx(-94.3, abs=1e-9) and float(lat) == pytest.approx(45.0, abs=1e-9)
    lon_c, lat_c = geo.pixel_to_lonlat(g, np.array([0, 5472, 0]), np.array([0, 0, 3648]))
    assert GEOD.inv(lon_c[0], lat_c[0], lon_c[1], lat_c[1])[2] == pytest.approx(150.0, rel=3e-3)
    assert GEOD.inv(lon_c[0], lat_c[0], lon_c[2], lat_c[2])[2] == pytest.approx(100.0, rel=3e-3)
    # north-up: the top edge runs due east, the top is north of the bottom
    assert GEOD.inv(lon_c[0], lat_c[0], lon_c[1], lat_c[1])[0] == pytest.approx(90.0, abs=0.05)
    assert lat_c[0] > lat_c[2]


def test_footprint_yaw_turns_the_image_top() -> None:
    g = geo.footprint_georef(45.0, -94.3, 100.0, 8.8, 13.2, 1000, 1000, yaw_deg=90.0)
    lon, lat = geo.pixel_to_lonlat(g, np.array([500, 500]), np.array([500, 0]))
    azimuth = GEOD.inv(lon[0], lat[0], lon[1], lat[1])[0]  # centre -> top-centre
    assert azimuth == pytest.approx(90.0, abs=0.05)  # the top of the image points east


@pytest.mark.parametrize("bad", [{"agl_m": 0.0}, {"focal_mm": -1.0}, {"sensor_width_mm": math.nan}, {"lat": 200.0}])
def test_footprint_georef_rejects_bad_input(bad: dict) -> None:
    kw = {"lat": 45.0, "lon": -94.3, "agl_m": 100.0, "focal_mm": 8.8, "sensor_width_mm": 13.2,
          "width": 100, "height": 100} | bad
    with pytest.raises(GeoreferenceError):
        geo.footprint_georef(**kw)


def test_user_and_bounds_georef() -> None:
    g = geo.user_georef(29.53, -95.59, 0.5, 1024, 1024)
    assert g.method == "user" and g.approximate
    assert geo.gsd_m(g, 1024, 1024) == pytest.approx(0.5, rel=2e-3)
    with pytest.raises(GeoreferenceError, match="positive"):
        geo.user_georef(29.53, -95.59, 0.0, 10, 10)
    b = geo.bounds_georef(-95.6, 29.5, -95.5, 29.6, 1000, 500)
    assert b.crs == "EPSG:4326" and b.method == "user"
    np.testing.assert_allclose(geo.bounds_wgs84(b, 1000, 500), (-95.6, 29.5, -95.5, 29.6), atol=1e-12)
    with pytest.raises(GeoreferenceError, match="west < east"):
        geo.bounds_georef(-95.5, 29.5, -95.6, 29.6, 10, 10)


@pytest.mark.parametrize(("georef", "match"), [
    (GeoRef("EPSG:32615", Affine(math.nan, 0, 0, 0, -1, 0)), "finite"),
    (GeoRef("EPSG:32615", Affine(1.0, 2.0, 0, 0.5, 1.0, 0)), "degenerate"),  # det = 0
    (GeoRef("EPSG:32615", Affine(0.0, 0.0, 0, 0.0, 0.0, 0)), "degenerate"),
    (GeoRef("EPSG:4326", Affine(1.0, 0, 170.0, 0, -1.0, 45.0)), "outside valid"),  # east edge at 270°
    (GeoRef("EPSG:4326", Affine(0.1, 0, 10.0, 0, -0.1, 120.0)), "outside valid"),  # latitude 120°
    (GeoRef("NOT-A-CRS", Affine(1.0, 0, 0, 0, -1.0, 0)), "coordinate reference system"),
])
def test_validate_georef_rejects(georef: GeoRef, match: str) -> None:
    with pytest.raises(GeoreferenceError, match=match) as info:
        geo.validate_georef(georef, 100, 100)
    assert isinstance(info.value, CoreError)


def test_validate_georef_accepts_real_and_rotated() -> None:
    geo.validate_georef(_utm_georef(), 1024, 1024)
    geo.validate_georef(geo.user_georef(-33.4, -70.6, 1.0, 100, 100, yaw_deg=45), 100, 100)


def test_georef_keeps_the_six_coefficient_form_it_was_always_stored_in():
    """Analyses and case archives of every version store a GeoRef's transform as six numbers (a, b, c, d, e, f): they
    load as an affine.Affine, and the dict form written today is the same six numbers."""
    stored = {"crs": "EPSG:32615", "transform": [0.5, 0.01, 366000.0, 0.02, -0.5, 4104000.0], "method": "fitted",
              "approximate": True, "note": "from an older version"}
    g = GeoRef.from_dict(stored)
    assert isinstance(g.transform, Affine) and g.transform == Affine(0.5, 0.01, 366000.0, 0.02, -0.5, 4104000.0)
    assert g.to_dict() == stored and json.loads(json.dumps(g.to_dict())) == stored
    assert GeoRef("EPSG:32615", tuple(stored["transform"])).transform == g.transform  # six numbers in code: the same
    assert geo.pixel_to_crs(g, 10.0, 20.0) == pytest.approx((366000.0 + 5.0 + 0.2, 4104000.0 + 0.2 - 10.0))
