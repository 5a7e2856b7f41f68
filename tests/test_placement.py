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
