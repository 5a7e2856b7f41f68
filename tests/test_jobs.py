"""core.jobs: real training and evaluation jobs in background threads, progress in the workspace, cancel, inputs."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import pytest
import torch

from core import jobs
from core.detector import Detector
from core.errors import CheckpointError, InputError, TrainingDataError
from core.store import Workspace
from core.training import TrainConfig

torch.set_num_threads(1)


def _images(shared_data, sub, n):
    files = sorted((shared_data / "aider" / sub).glob("*.jpg"))[:n]
    if len(files) < n:
        pytest.skip(f"need {n} AIDER {sub} images in {shared_data / 'aider' / sub}")
    return [str(p) for p in files]


def _cfg(shared_data, **kw):
    base = dict(arch="fcdd-resnet18", normal=_images(shared_data, "flooded_areas", 4), input_size=64, epochs=2,
                steps_per_epoch=2, batch_size=4, device="cpu", name="tiny flood model")
    return TrainConfig(**(base | kw))


def _wait_for(pred, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    """One real training job, run through the runner exactly as the Models page starts it."""
    root = tmp_path_factory.mktemp("ws")
    r = jobs.runner(root)
    jid = r.start_training(_cfg(shared_data, anomalies=_images(shared_data, "fire", 4)))
    started = r.ws.get_job(jid)
    alive_at_start = r.is_alive(jid)
    job = r.wait(jid, timeout=300)
    return r, jid, started, alive_at_start, job


def test_training_job_runs_in_background_reports_progress_and_registers(trained):
    r, jid, started, alive_at_start, job = trained
    assert started["kind"] == jobs.TRAIN and started["status"] in ("queued", "running")
    assert alive_at_start  # start_training returned while the thread was still working
    assert job["status"] == "done", job["message"]
    assert job["progress"] == 1.0 and "registered" in job["message"]
    epochs = [e for e in job["log"] if "loss" in e]
    assert [e["epoch"] for e in epochs] == [1, 2] and all(e["epochs"] == 2 for e in epochs)
    assert all(e["loss"] == e["loss"] and e["loss"] > 0 for e in epochs)  # finite, positive FCDD loss
    res = job["result"]
    model = r.ws.get_model(res["model_id"])
    assert model["sha256"] == res["sha256"] and model["exists"]
    assert model["path"].parent == r.ws.models_dir()
    info = model["info"]
    assert info["arch"] == "fcdd-resnet18" and info["source"] == "trained" and info["job_id"] == jid
    assert info["training"]["epochs"] == 2 and info["training"]["normal"]["files"] == 4
    assert info["training"]["anomalies"]["files"] == 4 and info["threshold"] > 0
    det = Detector.load(model["path"], device="cpu")  # the registered file is a usable, safe checkpoint
    assert det.sha256 == res["sha256"] and det.input_size == 64


def test_state_is_visible_from_another_workspace_handle(trained):
    r, jid, *_ = trained
    other = Workspace(r.ws.root)  # e.g. another browser session or a refreshed page
    assert other.get_job(jid)["status"] == "done"
    assert any(j["id"] == jid for j in other.list_jobs(kind=jobs.TRAIN))
    assert jobs.runner(r.ws.root) is r  # one registry per folder per process


def test_evaluation_job_gives_auroc_and_roc(trained, shared_data):
    r, _, _, _, job = trained
    normal = _images(shared_data, "flooded_areas", 10)[5:]
    fire = _images(shared_data, "fire", 10)[5:]
    ej = r.start_evaluation(normal, fire, model_path=job["result"]["path"], device="cpu")
    ev = r.wait(ej, timeout=300)
    assert ev["status"] == "done", ev["message"]
    res = ev["result"]
    assert 0.0 <= res["auroc"] <= 1.0 and res["n_normal"] == 5 and res["n_anomalous"] == 5
    assert res["fpr"][0] == 0 and res["tpr"][0] == 0 and res["fpr"][-1] == 1 and res["tpr"][-1] == 1
    assert all(a <= b for a, b in zip(res["fpr"], res["fpr"][1:], strict=False))
    assert res["model"]["sha256"] == job["result"]["sha256"]
    assert [j["id"] for j in jobs.model_evaluations(r.ws, job["result"]["sha256"])][0] == ej
    assert jobs.model_evaluations(r.ws, "0" * 64) == []


def test_cancel_stops_training_and_keeps_no_model(shared_data, tmp_path):
    r = jobs.runner(tmp_path / "ws")
    jid = r.start_training(_cfg(shared_data, epochs=400))
    with pytest.raises(InputError, match="still running"):
        r.start_training(_cfg(shared_data))  # one training at a time per process
    assert _wait_for(lambda: len(r.ws.get_job(jid)["log"]) >= 1), "no epoch was reported"
    r.cancel(jid)
    job = r.wait(jid, timeout=120)
    assert job["status"] == "cancelled" and job["cancel_requested"]
    assert "no model was saved" in job["message"]
    assert 1 <= len(job["log"]) < 400
    assert r.ws.list_models() == [] and not list(r.ws.models_dir().glob("*.pt"))


def test_cancel_through_the_database_from_another_handle(shared_data, tmp_path):
    r = jobs.runner(tmp_path / "ws")
    jid = r.start_training(_cfg(shared_data, epochs=400))
    assert _wait_for(lambda: len(r.ws.get_job(jid)["log"]) >= 1)
    Workspace(r.ws.root).request_cancel(jid)  # another session: only the database flag is set
    job = r.wait(jid, timeout=120)
    assert job["status"] == "cancelled" and not r.is_alive(jid)


def test_training_on_missing_data_fails_with_the_reason(shared_data, tmp_path):
    r = jobs.runner(tmp_path / "ws")
    jid = r.start_training(_cfg(shared_data, normal=[str(tmp_path / "nowhere")]))
    job = r.wait(jid, timeout=60)
    assert job["status"] == "failed" and "not found" in job["message"] and "nowhere" in job["message"]
    assert job["finished_at"] is not None


def test_stage_uploads_sanitises_names_and_unpacks_zips(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("imgs/a.jpg", b"jpeg-bytes")
        zf.writestr("b.png", b"png-bytes")
    out = jobs.stage_uploads([("../../etc/x.jpg", b"1"), ("set.zip", buf.getvalue()), ("x.jpg", io.BytesIO(b"2"))],
                             tmp_path / "dest")
    assert all((tmp_path / "dest") in p.parents for p in out)
    names = sorted(p.name for p in out)
    assert names == ["a.jpg", "b.png", "x-2.jpg", "x.jpg"]
    assert not (tmp_path / "dest" / "set.zip").exists()


def test_stage_uploads_refuses_zip_slip(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.jpg", b"x")
    with pytest.raises(TrainingDataError):
        jobs.stage_uploads([("evil.zip", buf.getvalue())], tmp_path / "dest")
    assert not (tmp_path / "evil.jpg").exists() and not list((tmp_path / "dest").rglob("*.jpg"))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_import_checkpoint_refuses_pickled_code(tmp_path):
    ws = Workspace(tmp_path / "ws")
    marker = tmp_path / "pwned"
    evil = io.BytesIO()
    torch.save({"format": "bda-workbench-checkpoint/1", "payload": _Evil(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        jobs.import_checkpoint(ws, "model.pt", evil.getvalue())
    assert not marker.exists() and ws.list_models() == []
    assert not list((ws.root / "tmp").iterdir())  # the uploaded bytes were removed again


def test_import_checkpoint_registers_a_copy(trained, tmp_path):
    _, _, _, _, job = trained
    ws = Workspace(tmp_path / "ws")
    with open(job["result"]["path"], "rb") as f:
        mid = jobs.import_checkpoint(ws, "../weird name.pt", f, name="field model")
    m = ws.get_model(mid)
    assert m["name"] == "field model" and m["info"]["source"] == "uploaded" and m["exists"]
    assert ws.models_dir() in m["path"].parents and m["sha256"] == job["result"]["sha256"]
    again = Path(job["result"]["path"]).read_bytes()
    assert jobs.import_checkpoint(ws, "again.pt", again) == mid  # the same file is registered once
