"""Models page (Streamlit AppTest): model cards, checkpoint upload (a hostile pickle is refused), training and
evaluation started from the page and followed through the workspace."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.learn import jobs
from core.learn.training import TrainConfig, train
from core.store import Workspace
from tests.support.models import aider_subset, open_models_page

torch.set_num_threads(1)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    """A tiny trained checkpoint (used as BDA_MODEL) and small folders of flood (normal) and fire images."""
    tmp = tmp_path_factory.mktemp("models")
    folders = aider_subset(shared_data, tmp, {"flooded_areas": 6, "fire": 4})
    ckpt = tmp / "tiny.pt"
    train(TrainConfig(arch="fcdd-resnet18", normal=[str(folders["flooded_areas"])], input_size=64, epochs=2,
                      steps_per_epoch=2, batch_size=4, device="cpu", out=str(ckpt), name="tiny"),
          progress=lambda e: None)
    return {"ckpt": ckpt, "normal": folders["flooded_areas"], "fire": folders["fire"]}


@pytest.fixture
def page(data, tmp_path, monkeypatch):
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("BDA_MODEL", str(data["ckpt"]))

    return open_models_page


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _uploader(at: AppTest, prefix: str):
    return next(u for u in at.file_uploader if u.label.startswith(prefix))


def _text(at: AppTest, prefix: str):
    return next(t for t in at.text_input if t.label.startswith(prefix))


def _charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def test_page_shows_the_default_model_card(page):
    at = page()
    labels = [e.label for e in at.expander]
    assert any(lbl.startswith("Default model · tiny") for lbl in labels)
    assert [t.label for t in at.tabs] == ["Model cards", "Train", "Evaluate", "Upload checkpoint"]
    assert any("No training or evaluation jobs yet" in c.value for c in at.caption)
    assert any("FCDD" == m.value for m in at.metric)


def test_a_checkpoint_carrying_code_is_refused(page, tmp_path):
    at = page()
    marker = tmp_path / "pwned"
    evil = io.BytesIO()
    torch.save({"format": "bda-workbench-checkpoint/1", "state_dict": {}, "x": _Evil(marker)}, evil)
    _uploader(at, "Checkpoint").upload("model.pt", evil.getvalue())
    _button(at, "Check and register").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("refused" in e and "Nothing in it was run" in e for e in errors), errors
    assert not marker.exists()
    assert Workspace(tmp_path / "ws").list_models() == []


def test_a_valid_checkpoint_upload_is_registered(page, data, tmp_path):
    at = page()
    _uploader(at, "Checkpoint").upload("field.pt", data["ckpt"].read_bytes())
    _text(at, "Name (optional)").input("field model <b>")
    _button(at, "Check and register").click().run()
    assert not at.exception, at.exception
    assert any("registered as model #1" in s.value for s in at.success)
    models = Workspace(tmp_path / "ws").list_models()
    assert [m["name"] for m in models] == ["field model <b>"] and models[0]["info"]["source"] == "uploaded"
    at.run()
    assert any(e.label.startswith("#1 · field model <b>") for e in at.expander)


def test_training_started_on_the_page_runs_as_a_job_with_a_loss_curve(page, data, tmp_path):
    at = page()
    next(s for s in at.selectbox if s.label == "Architecture").set_value("fcdd-resnet18")
    for label, value in (("Epochs", 2), ("Input size (px)", 64), ("Steps per epoch", 2), ("Batch size", 2)):
        next(n for n in at.number_input if n.label == label).set_value(value)
    _text(at, "Model name").input("flood-tiny")
    _text(at, "…or a folder of normal images").input(str(data["normal"]))
    _button(at, "Start training").click().run()
    assert not at.exception, at.exception
    ws = Workspace(tmp_path / "ws")
    [job] = ws.list_jobs(kind=jobs.TRAIN)
    done = jobs.runner(ws.root).wait(job["id"], timeout=300)
    assert done["status"] == "done", done["message"]
    at.run()  # what the page shows on its next refresh
    assert not at.exception
    assert any(m.value.startswith(f"**Training job #{job['id']}** · done") for m in at.markdown)
    assert len(_charts(at)) == 1  # the loss curve
    assert any(e.label.startswith("#1 · flood-tiny") for e in at.expander)  # the trained model got registered


def test_training_without_images_says_so(page, tmp_path):
    at = page()
    _button(at, "Start training").click().run()
    assert not at.exception
    assert any("Give normal images" in e.value for e in at.error)
    assert Workspace(tmp_path / "ws").list_jobs() == []


def test_evaluation_started_on_the_page_draws_a_roc_curve(page, data, tmp_path):
    at = page()
    _text(at, "…or a server folder of normal images").input(str(data["normal"]))
    _text(at, "…or a server folder of anomalous images").input(str(data["fire"]))
    _button(at, "Start evaluation").click().run()
    assert not at.exception, at.exception
    ws = Workspace(tmp_path / "ws")
    [job] = ws.list_jobs(kind=jobs.EVALUATE)
    done = jobs.runner(ws.root).wait(job["id"], timeout=300)
    assert done["status"] == "done", done["message"]
    at.run()
    assert len(_charts(at)) == 1  # the ROC curve
    assert any("6 normal vs 4 anomalous" in c.value for c in at.caption)
    assert any(t.value.startswith("AUROC") for t in at.text)
