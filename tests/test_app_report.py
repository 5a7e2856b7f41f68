"""The Report page in a real (in-process) Streamlit session: analyst reviews saved to the workspace the moment
they are made, summary charts, and the report files (PDF, CSV, GeoJSON, zip) written by core.report."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.detection.detector import Detector
from core.detection.findings import extract_findings
from core.detection.heatmap import read_heatmap
from core.detection.pipeline import analyze_scene
from core.imagery.reader import open_scene
from core.store import Workspace
from tests.support.app import JOPLIN, new_app, server_like_reruns, texts
from tests.support.data import need
from ui import model_cache
from ui import state as S

torch.set_num_threads(1)

TILE = "tile_31500-5137.tif"


@pytest.fixture(scope="module")
def report_env(small_model: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """A workspace holding one analysis of a real Joplin post-event tile (made with core, not through the UI)."""
    tile = need(shared_data / JOPLIN / "post" / TILE)
    root = tmp_path_factory.mktemp("report") / "workspace"
    ws = Workspace(root)
    case = ws.create_case("Joplin", event="EF5 tornado 2011-05-22")
    det = Detector.load(small_model, device="cpu")
    aid = ws.create_analysis(case, [{"path": str(tile), "name": TILE}], model=det.info(), threshold=0.4, options={})
    scene = open_scene(tile)
    try:
        result = analyze_scene(scene, det, ws.analysis_dir(aid), threshold=0.4)
    finally:
        scene.close()
    # findings at the 97th percentile of this model's scores: some regions whatever the test model's range
    hm = read_heatmap(result.heatmap_path)
    threshold = float(np.nanquantile(hm.scores, 0.97))
    result.findings = extract_findings(hm.scores, 1.0, threshold, georef=result.georef, scene_name=TILE)
    result.meta["threshold"] = threshold
    ws.save_scene_result(aid, result, input_name=TILE)
    ws.finish_analysis(aid)
    assert len(result.findings) >= 3, "the test needs a few findings to review"
    with pytest.MonkeyPatch.context() as mp:
        server_like_reruns(mp)
        mp.setenv("BDA_WORKSPACE", str(root))
        mp.setenv(model_cache.ENV_MODEL, str(small_model))
        yield ws, aid


def report_page(analyst: str = ""):
    at = new_app().run()
    at.session_state[S.ANALYST] = analyst
    at.switch_page("pages/report.py").run()
    assert not at.exception, texts(at.exception)
    return at


def edit(at, aid: int, rows: dict[int, dict[str, object]]) -> None:
    """What the browser sends when cells of the review table are edited."""
    at.session_state[S.review_key(aid)] = {"edited_rows": rows, "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception, texts(at.exception)


def test_table_lists_every_finding_with_its_review_columns(report_env) -> None:
    ws, aid = report_env
    at = report_page()
    (editor,) = at.data_editor
    findings = ws.scene_results(aid)[0].findings
    table = editor.value
    assert list(table["id"]) == [f.id for f in findings]
    assert {"review", "grade", "notes", "score max", "area m²", "MGRS"} <= set(table.columns)
    assert table["area m²"].notna().all() and table["MGRS"].str.len().gt(0).all()  # georeferenced tile
    assert len(at.get("plotly_chart")) == 3  # counts per grade, area per grade, score distribution


def test_review_edits_are_saved_at_once_with_the_analyst(report_env) -> None:
    ws, aid = report_env
    at = report_page("Kim Analyst")
    ids = list(at.data_editor[0].value["id"])
    edit(at, aid, {0: {"review": "confirmed"}, 1: {"grade": "destroyed", "notes": "roof gone, walls down"},
                   2: {"review": "rejected", "notes": "shadow of a tree"}})
    first, second, third = (ws.get_finding(i) for i in ids[:3])
    assert (first.review_status, first.analyst, first.det_method) == ("confirmed", "Kim Analyst",
                                                                     "semi-automatic extraction")
    assert (second.grade, second.notes, second.review_status) == ("destroyed", "roof gone, walls down", "unreviewed")
    assert (third.review_status, third.notes) == ("rejected", "shadow of a tree")
    history = ws.review_history(ids[1])
    assert len(history) == 1 and history[0]["analyst"] == "Kim Analyst"
    assert history[0]["grade_after"] == "destroyed"
    at.run()  # the editor keeps its edits across reruns: they must not be recorded twice
    assert [len(ws.review_history(i)) for i in ids[:3]] == [1, 1, 1]
    again = report_page()  # a new session shows the saved review
    table = again.data_editor[0].value.set_index("id")
    assert table.loc[ids[0], "review"] == "confirmed" and table.loc[ids[1], "grade"] == "destroyed"
    assert table.loc[ids[2], "analyst"] == "Kim Analyst"


def test_edits_wait_for_an_analyst_name(report_env) -> None:
    ws, aid = report_env
    at = report_page("")
    fid = list(at.data_editor[0].value["id"])[3 % len(at.data_editor[0].value)]
    row = list(at.data_editor[0].value["id"]).index(fid)
    assert any("The table is read-only until then" in w for w in texts(at.warning))
    assert "disabled: true" in str(at.data_editor[0].proto)  # the whole editor (not only some columns)
    assert "disabled: true" not in str(report_page("Lee").data_editor[0].proto)
    edit(at, aid, {row: {"notes": "check on the ground"}})  # an edit the browser sent before the table locked
    assert any("Analyst" in w for w in texts(at.warning))
    assert ws.get_finding(fid).notes != "check on the ground" and not ws.review_history(fid)
    at.session_state[S.ANALYST] = "Lee"
    at.run()
    assert ws.get_finding(fid).notes == "check on the ground"
    assert ws.review_history(fid)[0]["analyst"] == "Lee"


def test_report_files_are_built_on_demand(report_env) -> None:
    ws, aid = report_env
    at = report_page("Kim Analyst")
    assert not at.get("download_button") or [b.label for b in at.get("download_button")] == ["Heatmap GeoTIFF"]
    at.button(key="build_report").click().run()  # no handling line yet: a clear error, nothing written
    assert any("handling line" in e for e in texts(at.error)), texts(at.error)
    at.text_input(key="w_report_handling").input("TLP:CLEAR").run()
    at.text_input(key="w_report_event").input("Joplin EF5 tornado").run()
    at.button(key="build_report").click().run()
    assert not at.exception and not at.error, texts(at.error)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["PDF report", "Findings CSV", "Findings GeoJSON", "Everything (zip)", "Heatmap GeoTIFF"]
    folder = ws.analysis_dir(aid) / "report"
    assert (folder / "report.pdf").read_bytes()[:5] == b"%PDF-"
    n = len(ws.scene_results(aid)[0].findings)
    with open(folder / "findings.csv", encoding="utf-8-sig", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == n
    geo = json.loads((folder / "findings.geojson").read_text(encoding="utf-8"))
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == n
    with zipfile.ZipFile(folder / "report_package.zip") as zf:
        names = set(zf.namelist())
    assert {"report.pdf", "findings.csv", "findings.geojson", "README.txt"} <= names
    assert any(name.endswith("_heatmap.tif") for name in names)
    at.switch_page("pages/analyze.py").run()  # the report fields survive a page change
    at.switch_page("pages/report.py").run()
    assert at.text_input(key="w_report_handling").value == "TLP:CLEAR"
    assert at.session_state[S.REPORT_EVENT] == "Joplin EF5 tornado"


def test_a_typed_field_whose_callback_was_lost_still_counts(report_env) -> None:
    """On a busy server a field committed with Enter just before a click can reach the script without its
    on_change having run: the screen shows the typed handling line, and the report must use it (it was refused
    for a missing handling line). Setting the widget's state directly is that case: no callback runs."""
    at = report_page("Kim Analyst")
    at.session_state["w_report_handling"] = "TLP:AMBER"
    at.button(key="build_report").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert at.session_state[S.REPORT_HANDLING] == "TLP:AMBER"
    assert "PDF report" in [b.label for b in at.get("download_button")]


def test_one_finding_form_saves_and_shows_the_audit_trail(report_env) -> None:
    ws, aid = report_env
    at = report_page("Park")
    fid = at.selectbox(key="w_review_one").value
    assert any(f"{fid} has not been reviewed yet" in c.value for c in at.caption) or ws.review_history(fid)
    before = len(ws.review_history(fid))
    target = "rejected" if ws.get_finding(fid).review_status == "confirmed" else "confirmed"
    next(r for r in at.radio if r.label == "Review").set_value(target)
    next(t for t in at.text_area if t.label == "Notes").set_value("pancaked roof 확인")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert not at.exception, texts(at.exception)
    trail = ws.review_history(fid)
    assert len(trail) == before + 1 and trail[-1]["analyst"] == "Park"
    table = next(d.value for d in at.dataframe if "analyst" in d.value.columns and "change" in d.value.columns)
    last = table.iloc[-1]
    assert last["analyst"] == "Park" and "status: " in last["change"] and f"→ {target}" in last["change"]
    assert "pancaked roof 확인" in last["change"] and "grade:" not in last["change"]  # only what changed
    next(b for b in at.button if b.label == "Save review").click().run()  # the same review again: nothing to save
    assert len(ws.review_history(fid)) == before + 1
    assert any("Nothing to save" in i.value for i in at.info)
