"""Placing an un-georeferenced frame: its heatmap GeoTIFF gets the location, findings get coordinates, and the
map can draw its heatmap."""

from __future__ import annotations

from pathlib import Path

import rasterio

from core.detection.detector import Detector
from core.detection.pipeline import analyze_scene, place_result
from core.geo import georef as geo
from core.imagery.reader import open_scene
from core.mapping.webmap import heatmap_overlay


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
    from core.analysis.step import analyze_input
    from core.mapping.webmap import build_map, gps_point, map_html
    from tests.support.data import need

    frame = need(shared_data / "drone/pyodm_tiny/image_1.jpg")
    det = Detector.load(tiny_model, device="cpu")
    res = analyze_input({"path": str(frame)}, det, tmp_path / "out")
    assert res.error is None and res.georef is None
    lat, lon = gps_point(res)
    assert abs(lat - 41.22637) < 1e-4 and abs(lon + 81.70550) < 1e-4
    html = map_html(build_map([res]))
    assert "GPS of image_1.jpg" in html and "no footprint" in html

    ws, aid, at = _analyze_page_of(res, frame, det, tmp_path, tiny_model, monkeypatch)
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


def test_cli_places_a_photo_by_bounds_and_refuses_bad_requests(shared_data, tiny_model, tmp_path, capsys):
    from core.cli.main import main
    from core.store import Workspace
    from tests.support.data import need

    photo = need(shared_data / "aider/fire/fire_image0196.jpg")
    ws_root = tmp_path / "ws"
    assert main(["analyze", str(photo), "--model", str(tiny_model), "--threshold", "0.5", "--workspace",
                 str(ws_root), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    ws = Workspace(ws_root)
    (a,) = ws.list_analyses()
    base = ["place", "--workspace", str(ws_root), "--analysis", str(a["id"])]
    capsys.readouterr()
    for extra, words in (
            (["--image", "nope.jpg", "--bounds", "1,2,3,4"], "has no analysed image 'nope.jpg'"),
            (["--image", photo.name, "--bounds", "1,2,3"], "takes 4 numbers"),
            (["--image", photo.name, "--bounds", "1,2,3,4", "--center", "1,2"], "not both"),
            (["--image", photo.name, "--center", "37,-94"], "needs its ground sample distance"),
            (["--image", photo.name, "--bounds=-94.49,37.06,-94.50,37.07"], "west < east")):
        assert main(base + extra) == 2, extra
        assert words in capsys.readouterr().err
    assert main(base + ["--image", photo.name, "--bounds=-94.50,37.06,-94.49,37.07"]) == 0
    (placed,) = ws.scene_results(a["id"])
    assert placed.georef is not None and placed.meta["placement"] == {"bounds_wgs84": [-94.5, 37.06, -94.49, 37.07]}
    assert placed.findings and all(-94.5 <= f.centroid_lon <= -94.49 and 37.06 <= f.centroid_lat <= 37.07
                                   and f.area_m2 > 0 for f in placed.findings)
    # placed by hand: it can be placed again (corrected); a georeferenced raster cannot
    assert main(base + ["--image", photo.name, "--center", "37.065,-94.495", "--gsd", "0.2", "--yaw", "30"]) == 0
    (moved,) = ws.scene_results(a["id"])
    assert moved.meta["placement"]["yaw_deg"] == 30.0


def test_the_analyze_page_places_a_photo_by_its_bounds(shared_data, tiny_model, tmp_path, monkeypatch):
    from core.analysis.step import analyze_input
    from tests.support.data import need

    photo = need(shared_data / "aider/fire/fire_image0196.jpg")
    det = Detector.load(tiny_model, device="cpu")
    res = analyze_input({"path": str(photo)}, det, tmp_path / "out", threshold=0.5)
    ws, aid, at = _analyze_page_of(res, photo, det, tmp_path, tiny_model, monkeypatch)
    next(r for r in at.radio if r.label == "Place by").set_value("bounds").run()
    boxes = {n.label: n for n in at.number_input}
    for label, v in (("West (° longitude)", 126.97), ("South (° latitude)", 37.56), ("East (° longitude)", 126.98),
                     ("North (° latitude)", 37.57)):
        boxes[label].set_value(v)
    next(b for b in at.button if b.label == "Place on the map").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (placed,) = ws.scene_results(aid)
    assert placed.meta["placement"] == {"bounds_wgs84": [126.97, 37.56, 126.98, 37.57]}
    assert placed.findings and all(126.97 <= f.centroid_lon <= 126.98 for f in placed.findings)


def _analyze_page_of(res, path, det, tmp_path, model_path, monkeypatch):
    """A workspace holding ``res`` as a one-image analysis, and an app session showing it on the Analyze page."""
    from core.store import Workspace
    from tests.support.app import new_app, server_like_reruns
    from ui import state as S

    ws = Workspace(tmp_path / "ws")
    cid = ws.create_case("placing")
    aid = ws.create_analysis(cid, [{"path": str(path)}], model=det.info(), threshold=None, options={})
    ws.save_scene_result(aid, res)
    ws.finish_analysis(aid)
    server_like_reruns(monkeypatch)
    monkeypatch.setenv("BDA_WORKSPACE", str(ws.root))
    monkeypatch.setenv("BDA_MODEL", str(model_path))
    at = new_app()
    at.session_state[S.CASE_ID], at.session_state[S.ANALYSIS_ID] = cid, aid
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return ws, aid, at


def test_an_unreferenced_name_pair_placed_by_hand_gets_change_findings_with_coordinates(
        shared_data: Path, tiny_model: Path, tmp_path: Path) -> None:
    """xBD PNGs copied without their labels have no georeference; paired by name, placed by the analyst, their
    change findings (not the post-only ones) get coordinates, and a new change threshold re-cuts them."""
    import shutil

    from core.change.scene import analyze_pair
    from core.detection.pipeline import refind_findings
    from tests.support.data import need

    detector = Detector.load(tiny_model, device="cpu")
    src = need(shared_data / "xbd/harvey/images/hurricane-harvey_00000224_post_disaster.png")
    for tag in ("post", "pre"):
        shutil.copy(src.with_name(src.name.replace("_post_", f"_{tag}_")), tmp_path / f"a_{tag}_disaster.png")
    post = open_scene(tmp_path / "a_post_disaster.png")
    try:
        assert post.georef is None
        res = analyze_pair(post, tmp_path / "a_pre_disaster.png", detector, tmp_path / "out")
    finally:
        post.close()
    assert res.findings and all(f.geometry is None for f in res.findings)
    thr = res.meta["change"]["threshold"]
    model = {"name": "m", "sha256": "ab" * 32}
    placed = place_result(res, geo.user_georef(29.76, -95.37, 0.5, res.width, res.height), model, 5.0)
    assert placed.findings and all(f.geometry is not None and f.area_m2 > 0 for f in placed.findings)
    assert all(f.threshold == thr and f.pre_source_name == "a_pre_disaster.png" for f in placed.findings)
    assert abs(placed.findings[0].centroid_lat - 29.76) < 0.01
    area = sum(f.area_px for f in placed.findings)
    fewer = refind_findings(placed, 5.0, model, change_threshold=thr * 2)  # updates the result in place
    assert fewer.meta["change"]["threshold"] == thr * 2
    assert sum(f.area_px for f in fewer.findings) < area
    assert all(f.score_max >= thr * 2 for f in fewer.findings)
