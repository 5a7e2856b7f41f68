"""Placing an un-georeferenced frame: its heatmap GeoTIFF gets the location, findings get coordinates, and the
map can draw its heatmap."""

from __future__ import annotations

import rasterio

from core import geo
from core.detector import Detector
from core.imagery import open_scene
from core.pipeline import analyze_scene, place_result
from core.webmap import heatmap_overlay


def test_placed_frame_heatmap_and_findings_carry_the_location(shared_data, tiny_model, tmp_path):
    photo = shared_data / "aider/fire/fire_image0196.jpg"
    det = Detector.load(tiny_model, device="cpu")
    scene = open_scene(photo)
    res = analyze_scene(scene, det, tmp_path, threshold=0.5)
    scene.close()
    assert res.georef is None and res.findings and all(f.centroid_lat is None for f in res.findings)
    assert heatmap_overlay(res.heatmap_path, 0.5) is None  # nothing to place on a map yet

    georef = geo.user_georef(37.07, -94.49, 0.5, res.width, res.height)
    placed = place_result(res, georef, det.info(), 0.5)
    with rasterio.open(placed.heatmap_path) as ds:
        assert ds.crs is not None and ds.transform[0] != 1.0
        cx, cy = ds.xy(ds.height / 2, ds.width / 2)
    lon, lat = geo.pixel_to_lonlat(georef, [res.width / 2], [res.height / 2])
    w, s, e, n = placed.bounds_wgs84
    assert w < -94.49 < e and s < 37.07 < n and abs(lat[0] - 37.07) < 1e-4
    assert placed.findings and all(w <= f.centroid_lon <= e and s <= f.centroid_lat <= n for f in placed.findings)
    assert all(f.area_m2 and f.area_m2 > 0 and f.mgrs for f in placed.findings)
    assert heatmap_overlay(placed.heatmap_path, 0.5) is not None


def test_a_frame_with_gps_but_no_footprint_is_marked_and_placed_from_its_gps(shared_data, tiny_model, tmp_path,
                                                                           monkeypatch):
    """pyodm's tiny frame has EXIF GPS but no height above ground: no footprint, yet its GPS reaches the result,
    the map marks it, and the Analyze page's placement form starts from it."""
    from core.batch import analyze_input
    from core.store import Workspace
    from core.webmap import build_map, gps_point, map_html
    from pages import _state as S
    from tests.conftest import need
    from tests.test_app_shell import new_app, server_like_reruns

    frame = need(shared_data / "drone/pyodm_tiny/image_1.jpg")
    det = Detector.load(tiny_model, device="cpu")
    res = analyze_input({"path": str(frame)}, det, tmp_path / "out")
    assert res.error is None and res.georef is None
    lat, lon = gps_point(res)
    assert abs(lat - 41.22637) < 1e-4 and abs(lon + 81.70550) < 1e-4
    html = map_html(build_map([res]))
    assert "GPS of image_1.jpg" in html and "no footprint" in html

    ws = Workspace(tmp_path / "ws")
    cid = ws.create_case("drone")
    aid = ws.create_analysis(cid, [{"path": str(frame)}], model=det.info(), threshold=None, options={})
    ws.save_scene_result(aid, res)
    ws.finish_analysis(aid)
    server_like_reruns(monkeypatch)
    monkeypatch.setenv("BDA_WORKSPACE", str(ws.root))
    monkeypatch.setenv("BDA_MODEL", str(tiny_model))
    at = new_app()
    at.session_state[S.CASE_ID] = cid
    at.session_state[S.ANALYSIS_ID] = aid
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    boxes = {n.label: n for n in at.number_input}
    assert abs(boxes["Centre latitude (°)"].value - lat) < 1e-6
    assert abs(boxes["Centre longitude (°)"].value - lon) < 1e-6
    boxes["Heading of the image top (° from north)"].set_value(90.0)
    boxes["Ground sample distance (m/px)"].set_value(0.05)
    next(b for b in at.button if b.label == "Place on the map").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (placed,) = ws.scene_results(aid)
    assert placed.georef is not None and placed.meta["placement"]["yaw_deg"] == 90.0
    w, s, e, n = placed.bounds_wgs84
    assert w < lon < e and s < lat < n
