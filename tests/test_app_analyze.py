"""The Analyze page in a real (in-process) Streamlit session: uploads, a bad file in a batch, stored results,
the live threshold, server paths and placing an un-georeferenced frame. Real imagery from ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.detection.heatmap import read_heatmap
from core.server_files.paths import ENV_SERVER_PATHS
from core.store import Workspace
from tests.support.app import JOPLIN, new_app, server_like_reruns, texts
from tests.support.data import need
from ui import images, model_cache, sidebar
from ui import state as S

torch.set_num_threads(1)

TILE = "tile_31500-5137.tif"


def hot_threshold(heatmap: Path, q: float) -> float:
    """The ``q`` quantile of a stored heatmap's scores, rounded as the sidebar slider does: a threshold at which
    any model, however little trained, finds regions (the test model's score range is not fixed)."""
    scores = read_heatmap(heatmap).scores
    return round(float(np.nanquantile(scores, q)), 2)


def save_at(at, threshold: float) -> None:
    """Set the sidebar threshold and save the findings of the shown analysis at it."""
    at.session_state[S.THRESHOLD] = threshold
    at.run()
    next(b for b in at.button if b.label.startswith("Save findings at threshold")).click().run()
    assert not at.exception, texts(at.exception)


def metric(at, label: str) -> str:
    """Value of the metric whose label starts with ``label``."""
    return next(m.value for m in at.metric if m.label.startswith(label))


@pytest.fixture(scope="module")
def batch_env(small_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """Workspace folder shared by the tests of one analysed batch (one analysis run for all of them)."""
    root = tmp_path_factory.mktemp("batch") / "workspace"
    with pytest.MonkeyPatch.context() as mp:
        server_like_reruns(mp)
        mp.setenv("BDA_WORKSPACE", str(root))
        mp.setenv(model_cache.ENV_MODEL, str(small_model))
        mp.delenv(ENV_SERVER_PATHS, raising=False)
        yield root


@pytest.fixture(scope="module")
def batch(batch_env: Path, shared_data: Path):
    """A session that uploaded a real Joplin post-event tile and a broken file and analysed them, then saved the
    findings at a threshold where there are some; returns (session, workspace, that threshold)."""
    tile = need(shared_data / JOPLIN / "post" / TILE)
    at = new_app().run()
    at.file_uploader[0].set_value([(TILE, tile.read_bytes(), "image/tiff"),
                                   ("broken.jpg", b"this is a text file, not a photo", "image/jpeg")]).run()
    assert [s["name"] for s in at.session_state[S.STAGED]] == [TILE, "broken.jpg"]
    at.button(key="run_analysis").click().run()
    ws = Workspace(batch_env)
    low = hot_threshold(ws.scene_results(ws.list_analyses()[0]["id"])[0].heatmap_path, 0.97)
    save_at(at, low)
    return at, ws, low


@pytest.fixture
def analysed(batch):
    """The batch's session, at the threshold its findings were saved with."""
    at, ws, low = batch
    at.session_state[S.THRESHOLD] = low
    at.run()
    return at, ws, low


def test_bad_file_is_an_error_and_the_good_one_still_runs(analysed) -> None:
    at, ws, low = analysed
    assert not at.exception, texts(at.exception)
    errors = texts(at.error)
    assert len(errors) == 1 and errors[0].startswith("broken.jpg:") and "not an image" in errors[0]
    (analysis,) = ws.list_analyses()
    assert (analysis["status"], analysis["n_done"], analysis["n_failed"]) == ("done", 1, 1)
    good, bad = ws.scene_results(analysis["id"])
    assert good.error is None and bad.error is not None
    assert good.heatmap_path.is_file() and good.georef is not None and good.findings
    assert metric(at, "Verdict") in ("normal", "anomalous")
    assert int(metric(at, "Findings saved")) == len(good.findings)
    captions = [c for img in at.image for c in img.captions]
    assert len(captions) == 3 and captions[0] == "original" and captions[2] == "overlay"  # side by side
    assert at.get("plotly_chart"), "the score histogram is drawn"
    assert at.session_state[S.STAGED] == []


def test_uploads_are_on_disk_and_the_uploader_is_emptied(analysed, batch_env: Path, shared_data: Path) -> None:
    at, ws, low = analysed
    folder = batch_env / "files" / "uploads"
    saved = {p.name: p for p in folder.rglob("*") if p.is_file()}
    assert set(saved) == {TILE, "broken.jpg"}
    assert saved[TILE].read_bytes() == (shared_data / JOPLIN / "post" / TILE).read_bytes()
    assert at.file_uploader[0].value in (None, [])  # the widget was replaced: the upload's memory is released


def test_a_new_session_shows_the_results_without_recomputing(analysed) -> None:
    at, ws, low = analysed
    (good, _) = ws.scene_results(ws.list_analyses()[0]["id"])
    stamp = good.heatmap_path.stat().st_mtime_ns
    again = new_app().run()  # a browser refresh: a new session on the same workspace
    assert not again.exception
    table = again.dataframe[0].value
    assert list(table["image"]) == [TILE, "broken.jpg"]
    assert texts(again.error) and texts(again.error)[0].startswith("broken.jpg:")
    assert len(ws.list_analyses()) == 1 and good.heatmap_path.stat().st_mtime_ns == stamp


def test_threshold_changes_live_counts_from_the_stored_heatmap(analysed) -> None:
    at, ws, low = analysed
    (good, _) = ws.scene_results(ws.list_analyses()[0]["id"])
    stamp = good.heatmap_path.stat().st_mtime_ns
    n_low = int(metric(at, "Findings @"))
    assert n_low == len(good.findings) > 0  # same threshold, same preview: the live count matches what was saved
    top = float(read_heatmap(good.heatmap_path).stats["max"])
    at.session_state[S.THRESHOLD] = round(top + 0.5, 2)  # above every score: nothing left
    at.run()
    assert metric(at, "Findings @") == "0"
    assert int(metric(at, "Findings saved")) == len(good.findings)  # stored findings untouched
    assert good.heatmap_path.stat().st_mtime_ns == stamp and len(ws.list_analyses()) == 1
    at.session_state[S.THRESHOLD] = low
    at.run()
    assert int(metric(at, "Findings @")) == n_low


def test_save_findings_at_the_new_threshold(analysed) -> None:
    at, ws, low = analysed
    aid = ws.list_analyses()[0]["id"]
    good = ws.scene_results(aid)[0]
    assert {f.threshold for f in good.findings} == {low}
    higher = hot_threshold(good.heatmap_path, 0.995)
    at.session_state[S.THRESHOLD] = higher
    at.run()
    live = int(metric(at, "Findings @"))
    save_at(at, higher)
    assert not [e for e in texts(at.error) if not e.startswith("broken.jpg")]
    good = ws.scene_results(aid)[0]
    assert len(good.findings) == live and {f.threshold for f in good.findings} <= {higher}
    save_at(at, low)  # and back, leaving the batch as the other tests expect it
    assert {f.threshold for f in ws.scene_results(aid)[0].findings} == {low}


def test_server_path_is_validated_then_analysed(app_env: Path, shared_data: Path, tmp_path: Path) -> None:
    tile = need(shared_data / JOPLIN / "post" / TILE)
    at = new_app().run()
    for bad, words in ((str(tmp_path / "nope.tif"), "does not exist"), (str(tmp_path), "not a file")):
        at.text_input(key=S.W_SERVER_PATH).input(bad)
        next(b for b in at.button if b.label == "Add path").click().run()
        assert any(words in e for e in texts(at.error)), texts(at.error)
        assert at.session_state[S.STAGED] == []
    at.text_input(key=S.W_SERVER_PATH).input(str(tile))
    next(b for b in at.button if b.label == "Add path").click().run()
    assert at.session_state[S.STAGED] == [{"name": TILE, "path": str(tile), "origin": "server path"}]
    assert not (app_env / "files" / "uploads").exists()  # analysed in place, never copied


def test_frame_without_georef_can_be_placed(app_env: Path, shared_data: Path) -> None:
    photo = need(shared_data / "aider" / "fire" / "fire_image0228.jpg")  # an aerial photo without GPS
    at = new_app().run()
    at.file_uploader[0].set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    at.button(key="run_analysis").click().run()
    assert not at.exception and not at.error
    assert any("has no georeference" in t for t in texts(at.info))
    ws = Workspace(app_env)
    aid = ws.list_analyses()[0]["id"]
    save_at(at, hot_threshold(ws.scene_results(aid)[0].heatmap_path, 0.9))
    (result,) = ws.scene_results(aid)
    assert result.georef is None and result.findings and result.findings[0].centroid_lat is None
    at.number_input(key=S.place_key(photo.name, "lat")).set_value(37.0635)
    at.number_input(key=S.place_key(photo.name, "lon")).set_value(-94.4861)
    at.number_input(key=S.place_key(photo.name, "gsd")).set_value(0.25)
    next(b for b in at.button if b.label == "Place on the map").click().run()
    assert not at.exception and not at.error
    (placed,) = ws.scene_results(aid)
    assert placed.georef is not None and placed.georef.method == "user" and placed.georef.approximate
    w, s, e, n = placed.bounds_wgs84
    assert w < -94.4861 < e and s < 37.0635 < n
    assert (e - w) > 0 and len(placed.findings) == len(result.findings)
    f = placed.findings[0]
    assert f.centroid_lat is not None and f.area_m2 and f.area_m2 > 0 and f.location_approximate
    assert not any("has no georeference" in t for t in texts(at.info))


def test_moving_between_pages_recomputes_nothing(analysed, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.detection.findings
    import core.detection.pipeline

    at, ws, low = analysed
    calls: list[str] = []

    def counting(name: str, fn):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        return wrapper

    for module, name in ((images, "read_heatmap"), (images, "open_scene"), (images, "read_overview"),
                         (core.detection.findings, "extract_findings"), (core.detection.pipeline, "analyze_scene")):
        monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    for page in ("pages/report.py", "pages/analyze.py", "pages/report.py", "pages/analyze.py"):
        at.switch_page(page).run()
        assert not at.exception, texts(at.exception)
    assert calls == [], "a page change re-read or recomputed derived data"
    assert len([c for img in at.image for c in img.captions]) == 3  # the images are still shown


def test_uploads_can_be_analysed_right_away(app_env: Path, shared_data: Path) -> None:
    photo = need(shared_data / "aider" / "flooded_areas" / "flood_image0001.jpg")
    at = new_app().run()
    at.toggle(key=S.W_AUTO_RUN).set_value(True).run()
    at.file_uploader[0].set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    assert not at.exception and not at.error
    (analysis,) = Workspace(app_env).list_analyses()
    assert (analysis["status"], analysis["n_done"]) == ("done", 1)
    assert at.session_state[S.STAGED] == [] and metric(at, "Verdict") in ("normal", "anomalous")


def test_an_interrupted_analysis_can_be_resumed(app_env: Path, shared_data: Path) -> None:
    photos = [need(shared_data / "aider" / "flooded_areas" / n) for n in ("flood_image0002.jpg", "flood_image0003.jpg")]
    at = new_app().run()
    ws = Workspace(app_env)
    det = model_cache.get_detector("", "auto")
    aid = ws.create_analysis(at.session_state[S.CASE_ID], [{"path": str(p), "name": p.name} for p in photos],
                             model=det.info(), threshold=None, options={"grade_scale": "xview2-jds"})
    ws.finish_analysis(aid, "interrupted")  # as if the page had been left before any image was analysed
    at.run()
    assert any("interrupted before 2 of its 2 images" in w for w in texts(at.warning))
    at.button(key="resume_analysis").click().run()
    assert not at.exception and not at.error
    analysis = ws.get_analysis(aid)
    assert (analysis["status"], analysis["n_done"]) == ("done", 2) and len(ws.list_analyses()) == 1
    assert {r.meta["grade_scale"] for r in ws.scene_results(aid)} == {"xview2-jds"}  # the analysis's own scale
    assert not any("interrupted" in w for w in texts(at.warning))


def test_verdict_rule_and_fresh_case_counts_beside_the_result(analysed) -> None:
    """The verdict is shown with its rule (threshold and count, detection.verdict) and the sidebar's case counts are
    those of the workspace after the run, not from before it; no table cell reads "None"."""
    from core.detection.verdict import judge

    at, ws, low = analysed
    (analysis,) = ws.list_analyses()
    good, _ = ws.scene_results(analysis["id"])
    v = judge(good)
    assert metric(at, "Verdict") == v.verdict and int(metric(at, "Findings saved")) == v.n_counted
    assert int(metric(at, "Findings @")) == v.n_counted  # the sidebar shows the saved threshold: same count
    assert any(c == f":material/rule: {v.rule}" for c in texts(at.caption)), texts(at.caption)
    assert f"threshold {low:.2f}" in v.rule
    assert sidebar.case_counts(ws, analysis["case_id"]) in texts(at.sidebar.caption)
    assert "1 analysis · 1 image" in sidebar.case_counts(ws, analysis["case_id"])
    table = at.dataframe[0].value
    assert not table.isna().any().any() and "None" not in table.astype(str).to_numpy()
    failed = table[table["image"] == "broken.jpg"].iloc[0]
    assert failed["verdict"] == "error" and failed["findings (saved)"] == "—"
