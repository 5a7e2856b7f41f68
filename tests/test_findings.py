"""Grading scales and rules; findings extraction: cleanup, polygons, WGS84 geometry, m², MGRS, ids, nodata."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box, shape

from core.detection.findings import extract_findings, safe_name
from core.detection.grading import (
    COPERNICUS_EMS,
    SCALES,
    XVIEW2_JDS,
    band_edges,
    confidence_for,
    get_scale,
    grade_for,
    region_statistic,
)
from core.errors import InputError
from core.geo import georef as geo
from core.types import Finding, GeoRef

UTM = GeoRef(crs="EPSG:32615", transform=Affine(0.5, 0.0, 366000.0, 0.0, -0.5, 4104000.0))
# the Joplin post tiles' own georeferencing (EPSG:4326, 6e-6 degree pixels)
JOPLIN = GeoRef(crs="EPSG:4326", transform=Affine(6e-06, 0.0, -94.49960529516346, 0.0, -6e-06, 37.07511383680346))
T = 2.0


def _blobs(h=200, w=240):
    s = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    s[(yy - 40) ** 2 + (xx - 50) ** 2 < 15 ** 2] = 1.2 * T  # possibly damaged
    s[30:60, 150:200] = 2.0 * T  # damaged
    s[120:170, 40:100] = 3.0 * T  # destroyed
    s[150, 200] = 10 * T  # single hot pixel: speckle
    return s


# -- grading ---------------------------------------------------------------------------------------------------

def test_grade_bands_copernicus_and_xview2():
    assert band_edges(T, COPERNICUS_EMS) == (2.0, 3.0, 5.0)
    table = [(1.99, "no-visible-damage", "no-damage"), (2.0, "possibly-damaged", "minor-damage"),
             (2.99, "possibly-damaged", "minor-damage"), (3.0, "damaged", "major-damage"),
             (4.99, "damaged", "major-damage"), (5.0, "destroyed", "destroyed"), (50.0, "destroyed", "destroyed"),
             (float("nan"), "not-analysed", "un-classified")]
    for score, ems, jds in table:
        assert grade_for(score, T) == ems, score
        assert grade_for(score, T, "xview2-jds") == jds, score
    assert grade_for(3.5, T, bands=(1.0, 2.0, 3.0)) == "possibly-damaged"
    assert grade_for(7.0, T, "unosat") == "destroyed" and grade_for(4.2, T, "unosat") == "severe-damage"


def test_scales_are_complete_data():
    ems = get_scale("copernicus-ems")
    assert [g.key for g in ems.grades()] == ["destroyed", "damaged", "possibly-damaged", "no-visible-damage",
                                             "not-analysed"]
    assert [g.key for g in XVIEW2_JDS.grades()][:4] == ["destroyed", "major-damage", "minor-damage", "no-damage"]
    for sc in SCALES.values():
        assert len(sc.bands) == len(sc.damage) and sc.bands[0] == 1.0
        assert all(g.color.startswith("#") and g.label and g.description for g in sc.grades())
    assert ems.get("damaged").label == "Damaged"
    with pytest.raises(InputError):
        ems.get("major-damage")


def test_grading_rejects_bad_input():
    with pytest.raises(InputError, match="unknown grading scale"):
        get_scale("richter")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="positive"):
            grade_for(1.0, bad)
    with pytest.raises(InputError):
        band_edges(T, COPERNICUS_EMS, bands=(1.0, 2.0))
    with pytest.raises(InputError):
        band_edges(T, COPERNICUS_EMS, bands=(1.0, 3.0, 2.0))


def test_confidence_is_a_logistic_of_the_margin():
    assert confidence_for(T, T) == pytest.approx(0.5)
    assert confidence_for(1.5 * T, T) == pytest.approx(1 / (1 + np.exp(-2)))
    xs = np.linspace(0, 10 * T, 50)
    c = [confidence_for(x, T) for x in xs]
    assert all(0 <= v <= 1 for v in c) and all(b >= a for a, b in itertools.pairwise(c))
    assert confidence_for(float("nan"), T) == 0.0


def test_region_statistic_is_robust():
    v = np.r_[np.ones(95), np.full(5, 100.0), np.nan]
    assert region_statistic(v) == pytest.approx(1.0)
    assert np.isnan(region_statistic(np.array([np.nan])))


# -- safe names ------------------------------------------------------------------------------------------------

@pytest.mark.slow  # 300 hypothesis examples
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_safe_name_is_always_safe(name):
    s = safe_name(name)
    assert s and len(s) <= 80
    assert "/" not in s and "\\" not in s and ".." not in s and "\x00" not in s
    assert s.isascii() and s not in (".", "..")
    assert all(ch.isalnum() or ch in "._-" for ch in s)


def test_safe_name_examples():
    assert safe_name("tile_31500-5137.tif") == "tile_31500-5137"
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\x\\my scene.JPG") == "my_scene"
    a, b = safe_name("피해지역.tif"), safe_name("피해지역2.tif")
    assert a != b and a.startswith("scene-")
    assert safe_name("") .startswith("scene-") and safe_name("...").startswith("scene-")
    assert safe_name("Café.png") == "Cafe"  # accents fold to ASCII without loss of meaning
    long = safe_name("x" * 500)
    assert len(long) == 80 and long != safe_name("x" * 499)
    assert safe_name("CON") == "CON_"


# -- findings --------------------------------------------------------------------------------------------------

def test_findings_grades_order_ids_and_speckle_removal():
    s = _blobs()
    prov = {"model_name": "fcdd-test", "model_version": "3", "model_sha256": "ab" * 32, "source_date": "2011-05-24",
            "source_gsd": 0.5, "processed_at": "2024-01-01T00:00:00+00:00", "unrelated": 1}
    fs = extract_findings(s, 1.0, T, georef=None, scene_name="post/tile 7.tif", provenance=prov)
    assert [f.grade for f in fs] == ["destroyed", "damaged", "possibly-damaged"]
    assert [f.id for f in fs] == ["tile_7-F001", "tile_7-F002", "tile_7-F003"]
    assert [f.confidence for f in fs] == sorted((f.confidence for f in fs), reverse=True)
    d = fs[0]
    assert d.bbox_px == (40, 120, 100, 170) and d.area_px == 50 * 60
    assert d.score_mean == pytest.approx(6.0) and d.score_max == pytest.approx(6.0)
    assert d.confidence > 0.99 and d.threshold == T and d.grade_scale == "copernicus-ems"
    assert d.model_name == "fcdd-test" and d.model_sha256 == "ab" * 32 and d.source_gsd == 0.5
    assert d.source_name == "post/tile 7.tif" and d.processed_at.startswith("2024")
    assert d.det_method == "automatic extraction" and d.review_status == "unreviewed"
    # outline follows pixel edges: the 50x60 rectangle comes out as exactly that rectangle
    assert Polygon(d.polygon_px).equals(box(40, 120, 100, 170))
    assert d.polygon_px[0] == d.polygon_px[-1]
    assert d.geometry is None and d.mgrs is None and d.area_m2 is None and d.centroid_lat is None
    circle = fs[2]
    assert abs(Polygon(circle.polygon_px).area - circle.area_px) < 0.1 * circle.area_px
    # the single hot pixel is speckle: no finding there
    assert not any(f.bbox_px[0] <= 200 < f.bbox_px[2] and f.bbox_px[1] <= 150 < f.bbox_px[3] for f in fs)
    assert Finding.from_dict(d.to_dict()) == d


def test_min_area_and_max_findings_and_threshold_cuts():
    s = _blobs()
    assert len(extract_findings(s, 1.0, T, georef=None, scene_name="a", min_area_px=1000)) == 2
    top = extract_findings(s, 1.0, T, georef=None, scene_name="a", max_findings=1)
    assert [f.grade for f in top] == ["destroyed"]
    assert len(extract_findings(s, 1.0, 7 * T, georef=None, scene_name="a")) == 0
    assert extract_findings(np.full((50, 50), np.nan, np.float32), 1.0, T, georef=None, scene_name="a") == []
    with pytest.raises(InputError):
        extract_findings(s, 1.0, 0.0, georef=None, scene_name="a")
    with pytest.raises(InputError):
        extract_findings(s[0], 1.0, T, georef=None, scene_name="a")
    with pytest.raises(InputError):
        extract_findings(s, 0.0, T, georef=None, scene_name="a")


def test_no_findings_inside_nodata():
    s = np.zeros((120, 120), np.float32)
    s[20:100, 20:100] = 3 * T
    s[40:80, 40:80] = np.nan  # nodata hole in the middle of a hot area
    s[:, 110:] = np.nan
    fs = extract_findings(s, 1.0, T, georef=None, scene_name="n")
    assert fs
    box(40, 40, 80, 80)
    for f in fs:
        # the flagged pixels avoid the hole: the ring-shaped region's count excludes its 40x40 pixels
        assert f.area_px == 80 * 80 - 40 * 40
        assert Polygon(f.polygon_px).intersection(box(110, 0, 120, 120)).area == 0
    # a region made only of NaN-adjacent pixels never grows into the NaN by closing
    s2 = np.full((60, 60), np.nan, np.float32)
    s2[10:50, 10:30] = 3 * T
    s2[10:50, 31:50] = 3 * T  # 1-px gap of NaN between two hot areas: closing must not bridge through nodata
    fs2 = extract_findings(s2, 1.0, T, georef=None, scene_name="n")
    assert sum(f.area_px for f in fs2) == 40 * 20 + 40 * 19


def test_preview_scale_maps_to_full_res_pixels():
    s = _blobs(400, 480)
    full = extract_findings(s, 1.0, T, georef=None, scene_name="p")
    prev = s.reshape(100, 4, 120, 4).mean(axis=(1, 3))
    fs = extract_findings(prev, 4.0, T, georef=None, scene_name="p", full_size=(480, 400))
    assert [f.grade for f in fs] == [f.grade for f in full]
    for a, b in zip(fs, full, strict=True):
        assert np.abs(np.subtract(a.bbox_px, b.bbox_px)).max() <= 4
        assert a.area_px == pytest.approx(b.area_px, rel=0.2)  # block means shave low-margin edges
        assert Polygon(a.polygon_px).bounds[2] <= 480 and Polygon(a.polygon_px).bounds[3] <= 400


@pytest.mark.parametrize("georef,px_m2", [(UTM, 0.25), (JOPLIN, None)])
def test_georeferenced_findings(georef, px_m2):
    s = _blobs()
    fs = extract_findings(s, 1.0, T, georef=georef, scene_name="g.tif")
    west, south, east, north = geo.bounds_wgs84(georef, s.shape[1], s.shape[0])
    for f in fs:
        g = f.geometry
        assert g["type"] == "Polygon" and len(g["coordinates"]) == 1
        ring = g["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) >= 4
        poly = shape(g)
        assert poly.is_valid and poly.exterior.is_ccw  # RFC 7946 right-hand rule
        for lon, lat in ring:
            assert west - 1e-7 <= lon <= east + 1e-7 and south - 1e-7 <= lat <= north + 1e-7
        assert west <= f.centroid_lon <= east and south <= f.centroid_lat <= north
        assert poly.contains(shape({"type": "Point", "coordinates": [f.centroid_lon, f.centroid_lat]})) \
            or f.grade == "possibly-damaged"
        assert f.mgrs.startswith("15S") and len(f.mgrs) == 15  # 1 m precision: 5+5 digits
        expect_px = px_m2 if px_m2 is not None else geo.gsd_m(georef, 240, 200) ** 2
        assert f.area_m2 == pytest.approx(f.area_px * expect_px, rel=0.03 if px_m2 is None else 1e-3)
        # and close to the geodesic area of the exported polygon itself (a rectangle has no holes)
        if f.grade == "destroyed":
            assert geo.polygon_area_m2(ring) == pytest.approx(f.area_m2, rel=0.01)
        assert f.location_approximate is False


def test_mgrs_of_a_known_point():
    """The centroid's MGRS matches mgrs' own conversion of the centroid lat/lon."""
    s = np.zeros((100, 100), np.float32)
    s[40:60, 40:60] = 3 * T
    (f,) = extract_findings(s, 1.0, T, georef=UTM, scene_name="m")
    lon, lat = geo.pixel_to_lonlat(UTM, 50.0, 50.0)
    assert f.centroid_lon == pytest.approx(float(lon), abs=1e-9) and f.centroid_lat == pytest.approx(float(lat))
    assert f.mgrs == geo.to_mgrs(float(lat), float(lon), 5)
    assert f.area_m2 == pytest.approx(400 * 0.25, rel=1e-3)


def test_nodata_enclosed_by_a_region_is_a_hole_in_its_geometry():
    s = np.zeros((120, 120), np.float32)
    s[20:100, 20:100] = 3 * T
    s[40:80, 40:80] = np.nan
    (f,) = extract_findings(s, 1.0, T, georef=UTM, scene_name="h")
    ext, *holes = f.geometry["coordinates"]
    assert len(holes) == 1
    g = shape(f.geometry)
    assert g.exterior.is_ccw and not g.interiors[0].is_ccw  # RFC 7946: holes clockwise
    assert geo.polygon_area_m2(ext) - geo.polygon_area_m2(holes[0]) == pytest.approx(f.area_m2, rel=1e-3)
    assert f.area_m2 == pytest.approx((80 * 80 - 40 * 40) * 0.25, rel=1e-3)
    # the hole is the nodata square exactly (pixel edges), in lon/lat
    cols, rows = geo.lonlat_to_pixel(UTM, *np.asarray(holes[0]).T)
    assert Polygon(np.column_stack([cols, rows])).hausdorff_distance(box(40, 40, 80, 80)) < 0.05  # 7-decimal rounding
