"""Analyze page: fit a normal model (feature matching) to the staged pre-event images, see it run, use it."""

from __future__ import annotations

from pathlib import Path

from core.learn import jobs
from core.store import Workspace
from tests.support.app import new_app, texts
from tests.support.data import need
from ui import state as S

CHIPS = Path("geotiff/joplin_tornado_xview2deploy/chips_aligned")
#: a pre-event tile whose held-out bottom strip is imagery (the aligned chips' is a black nodata border)
JOPLIN_PRE = Path("geotiff/joplin_tornado_xview2deploy/pre/tile_337-9136.tif")


def test_fit_a_normal_model_to_the_pre_event_images_and_use_it(app_env: Path, shared_data: Path) -> None:
    pre = need(shared_data / JOPLIN_PRE)
    at = new_app().run()
    assert not at.exception, texts(at.exception)
    assert not any(b.label.startswith("Fit a normal model") for b in at.button)  # nothing staged: no offer
    at.session_state[S.STAGED_PRE] = [{"path": str(pre), "name": pre.name, "origin": "upload"}]
    at.run()
    fit = next(b for b in at.button if b.label == "Fit a normal model to this pre-event image")
    fit.click().run()
    assert not at.exception, texts(at.exception)
    job_id = at.session_state[S.AREA_FIT_JOB]
    assert isinstance(job_id, int)
    job = jobs.runner(app_env).wait(job_id, timeout=900)
    assert job["status"] == "done", job
    at.run()
    assert any("is fitted to this area and registered" in s for s in texts(at.success)), texts(at.success)
    with Workspace(app_env) as ws:
        models = [m for m in ws.list_models() if m["info"].get("arch") == "patchcore-vgg16"]
    assert len(models) == 1 and models[0]["name"].startswith("area: ")
    next(b for b in at.button if b.label == "Use it").click().run()
    assert not at.exception, texts(at.exception)
    assert at.session_state[S.MODEL_PATH] == str(models[0]["path"]) == job["result"]["path"]
    assert next(s for s in at.sidebar.selectbox if s.label == "Model").value == str(models[0]["path"])
    assert at.session_state[S.AREA_FIT_JOB] is None
