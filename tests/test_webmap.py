"""core.mapping.webmap: Mercator warping and bounds order, offline resources, escaping, determinism, click lookup."""

from __future__ import annotations

import base64
import html
import io
import re

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from PIL import Image
from pyproj import Transformer

from core.detection.heatmap import HeatmapWriter
from core.errors import CoreError
from core.geo import georef as geo
from core.mapping import webmap
from core.types import Finding, GeoRef, SceneResult
from tests.support.data import need
from ui.map_clicks import clicked_finding

UTM = GeoRef(crs="EPSG:32615", transform=Affine(0.5, 0.0, 363000.0, 0.0, -0.5, 4105000.0))
HOSTILE = "<script>alert('x')</script> <img src=x onerror=alert(1)> ${alert(2)} `tick` \\u0041 {{'map_div'}}"
CDN_TAG = re.compile(r"<(script|link)\b[^>]*\b(src|href)\s*=\s*[\"']?\s*(https?:)?//", re.IGNORECASE)


def _heatmap(path, georef, h=300, w=400, hot=(slice(100, 140), slice(200, 260)), value=3.0):
    s = np.zeros((h, w), np.float32)
    s[hot] = value
    s[:8, :8] = np.nan
    with HeatmapWriter(path, w, h, georef) as hw:
        hw.write_rows(0, s)
    return path


def _finding(georef, fid="F001", *, grade="destroyed", notes="", name="scene", cols=(200, 260), rows=(100, 140),
             status="unreviewed"):
    c0, c1 = cols
    r0, r1 = rows
    ring_px = [(c0, r0), (c1, r0), (c1, r1), (c0, r1)]
    lon, lat = geo.pixel_to_lonlat(georef, np.array([p[0] for p in ring_px], float),
                                   np.array([p[1] for p in ring_px], float))
    ring = [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]
    return Finding(id=fid, scene_name=name, polygon_px=ring_px, bbox_px=(c0, r0, c1, r1), area_px=2400.0,
                   score_mean=3.0, score_max=3.0, threshold=1.0, confidence=0.9, grade=grade,
                   geometry={"type": "Polygon", "coordinates": [ring + [ring[0]]]},
                   centroid_lat=float(lat.mean()), centroid_lon=float(lon.mean()), mgrs="15SUC1234567890",
                   area_m2=600.0, notes=notes, source_name=name, review_status=status)


def _result(tmp_path, georef=UTM, name="scene", findings=None, **kw):
    hp = _heatmap(tmp_path / f"{abs(hash(name))}_heatmap.tif", georef) if georef is not None else None
    return SceneResult(scene_name=name, width=400, height=300, image_score=2.0, verdict="anomalous", georef=georef,
                       bounds_wgs84=None, heatmap_path=hp, overlay_path=None,
                       findings=findings if findings is not None else [_finding(georef or UTM, name=name)],
                       meta={"threshold": 1.0, **kw})


def _png(uri):
    assert uri.startswith(("data:image/png;base64,", "data:image/webp;base64,"))
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA"))


# -- warping and bounds -----------------------------------------------------------------------------------------
def test_overlay_bounds_are_south_west_north_east_and_match_rasterio(tmp_path):
    path = _heatmap(tmp_path / "h.tif", UTM)
    ov = webmap.heatmap_overlay(path, 1.0)
    (s, w), (n, e) = ov.bounds
    assert s < n and w < e
    assert 37.0 < s < 37.2 and -94.6 < w < -94.4  # UTM 15N near Joplin: lat ~37.08, lon ~-94.5
    with rasterio.open(path) as ds:
        rw, rs, re_, rn = rasterio.warp.transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
    px_deg = 0.5 / 111_000 * 2  # a couple of half-metre pixels, in degrees
    assert s == pytest.approx(rs, abs=px_deg) and w == pytest.approx(rw, abs=px_deg)
    assert n == pytest.approx(rn, abs=px_deg) and e == pytest.approx(re_, abs=px_deg)
    assert ov.crs == "EPSG:3857"


def test_warped_overlay_shape_transparency_and_hotspot_position(tmp_path):
    path = _heatmap(tmp_path / "h.tif", UTM)
    ov = webmap.heatmap_overlay(path, 1.0, max_px=256)
    rgba = _png(ov.png_data_uri)
    assert rgba.shape == (*ov.shape, 4) and max(ov.shape) == 256
    alpha = rgba[..., 3]
    assert alpha.max() > 0 and (alpha == 0).mean() > 0.9  # only the hot square is drawn; below threshold is clear
    rr, cc = np.nonzero(alpha)
    (s, w), (n, e) = ov.bounds
    to_merc = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    (x0, x1), (y0, y1) = to_merc.transform([w, e], [s, n])
    h, wd = alpha.shape
    mx = x0 + (cc.mean() + 0.5) / wd * (x1 - x0)
    my = y1 - (rr.mean() + 0.5) / h * (y1 - y0)
    lon, lat = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True).transform(mx, my)
    elon, elat = geo.pixel_to_lonlat(UTM, 230.0, 120.0)  # centre of the hot square in source pixels
    _, _, dist = geo._GEOD.inv(lon, lat, float(elon), float(elat))
    assert dist < 3.0  # metres: within ~2 overlay pixels of where it is in the source raster


def test_rotated_drone_footprint_warps_inside_its_bounds(tmp_path):
    fp = geo.footprint_georef(45.038, -94.349, agl_m=60, focal_mm=8.8, sensor_width_mm=13.2, width=400, height=300,
                              yaw_deg=35.0)
    path = _heatmap(tmp_path / "d.tif", fp, value=np.nan)  # all nodata except zeros: footprint shape only
    merc, tr = webmap.warp_to_mercator(np.zeros((300, 400), np.float32), fp, max_px=200)
    valid = np.isfinite(merc)
    assert 0.4 < valid.mean() < 0.95  # a rotated rectangle inside its axis-aligned box
    ov = webmap.heatmap_overlay(path, 1.0)
    (s, w), (n, e) = ov.bounds
    lon, lat = geo.pixel_to_lonlat(fp, np.array([0, 400, 400, 0], float), np.array([0, 0, 300, 300], float))
    eps = 1e-6
    assert np.all((lat >= s - eps) & (lat <= n + eps) & (lon >= w - eps) & (lon <= e + eps))
    assert tr.b == 0 and tr.d == 0  # north-up Mercator grid


@pytest.mark.parametrize("sub", ["post", "pre"])
def test_real_joplin_georefs_overlay_where_rasterio_puts_them(tmp_path, shared_data, sub):
    folder = shared_data / "geotiff" / "joplin_tornado_xview2deploy" / sub
    tif = sorted(folder.glob("*.tif"))
    if not tif:
        pytest.skip(f"no Joplin {sub} tiles in {folder}")
    with rasterio.open(tif[0]) as ds:
        georef = GeoRef(crs=ds.crs.to_string(), transform=ds.transform)
        w_, s_, e_, n_ = rasterio.warp.transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
        h, w = ds.height, ds.width
    path = _heatmap(tmp_path / "j.tif", georef, h=h, w=w)
    ov = webmap.heatmap_overlay(path, 1.0)
    (s, w0), (n, e) = ov.bounds
    tol = 2e-5  # ~2 m
    assert (s, w0, n, e) == pytest.approx((s_, w_, n_, e_), abs=tol)
    assert 36.9 < s < n < 37.3 and -94.7 < w0 < e < -94.3  # Joplin, Missouri


# -- offline, escaping, determinism -----------------------------------------------------------------------------
def test_offline_resources_are_inline_leaflet():
    js, css = webmap.offline_resources()
    assert [n for n, _ in js] == ["leaflet"] and [n for n, _ in css] == ["leaflet_css"]
    code = base64.b64decode(js[0][1].split(",", 1)[1]).decode()
    style = base64.b64decode(css[0][1].split(",", 1)[1]).decode()
    assert js[0][1].startswith("data:text/javascript;base64,") and "1.9.3" in code and "Leaflet" in code
    assert ".leaflet-container" in style and "url(images/" not in style  # images are inlined too


@pytest.mark.parametrize("basemap", list(webmap.BASEMAPS))
def test_map_html_loads_nothing_from_a_cdn(tmp_path, basemap):
    m = webmap.build_map([_result(tmp_path)], basemap=basemap)
    page = webmap.map_html(m)
    assert not CDN_TAG.search(page), CDN_TAG.search(page)
    js, css = webmap.resource_links(m)  # what streamlit-folium hands to its iframe as <script src>/<link href>
    assert js and css and all(u.startswith("data:") for u in js + css)
    assert "cdn.jsdelivr" not in page and "code.jquery" not in page and "bootstrapcdn" not in page


def test_no_tile_layer_by_default_and_tiles_only_when_chosen(tmp_path):
    plain = webmap.map_html(webmap.build_map([_result(tmp_path)]))
    assert "L.tileLayer" not in plain and "tile.openstreetmap" not in plain
    osm = webmap.map_html(webmap.build_map([_result(tmp_path)], basemap="OpenStreetMap (online)"))
    assert "tile.openstreetmap.org" in osm
    with pytest.raises(CoreError, match="basemap"):
        webmap.build_map([_result(tmp_path)], basemap="Google")


def test_same_input_gives_identical_html(tmp_path):
    results = [_result(tmp_path, name="a"), _result(tmp_path, name="b", gps={"lat": 37.08, "lon": -94.5})]
    first = webmap.map_html(webmap.build_map(results))
    second = webmap.map_html(webmap.build_map(results))
    assert first == second
    other = webmap.map_html(webmap.build_map(results[:1]))
    assert other != first


def test_hostile_names_and_notes_are_shown_as_text(tmp_path):
    f = _finding(UTM, fid="F<1>", notes=HOSTILE, name=HOSTILE, grade=HOSTILE)
    sr = _result(tmp_path, name=HOSTILE, findings=[f])
    popup = webmap.finding_popup_html(f)
    for bad in ("<script", "<img", "${", "`", "\\", "{{"):
        assert bad not in popup
    assert html.unescape(popup).count(HOSTILE) == 3  # notes, source and grade, all shown literally
    assert html.unescape(webmap.escape(HOSTILE)) == HOSTILE
    page = webmap.map_html(webmap.build_map([sr]))
    assert "<script>alert" not in page and "<img src=x" not in page and "${alert" not in page
    assert "{{'map_div'}}" not in page  # streamlit-folium rewrites this Jinja-like form; it must never reach it raw


def test_layers_findings_footprints_and_positions(tmp_path):
    fp = geo.footprint_georef(45.038, -94.349, 60, 8.8, 13.2, 400, 300, yaw_deg=10)
    drone = _result(tmp_path, georef=fp, name="dji.jpg", gps={"lat": 45.038, "lon": -94.349, "agl": 60.0})
    rejected = _finding(UTM, fid="F002", status="rejected")
    raster = _result(tmp_path, name="ortho.tif", findings=[_finding(UTM), rejected])
    photo = _result(tmp_path, georef=None, name="photo.jpg", findings=[])
    page = webmap.map_html(webmap.build_map([drone, raster, photo]))
    assert page.count("L.imageOverlay") == 2  # the photo has no georef and no overlay
    assert "approximate footprint from GPS + camera model" in page and "dashArray" in page
    assert "GPS of dji.jpg" in page and "60 m above ground" in page and "centre of ortho.tif" in page
    assert "photo.jpg" not in page
    assert page.count('"popup":') == 3 and "#718096" in page  # rejected findings are greyed, still listed
    assert page.count("L.geoJSON(") == 1  # all findings in one layer
    for name in ("Heatmaps", "Findings", "Footprints", "Positions"):
        assert name in page
    assert "L.control.layers" in page and "fitBounds" in page


def test_scene_threshold_prefers_the_analysis_record(tmp_path):
    sr = _result(tmp_path)
    assert webmap.scene_threshold(sr) == 1.0
    sr.meta["threshold"] = 2.5
    assert webmap.scene_threshold(sr) == 2.5
    sr.meta.pop("threshold")
    sr.findings[0].threshold = 1.7
    assert webmap.scene_threshold(sr) == 1.7


def test_clicked_finding_by_tooltip_then_by_point(tmp_path):
    a = _finding(UTM, "A1-F001", cols=(10, 60), rows=(10, 60))
    b = _finding(UTM, "A1-F002", cols=(200, 260), rows=(100, 140), grade="damaged")
    sr = _result(tmp_path, findings=[a, b])
    tip = html.unescape(webmap.finding_tooltip(b))
    assert clicked_finding([sr], {"last_object_clicked_tooltip": tip}) is b
    lat, lon = b.centroid_lat, b.centroid_lon
    assert clicked_finding([sr], {"last_object_clicked": {"lat": lat, "lng": lon}}) is b
    assert clicked_finding([sr], {"last_object_clicked": {"lat": 0.0, "lng": 0.0}}) is None
    assert clicked_finding([sr], None) is None


def test_finding_chip_outlines_the_finding_on_the_source(tmp_path):
    rgb = np.full((300, 400, 3), 90, np.uint8)
    src = tmp_path / "src.png"
    Image.fromarray(rgb).save(src)
    sr = _result(tmp_path)
    sr.source_path = src
    chip = webmap.finding_chip(sr, sr.findings[0], size=200)
    assert chip.shape[2] == 3 and max(chip.shape[:2]) == 200
    assert (chip != 90).any()  # the outline was drawn
    sr.source_path = tmp_path / "gone.png"
    assert webmap.finding_chip(sr, sr.findings[0]) is None


def test_imagery_overlay_puts_the_image_itself_on_the_map(shared_data):
    """The analysed image is drawn on the map (offline 'basemap'), in the right place, transparent on nodata."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from core.geo import georef as geo
    from core.imagery.reader import open_scene
    from core.mapping.webmap import imagery_overlay

    path = shared_data / "geotiff/rasterio/RGB.byte.tif"  # Landsat with nodata 0 borders
    scene = open_scene(path)
    ov = imagery_overlay(path, scene.georef, scene.width, scene.height, max_px=256)
    scene.close()
    assert ov is not None
    (s, w), (n, e) = ov.bounds
    ww, ss, ee, nn = geo.bounds_wgs84(scene.georef, scene.width, scene.height)
    assert abs(s - ss) < 0.01 and abs(n - nn) < 0.01 and abs(w - ww) < 0.01 and abs(e - ee) < 0.01
    assert ov.png_data_uri.startswith("data:image/webp;base64,")
    rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(ov.png_data_uri.split(",", 1)[1]))).convert("RGBA"))
    alpha = rgba[..., 3]
    assert 0.3 < (alpha > 0).mean() < 0.95, "nodata borders must be transparent, the image opaque"
    assert rgba[alpha > 0, :3].mean() > 10, "the image's own pixels are drawn"
    assert imagery_overlay(shared_data / "nope.tif", scene.georef, scene.width, scene.height) is None


def test_imagery_overlay_leaves_an_unmarked_black_border_transparent(shared_data):
    """A co-registered Joplin chip is 59 % black border with no nodata value: on the map that border is not drawn
    (it would hide the basemap and other scenes), as the analysis leaves it out."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from core.imagery.reader import open_scene
    from core.mapping.webmap import imagery_overlay

    path = need(shared_data / "geotiff/joplin_tornado_xview2deploy/chips_aligned/post/1_post.tif")
    scene = open_scene(path)
    ov = imagery_overlay(path, scene.georef, scene.width, scene.height, max_px=256)
    scene.close()
    assert ov is not None
    rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(ov.png_data_uri.split(",", 1)[1]))).convert("RGBA"))
    opaque = rgba[..., 3] > 0
    assert 0.2 < opaque.mean() < 0.5, f"{opaque.mean():.2f} of the overlay drawn"
    assert np.median(rgba[opaque, :3].max(axis=1)) > 30, "what is drawn is imagery, not the black border"
