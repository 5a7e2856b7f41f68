"""Map page with buildings (Streamlit AppTest): footprints drawn by grade, a building labelled in its panel (audit
trail in the workspace), the calibrate button showing cross-validated figures and re-grading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from streamlit.testing.v1 import AppTest

from core.buildings import assess_analysis
from core.store import Workspace
from core.store.buildings import building_ref
from core.types import GeoRef, SceneResult

APP = Path(__file__).resolve().parents[1] / "app.py"
ORIGIN = (363000.0, 4104000.0)
TR = Affine(1.0, 0, ORIGIN[0], 0, -1.0, ORIGIN[1])
#: eight 8 m buildings in a row; the change map is hot (2.5) under the last four, calm (0.3) elsewhere
COLS = [4 + 12 * k for k in range(8)]


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    ws = Workspace(tmp_path / "ws")
    cid = ws.create_case("Joplin")
    aid = ws.create_analysis(cid, [{"path": "s.tif", "name": "s.tif"}], model={"name": "m"}, threshold=None,
                             options={})
    out = ws.analysis_dir(aid)
    out.mkdir(parents=True, exist_ok=True)
    change = np.full((100, 100), 0.3, np.float32)
    for c in COLS[4:]:
        change[40:48, c:c + 8] = 2.5
    paths = {}
    for name, arr in (("change", change), ("heatmap", np.full((100, 100), 0.1, np.float32))):
        p = out / f"s_{name}.tif"
        with rasterio.open(p, "w", driver="GTiff", width=100, height=100, count=1, dtype="float32",
                           crs="EPSG:32615", transform=TR) as ds:
            ds.write(arr, 1)
        paths[name] = p
    sr = SceneResult(scene_name="s.tif", width=100, height=100, image_score=0.0, verdict="normal",
                     georef=GeoRef("EPSG:32615", TR), bounds_wgs84=(-94.5, 37.0, -94.49, 37.01),
                     heatmap_path=paths["heatmap"], overlay_path=None, change_path=paths["change"],
                     meta={"threshold": 1.0, "change": {"threshold": 2.0}})
    ws.save_scene_result(aid, sr, input_name="s.tif")
    ws.finish_analysis(aid)
    tr = Transformer.from_crs("EPSG:32615", "EPSG:4326", always_xy=True)
    feats = []
    for k, c in enumerate(COLS):
        g = shapely.box(ORIGIN[0] + c, ORIGIN[1] - 48, ORIGIN[0] + c + 8, ORIGIN[1] - 40)
        g = shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        feats.append({"type": "Feature", "properties": {"id": f"h{k}"}, "geometry": shapely.geometry.mapping(g)})
    fp = tmp_path / "fp.geojson"
    fp.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    assess_analysis(ws.scene_results(aid), [str(fp)], out, ws=ws, analysis_id=aid)
    monkeypatch.setenv("BDA_WORKSPACE", str(ws.root))
    return {"ws": ws, "case": cid, "analysis": aid}


def _map_page(case_id):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["case_id"] = case_id
    at.run()
    assert not at.exception, at.exception
    at.switch_page("pages/map.py").run()
    assert not at.exception, at.exception
    return at


def test_buildings_on_the_map_labelled_and_calibrated(workspace):
    ws, aid = workspace["ws"], workspace["analysis"]
    # no labels yet: the prior read from the buildings' scores calls the four hot ones damaged, the calm ones not
    assert [b["grade"] for b in ws.buildings(aid)] == ["no-visible-damage"] * 4 + ["damaged"] * 4
    assert {b["score_kind"] for b in ws.buildings(aid)} == {"prior"}
    at = _map_page(workspace["case"])
    comps = [c for c in at.get("component_instance") if c.proto.component_name.endswith("st_folium")]
    script = json.loads(comps[0].proto.json_args)["script"]
    assert all(f"Building h{k}" in script for k in range(8))
    assert any("Buildings:" in m.value for m in at.markdown)  # legend
    assert any("Damaged: 4" in c.value for c in at.caption)
    # label three in the workspace, the fourth in the building panel
    ws.set_building_labels(aid, {"h0": "not-damaged", "h1": "not-damaged", "h6": "damaged"}, analyst="kim")
    at.run()
    next(s for s in at.selectbox if s.label == "Building").set_value("h7").run()
    assert not at.exception, at.exception
    next(r for r in at.radio if r.label == "Label for calibration").set_value("damaged")
    next(b for b in at.button if b.label == "Save building review").click().run()
    assert not at.exception, at.exception
    hist = ws.building_history(building_ref(aid, "h7"))
    assert hist[-1]["label_after"] == "damaged"
    next(b for b in at.button if b.label.startswith("Calibrate from 4")).click().run()
    assert not at.exception, at.exception
    assert any("cross-validated" in s.value for s in at.success)
    grades = {b["building_id"]: b["grade"] for b in ws.buildings(aid)}
    assert grades["h4"] == "damaged" and grades["h5"] == "damaged"  # re-graded from the labels
    assert grades["h2"] == "no-visible-damage"
    assert ws.building_set(aid)["calibration"]["n_labels"] == 4
    assert (ws.analysis_dir(aid) / "buildings.csv").read_text().count("calibrated") >= 8


def test_analyze_page_stages_footprint_uploads_and_server_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws2"))
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / "b.gpkg").write_bytes(b"x")
    monkeypatch.setenv("BDA_SERVER_PATHS", str(srv))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    up = next(u for u in at.file_uploader if u.label.startswith("Footprints:"))
    up.set_value([("fp.geojson", b'{"type": "FeatureCollection", "features": []}', "application/geo+json")]).run()
    assert not at.exception, at.exception
    assert any("Footprints of the next analysis: fp.geojson" in c.value for c in at.caption)
    staged = at.session_state["staged_footprints"]
    assert Path(staged[0]["path"]).read_bytes().startswith(b'{"type"')
    box = next(t for t in at.text_input if t.label.startswith("…or a footprint file on the server"))
    box.set_value(str(srv / "b.gpkg"))
    next(b for b in at.button if b.label == "Add").click().run()
    assert [f["name"] for f in at.session_state["staged_footprints"]] == ["fp.geojson", "b.gpkg"]
    box = next(t for t in at.text_input if t.label.startswith("…or a footprint file on the server"))
    box.set_value("/etc/passwd")
    next(b for b in at.button if b.label == "Add").click().run()
    assert at.error and len(at.session_state["staged_footprints"]) == 2  # outside BDA_SERVER_PATHS: refused
    next(b for b in at.button if b.label == "Remove footprints").click().run()
    assert at.session_state["staged_footprints"] == []


def test_an_image_and_footprints_uploaded_together_are_both_kept(tmp_path, monkeypatch):
    """An image and a footprint file arriving in the same run (an analyst dropping one right after the other): the
    image's hand-over empties the image uploader and reruns before the footprint section is reached; the footprint
    file must still be there for the next run. (With one generation shared by every uploader, emptying the image
    uploader emptied the footprint uploader too, and the footprints were lost without a word.)"""
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws3"))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    images = next(u for u in at.file_uploader if u.label.startswith("Upload images"))
    fps = next(u for u in at.file_uploader if u.label.startswith("Footprints:"))
    images.set_value([("scene.png", b"\x89PNG not decoded while staging", "image/png")])
    fps.set_value([("fp.geojson", b'{"type": "FeatureCollection", "features": []}', "application/geo+json")])
    at.run()
    assert not at.exception, at.exception
    assert [s["name"] for s in at.session_state["staged_inputs"]] == ["scene.png"]
    assert [f["name"] for f in at.session_state["staged_footprints"]] == ["fp.geojson"]


def test_suggested_buildings_listed_and_opened_for_labelling(workspace):
    ws, aid = workspace["ws"], workspace["analysis"]
    at = _map_page(workspace["case"])
    assert any(e.label == "Suggest buildings to label" for e in at.expander)
    assert any(c.value.startswith("Not calibrated yet: the suggestions read a prior") for c in at.caption)
    table = next(d for d in at.dataframe if "why" in d.value.columns)
    assert len(table.value) == 8  # 20 asked, 8 buildings, none labelled
    assert set(table.value["why"]) >= {"near the boundary"}
    first = str(table.value["building"].iloc[0])
    assert first in {"h4", "h5", "h6", "h7"}  # the hot ones: most likely damaged first
    next(b for b in at.button if b.label == "Label the next suggested building").click().run()
    assert not at.exception, at.exception
    assert next(s for s in at.selectbox if s.label == "Building").value == first
    next(r for r in at.radio if r.label == "Label for calibration").set_value("damaged")
    next(b for b in at.button if b.label == "Save building review").click().run()
    assert not at.exception, at.exception
    assert ws.building_labels(aid) == {first: "damaged"}
    table = next(d for d in at.dataframe if "why" in d.value.columns)
    assert len(table.value) == 7 and first not in set(table.value["building"])  # labelled: no longer suggested
    assert any(d.label == "Labels CSV template" for d in at.get("download_button"))


def _reviewer(case_id: int, name: str, building: str) -> AppTest:
    """The Map page of one analyst (the sidebar's name) with ``building`` open in the review form."""
    from ui import state as S

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["case_id"] = case_id
    at.session_state[S.ANALYST] = name
    at.run()
    at.switch_page("pages/map.py").run()
    next(s for s in at.selectbox if s.label == "Building").set_value(building).run()
    assert not at.exception, at.exception
    return at


def _save_review(at: AppTest, **fields: str) -> None:
    if "label" in fields:
        next(r for r in at.radio if r.label == "Label for calibration").set_value(fields["label"])
    if "status" in fields:
        next(s for s in at.selectbox if s.label == "Review").set_value(fields["status"])
    if "notes" in fields:
        next(t for t in at.text_area if t.label == "Notes").set_value(fields["notes"])
    next(b for b in at.button if b.label == "Save building review").click().run()
    assert not at.exception, at.exception


@pytest.mark.slow  # two app sessions, 13 page runs; the fast lane keeps the store's check of the same conflict
# (tests/test_buildings.py: a stale building review is refused with who changed what)
def test_two_analysts_on_one_building_see_the_conflict_and_choose(workspace):
    """Issue 12, finding 3 on the Map page: the second analyst's building review used to be dropped (the form's
    widgets were redrawn from the other review) or saved over the first one unseen."""
    ws, aid = workspace["ws"], workspace["analysis"]
    ref = building_ref(aid, "h7")
    kim, lee = (_reviewer(workspace["case"], name, "h7") for name in ("Kim", "Lee"))
    _save_review(kim, label="damaged", status="confirmed")
    _save_review(lee, status="rejected", notes="blue tarp, roof intact")
    warning = " ".join(w.value for w in lee.warning)
    assert f"{ref} was reviewed by Kim at " in warning and "nothing of yours was saved" in warning, warning
    assert next(s for s in lee.selectbox if s.label == "Review").value == "rejected"  # what lee set is kept
    b = next(x for x in ws.buildings(aid) if x["building_id"] == "h7")
    assert (b["review_status"], b["label"], b["notes"]) == ("confirmed", "damaged", "")  # nothing of lee's saved
    shown = next(d.value for d in lee.dataframe if "change" in d.value.columns)
    assert list(shown["analyst"]) == ["Kim"] and "label: — → damaged" in shown.iloc[0]["change"]
    lee.button(key="w_bld_conflict_apply").click().run()
    assert not lee.exception, lee.exception
    b = next(x for x in ws.buildings(aid) if x["building_id"] == "h7")
    assert (b["review_status"], b["label"], b["notes"], b["analyst"]) == ("rejected", "damaged",
                                                                          "blue tarp, roof intact", "Lee")
    assert not any("was reviewed by" in w.value for w in lee.warning)  # resolved: the panel is gone

    # kim's form, opened before lee's review, says so; kim's next save conflicts and kim keeps lee's review
    kim.run()
    assert any("was reviewed by Lee since you opened this form" in i.value for i in kim.info), kim.info
    _save_review(kim, label="not-damaged")
    assert any(f"{ref} was reviewed by Lee at " in w.value for w in kim.warning)
    kim.button(key="w_bld_conflict_keep").click().run()
    assert not kim.exception, kim.exception
    b = next(x for x in ws.buildings(aid) if x["building_id"] == "h7")
    assert (b["review_status"], b["label"], b["analyst"]) == ("rejected", "damaged", "Lee")
    trail = ws.building_history(ref)
    assert [(r["analyst"], r["status_after"], r["label_after"], r["outcome"]) for r in trail] == [
        ("Kim", "confirmed", "damaged", "applied"), ("Lee", "rejected", None, "applied"),
        ("Kim", None, "not-damaged", "kept theirs")]
    kim.run()
    assert not any("was reviewed by" in w.value for w in kim.warning) and not kim.exception
