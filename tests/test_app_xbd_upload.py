"""xBD label files uploaded with their images on the Analyze page: kept beside the PNGs (not staged as images), so
the post image gets its fitted georeference and date, and the pre image pairs with it; a .json that is no xBD
label is refused with a message and the rest of the upload goes through."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.store import Workspace
from tests.support.app import new_app, server_like_reruns, texts
from tests.support.data import need
from ui import model_cache
from ui import state as S

STEM = "hurricane-harvey_00000224"


def test_labels_travel_with_their_images(shared_data: Path, tiny_model: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = shared_data / "xbd/harvey/images", shared_data / "xbd/harvey/labels"
    post, pre = need(images / f"{STEM}_post_disaster.png"), need(images / f"{STEM}_pre_disaster.png")
    server_like_reruns(monkeypatch)
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv(model_cache.ENV_MODEL, str(tiny_model))
    at = new_app().run()
    at.file_uploader[1].set_value([(pre.name, pre.read_bytes(), "image/png"),
                                   (f"{STEM}_pre_disaster.json", need(labels / f"{STEM}_pre_disaster.json")
                                    .read_bytes(), "application/json")]).run()
    at.file_uploader[0].set_value([
        (post.name, post.read_bytes(), "image/png"),
        (f"{STEM}_post_disaster.json", need(labels / f"{STEM}_post_disaster.json").read_bytes(), "application/json"),
        ("notes.json", b'{"hello": "not a label"}', "application/json")]).run()
    assert not at.exception, texts(at.exception)
    assert [s["name"] for s in at.session_state[S.STAGED]] == [post.name]  # labels are not images
    assert [s["name"] for s in at.session_state[S.STAGED_PRE]] == [pre.name]
    assert any("notes.json: only xBD label files" in e.value for e in at.error)
    assert any(f"xBD labels {STEM}_post_disaster.json kept" in i.value for i in at.info)
    at.button(key="run_analysis").click().run()
    assert not at.exception, texts(at.exception)
    ws = Workspace(tmp_path / "ws")
    (r,) = ws.scene_results(ws.list_analyses()[0]["id"])
    assert r.error is None and r.georef is not None and r.georef.method == "fitted"
    assert r.capture_time and r.pre_scene_name == pre.name and r.change_path is not None
    assert r.findings and all(f.centroid_lat is not None and 29 < f.centroid_lat < 31 for f in r.findings)
    assert not (ws.uploads_dir(1) / "notes.json").exists()
