"""Map page (Streamlit AppTest): a real georeferenced analysis in a temporary workspace, drawn offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.detection.detector import Detector
from core.detection.pipeline import analyze_scene
from core.imagery.reader import open_scene
from core.learn.training import TrainConfig, train
from core.store import Workspace

torch.set_num_threads(1)
APP = Path(__file__).resolve().parents[1] / "app.py"
HOSTILE = "<img src=x onerror=alert(1)> ${alert(2)}"
RETURNED = ["last_object_clicked", "last_object_clicked_tooltip"]


def _need(path):
    if not path.exists():
        pytest.skip(f"real data file missing: {path}")
    return path


@pytest.fixture(scope="module")
def workspace(shared_data, tmp_path_factory):
    """Case 1: analysis of a GeoTIFF orthophoto (named with HTML in it), a DJI frame with GPS (approximate
    footprint) and a plain photo (no georef), analysed by a small model trained here; a finding carries hostile
    notes. Case 2 is empty."""
    tmp = tmp_path_factory.mktemp("map")
    flood = sorted((shared_data / "aider" / "flooded_areas").glob("*.jpg"))[:4]
    if len(flood) < 4:
        pytest.skip("AIDER flood images missing")
    ortho = _need(shared_data / "geotiff" / "webodm" / "orthophoto.tif")
    dji = _need(shared_data / "drone" / "deepforest_pypi" / "AWPE Pigeon Lake 2020 DJI_0005.JPG")
    ckpt = tmp / "tiny.pt"
    train(TrainConfig(arch="fcdd-resnet18", normal=[str(p) for p in flood], input_size=64, epochs=2,
                      steps_per_epoch=2, batch_size=4, device="cpu", out=str(ckpt), name="tiny"),
          progress=lambda e: None)
    det = Detector.load(ckpt, device="cpu")
    ws = Workspace(tmp / "ws")
    case = ws.create_case("Pigeon Lake")
    empty = ws.create_case("Nothing yet")
    inputs = [{"path": str(ortho), "name": HOSTILE}, {"path": str(dji), "name": "dji.jpg"},
              {"path": str(flood[0]), "name": "photo.jpg"}]
    aid = ws.create_analysis(case, inputs, model=det.info(), threshold=None, options={})
    for inp in inputs:
        scene = open_scene(inp["path"], name=inp["name"])
        try:
            ws.save_scene_result(aid, analyze_scene(scene, det, ws.analysis_dir(aid)), input_name=inp["name"])
        finally:
            scene.close()
    ws.finish_analysis(aid)
    results = ws.scene_results(aid)
    first = next(f for r in results if r.georef is not None for f in r.findings)
    ws.review_finding(first.id, analyst="kim", notes=HOSTILE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BDA_WORKSPACE", str(ws.root))
        mp.setenv("BDA_MODEL", str(ckpt))
        yield {"ws": ws, "case": case, "empty": empty, "analysis": aid, "results": results, "first": first.id}


def _map_page(case_id):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["case_id"] = case_id
    at.run()
    assert not at.exception, at.exception
    at.switch_page("pages/map.py").run()
    assert not at.exception, at.exception
    return at


def _folium_args(at):
    comps = [c for c in at.get("component_instance") if c.proto.component_name.endswith("st_folium")]
    assert len(comps) == 1
    return json.loads(comps[0].proto.json_args)


def test_map_page_draws_every_georeferenced_result_offline(workspace):
    at = _map_page(workspace["case"])
    args = _folium_args(at)
    assert args["js_links"] and all(u.startswith("data:") for u in args["js_links"] + args["css_links"])
    assert sorted(args["returned_objects"]) == sorted(RETURNED)  # panning and zooming never rerun the page
    script = args["script"] + args["header"] + args["html"]
    # orthophoto + drone frame, each as imagery and as heatmap; the photo has no georef
    assert script.count("L.imageOverlay") == 4
    assert "Imagery (the analysed images)" in script
    georef_findings = [f.id for r in workspace["results"] if r.georef is not None for f in r.findings]
    assert georef_findings and all(fid in script for fid in georef_findings)
    assert "<img src=x" not in script and "${alert" not in script
    assert "approximate footprint from GPS + camera model" in script
    assert [s.value for s in at.selectbox if s.label == "Basemap"] == ["none"]
    assert any("photo.jpg" in t.value for t in at.text)  # listed as not on the map
    legend = next(m.value for m in at.markdown if "rejected" in m.value)
    assert "Possibly damaged" in legend and "No visible damage" in legend  # the scale these results were graded on


def test_same_state_redraws_the_same_map(workspace):
    at = _map_page(workspace["case"])
    first = _folium_args(at)
    at.run()
    second = _folium_args(at)
    assert first["key"] == second["key"] and first["script"] == second["script"]  # no remount on rerun


def test_choosing_a_finding_shows_its_details_and_chip(workspace):
    at = _map_page(workspace["case"])
    pick = next(s for s in at.selectbox if s.label == "Finding")
    assert pick.value is None
    pick.set_value(workspace["first"]).run()
    assert not at.exception, at.exception
    assert any(h.value == workspace["first"] for h in at.subheader)
    table = at.dataframe[0].value
    values = dict(zip(table["field"], table["value"], strict=True))
    assert values["Notes"] == HOSTILE and values["Analyst"] == "kim"  # shown as text
    assert len(at.get("image")) == 1


def test_basemap_choice_changes_the_map(workspace):
    at = _map_page(workspace["case"])
    next(s for s in at.selectbox if s.label == "Basemap").set_value("OpenStreetMap (online)").run()
    assert not at.exception
    assert "tile.openstreetmap.org" in _folium_args(at)["script"]


def test_case_without_analyses_says_what_to_do(workspace):
    at = _map_page(workspace["empty"])
    assert any("Analyze page" in i.value for i in at.info)
    assert not at.get("component_instance")


def test_offline_basemaps_are_added_drawn_and_remembered_per_case(workspace, tmp_path):
    """The world layer is on by default; an MBTiles file and a GeoTIFF added by path are drawn from the files
    (embedded, nothing fetched) and remembered for this case only; a bad path is a clear error."""
    from core.mapping.basemaps import case_basemaps, scenes_area
    from tests.support.basemaps import make_mbtiles, make_ortho
    from ui import state as S

    w, s, e, n = scenes_area(workspace["results"])
    lat, lon = (s + n) / 2, (w + e) / 2
    mb = make_mbtiles(tmp_path / "area.mbtiles", lat, lon, zooms=range(9, 14))
    ortho = make_ortho(tmp_path / "ortho.tif", lat, lon)
    at = _map_page(workspace["case"])
    script = _folium_args(at)["script"]
    assert "World borders and capitals (bundled)" in script and "Seoul" in script  # never blank
    assert "bda-map-legend" in script and "bda-zoom-to-scene" in script
    for path in (tmp_path / "nope.mbtiles", mb, ortho):
        at.text_input(key=S.W_BASEMAP_PATH).input(str(path))
        next(b for b in at.button if b.label == "Add basemap").click().run()
        assert not at.exception, at.exception
        assert any("does not exist" in e.value for e in at.error) == (path.name == "nope.mbtiles")
    assert [d["kind"] for d in case_basemaps(workspace["ws"], workspace["case"])] == ["world", "mbtiles", "geotiff"]
    assert case_basemaps(workspace["ws"], workspace["empty"])[0]["kind"] == "world"  # per case
    again = _map_page(workspace["case"])  # a new session: remembered
    args = _folium_args(again)
    assert "MBTiles tiles: area.mbtiles" in args["script"] and "GeoTIFF orthophoto: ortho.tif" in args["script"]
    assert "maxNativeZoom" in args["script"] and '"bda-raster"' in args["script"]
    assert "tile.openstreetmap.org" not in args["script"]
