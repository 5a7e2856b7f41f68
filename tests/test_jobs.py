"""core.learn.jobs: real training and evaluation jobs in background threads, progress, cancel, inputs."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.detection.detector import Detector
from core.errors import CheckpointError, InputError, TrainingDataError
from core.learn import jobs, model_import
from core.learn.training import TrainConfig
from core.store import Workspace, job_uploads

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
    out = job_uploads.stage_uploads(
        [("../../etc/x.jpg", b"1"), ("set.zip", buf.getvalue()), ("x.jpg", io.BytesIO(b"2"))], tmp_path / "dest")
    assert all((tmp_path / "dest") in p.parents for p in out)
    names = sorted(p.name for p in out)
    assert names == ["a.jpg", "b.png", "x-2.jpg", "x.jpg"]
    assert not (tmp_path / "dest" / "set.zip").exists()


def test_stage_uploads_keeps_a_file_named_like_an_unpacked_zip(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.jpg", b"jpeg-bytes")
    out = job_uploads.stage_uploads([("set.zip", buf.getvalue()), ("set", b"2")], tmp_path / "dest")
    assert sorted(p.relative_to(tmp_path / "dest").as_posix() for p in out) == ["set-2", "set/a.jpg"]


def test_stage_uploads_refuses_zip_slip(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.jpg", b"x")
    with pytest.raises(TrainingDataError):
        job_uploads.stage_uploads([("evil.zip", buf.getvalue())], tmp_path / "dest")
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
        model_import.import_checkpoint(ws, "model.pt", evil.getvalue())
    assert not marker.exists() and ws.list_models() == []
    assert not list((ws.root / "tmp").iterdir())  # the uploaded bytes were removed again


def test_import_checkpoint_registers_a_copy(trained, tmp_path):
    _, _, _, _, job = trained
    ws = Workspace(tmp_path / "ws")
    with open(job["result"]["path"], "rb") as f:
        mid = model_import.import_checkpoint(ws, "../weird name.pt", f, name="field model")
    m = ws.get_model(mid)
    assert m["name"] == "field model" and m["info"]["source"] == "uploaded" and m["exists"]
    assert ws.models_dir() in m["path"].parents and m["sha256"] == job["result"]["sha256"]
    again = Path(job["result"]["path"]).read_bytes()
    assert model_import.import_checkpoint(ws, "again.pt", again) == mid  # the same file is registered once


# -- xBD evaluation ---------------------------------------------------------------------------------------------
def _xbd_subset(shared_data, dest: Path, tiles=("218", "228")) -> Path:
    """A small xBD layout (post + pre images and labels of a few Harvey tiles) copied into ``dest``."""
    src = shared_data / "xbd" / "harvey"
    for sub in ("images", "labels"):
        (dest / sub).mkdir(parents=True)
    for t in tiles:
        for phase in ("pre", "post"):
            stem = f"hurricane-harvey_00000{t}_{phase}_disaster"
            for sub, ext in (("images", ".png"), ("labels", ".json")):
                f = src / sub / f"{stem}{ext}"
                if not f.is_file():
                    pytest.skip(f"xBD Harvey file missing: {f}")
                (dest / sub / f.name).write_bytes(f.read_bytes())
    return dest


def test_xbd_evaluation_job_records_what_evaluate_xbd_measures(shared_data, tiny_model, tmp_path):
    from core.learn.evaluation import evaluate_xbd

    folder = _xbd_subset(shared_data, tmp_path / "xbd", ("218", "228", "220"))
    r = jobs.runner(tmp_path / "ws")
    det = Detector.load(tiny_model, device="cpu")
    jid = r.start_xbd_evaluation(folder, model_path=tiny_model, device="cpu", note="a remark")
    job = r.wait(jid, timeout=300)
    assert job["status"] == "done", job["message"]
    assert job["kind"] == jobs.EVALUATE and job["progress"] == 1.0
    want = evaluate_xbd(det, folder)
    res = job["result"]
    assert res["data"] == "xbd" and res["folder"] == str(folder) and res["tile"] == 256 and res["note"] == "a remark"
    assert res["building_auroc"] == pytest.approx(want["building_auroc"], abs=1e-9)
    assert res["tile_auroc"] == pytest.approx(want["tile_auroc"], abs=1e-9)
    assert (res["n_damaged"], res["n_undamaged"], res["images"]) == (8, 123, 3)
    # 218 and 228 hold both classes, 220 only undamaged buildings: the scene-level confound is reported
    assert want["images_with_both_classes"] == 2
    assert 0.0 <= want["building_auroc_scene_median"] <= 1.0 and 0.0 <= want["building_auroc_within_scene"] <= 1.0
    assert (res["n_tiles"], res["n_damaged_tiles"]) == (want["n_tiles"], want["n_damaged_tiles"])
    assert f"building AUROC {want['building_auroc']:.3f}" in job["message"]
    # the stored ROC is the building ROC: its area is the building AUROC (scores without ties)
    assert np.trapezoid(res["tpr"], res["fpr"]) == pytest.approx(want["building_auroc"], abs=1e-4)
    assert res["model"]["sha256"] == det.sha256
    assert [j["id"] for j in jobs.model_evaluations(r.ws, det.sha256)] == [jid]


def test_xbd_evaluation_refuses_a_folder_without_images_and_a_bad_tile(tmp_path):
    r = jobs.runner(tmp_path / "ws")
    with pytest.raises(InputError, match="no images/ folder"):
        r.start_xbd_evaluation(tmp_path, device="cpu")
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="tile size"):
        r.start_xbd_evaluation(tmp_path, device="cpu", tile=8)
    assert r.ws.list_jobs() == []


def test_xbd_evaluation_of_a_folder_without_post_images_fails_with_the_reason(tmp_path, tiny_model):
    (tmp_path / "xbd" / "images").mkdir(parents=True)
    r = jobs.runner(tmp_path / "ws")
    job = r.wait(r.start_xbd_evaluation(tmp_path / "xbd", model_path=tiny_model, device="cpu"), timeout=60)
    assert job["status"] == "failed" and "_post_disaster.png" in job["message"]


def test_roc_points_keep_the_curve_and_bound_its_length():
    from core.learn.evaluation import auroc, roc_curve

    rng = np.random.default_rng(0)
    labels = (rng.random(5000) < 0.2).astype(int)
    scores = rng.normal(size=5000) + labels
    fpr, tpr = roc_curve(scores, labels)
    f, t = jobs.roc_points(fpr, tpr, max_points=100_000)
    assert len(f) < len(fpr) and (f[0], t[0], f[-1], t[-1]) == (0, 0, 1, 1)
    assert np.trapezoid(t, f) == pytest.approx(auroc(scores, labels), abs=1e-5)  # straight runs only were dropped
    f2, t2 = jobs.roc_points(fpr, tpr, max_points=200)
    assert len(f2) <= 200 and (f2[0], t2[0], f2[-1], t2[-1]) == (0, 0, 1, 1)
    assert all(a <= b for a, b in zip(f2, f2[1:], strict=False))
    assert np.trapezoid(t2, f2) == pytest.approx(auroc(scores, labels), abs=0.01)
    assert jobs.roc_points([0, 1], [0, 1]) == ([0.0, 1.0], [0.0, 1.0])


def test_a_cancelled_xbd_evaluation_records_nothing(shared_data, tiny_model, tmp_path):
    folder = _xbd_subset(shared_data, tmp_path / "xbd", ("218", "228", "220"))
    r = jobs.runner(tmp_path / "ws")
    det = Detector.load(tiny_model, device="cpu")
    jid = r.start_xbd_evaluation(folder, device="cpu", detector=det)
    r.cancel(jid)  # scoring three 1024 px tiles takes seconds: the worker sees this between images
    job = r.wait(jid, timeout=120)
    assert job["status"] == "cancelled" and "cancelled after" in job["message"] and "of 3 images" in job["message"]
    assert job["result"] is None and jobs.model_evaluations(r.ws, det.sha256) == []
