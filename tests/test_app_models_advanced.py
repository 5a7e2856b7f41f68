"""Models page, Train form, "Advanced": backbone weights (none / ImageNet from the local torch cache only / a weights
file), optimizer, learning rate, confetti, seed and GSD default to TrainConfig's values, are checked, and reach the
training job's TrainConfig and the checkpoint it writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.errors import ModelError
from core.learn import jobs
from core.learn.training import TrainConfig
from core.models.backbones import BACKBONES, build_backbone, hub_weights_path
from core.models.checkpoint import read_checkpoint
from core.server_files.paths import ENV_SERVER_PATHS
from core.store import Workspace
from tests.support.models import aider_subset, open_models_page

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def images(shared_data, tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("adv")
    out = aider_subset(shared_data, tmp, {"flooded_areas": 4, "fire": 3})
    torch.manual_seed(0)
    out["weights"] = tmp / "resnet18-trunk.pth"  # a real torchvision-named state_dict of the resnet18 trunk
    torch.save(build_backbone("resnet18").state_dict(), out["weights"])
    return out


@pytest.fixture
def page(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("BDA_MODEL", str(tiny_model))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty torch cache: no ImageNet weights
    monkeypatch.delenv(ENV_SERVER_PATHS, raising=False)

    return open_models_page


def _widget(items, label: str):
    return next(w for w in items if w.label == label)


def _tiny(at: AppTest, normal: Path, arch: str = "fcdd-resnet18") -> None:
    _widget(at.selectbox, "Architecture").set_value(arch)
    for label, value in (("Epochs", 2), ("Input size (px)", 64), ("Steps per epoch", 2), ("Batch size", 2)):
        _widget(at.number_input, label).set_value(value)
    next(t for t in at.text_input if t.label.startswith("…or a folder of normal images")).input(str(normal))


def _start(at: AppTest) -> None:
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception


def _finished(tmp_path: Path) -> dict:
    ws = Workspace(tmp_path / "ws")
    try:
        [job] = ws.list_jobs(kind=jobs.TRAIN)
        return jobs.runner(ws.root).wait(job["id"], timeout=300)
    finally:
        ws.close()


def _no_job(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    try:
        assert ws.list_jobs() == []
    finally:
        ws.close()


def test_advanced_options_default_to_train_config(page):
    at = page()
    d = TrainConfig()
    assert any(e.label == "Advanced" for e in at.expander)
    assert _widget(at.selectbox, "Backbone weights").value == d.pretrained == "auto"
    assert _widget(at.selectbox, "Optimizer").value == d.optimizer
    assert _widget(at.number_input, "Learning rate").value == pytest.approx(d.lr)
    assert _widget(at.number_input, "Seed").value == d.seed
    assert _widget(at.selectbox, "Synthetic 'confetti' anomalies").value == d.confetti
    assert _widget(at.number_input, "Training imagery GSD (m/pixel)").value is d.gsd_m is None
    assert _widget(at.text_input, "Weights file on the server").value == ""


def test_chosen_advanced_values_reach_the_jobs_train_config_and_the_checkpoint(page, images, tmp_path):
    at = page()
    _tiny(at, images["flooded_areas"])
    next(t for t in at.text_input if t.label.startswith("…or a folder of anomalies")).input(str(images["fire"]))
    _widget(at.selectbox, "Backbone weights").set_value("file")
    _widget(at.text_input, "Weights file on the server").input(str(images["weights"]))
    _widget(at.selectbox, "Optimizer").set_value("adam")
    _widget(at.number_input, "Learning rate").set_value(0.005)
    _widget(at.number_input, "Seed").set_value(7)
    _widget(at.selectbox, "Synthetic 'confetti' anomalies").set_value("mix")
    _widget(at.number_input, "Training imagery GSD (m/pixel)").set_value(0.3)
    _start(at)
    assert not at.error, [e.value for e in at.error]
    done = _finished(tmp_path)
    assert done["status"] == "done", done["message"]
    cfg = done["params"]["config"]
    want = {"pretrained": str(images["weights"]), "optimizer": "adam", "lr": 0.005, "confetti": "mix", "seed": 7,
            "gsd_m": 0.3, "anomalies": [str(images["fire"])]}
    assert {k: cfg[k] for k in want} == want
    meta = read_checkpoint(done["result"]["path"])[1]
    assert {k: meta["training"]["config"][k] for k in want} == want
    assert meta["gsd_m"] == 0.3  # what analyses resample to
    assert meta["training"]["history"][0]["lr"] == pytest.approx(0.005 * TrainConfig().lr_decay)  # lr really used


def test_imagenet_weights_missing_from_the_local_cache_are_refused_clearly(page, images, tmp_path):
    at = page()
    _tiny(at, images["flooded_areas"])
    _widget(at.selectbox, "Backbone weights").set_value("imagenet")
    _start(at)
    [err] = [e.value for e in at.error]
    looked = hub_weights_path(BACKBONES["resnet18"].weights)
    assert err.startswith("Training: ImageNet weights for resnet18 are unavailable offline") and str(looked) in err
    assert "never downloads" in err
    _no_job(tmp_path)


def test_imagenet_weights_in_the_local_cache_are_used(page, images, tmp_path):
    cached = hub_weights_path(BACKBONES["resnet18"].weights)  # inside this test's TORCH_HOME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(images["weights"].read_bytes())
    at = page()
    _tiny(at, images["flooded_areas"])
    _widget(at.selectbox, "Backbone weights").set_value("imagenet")
    _start(at)
    assert not at.error, [e.value for e in at.error]
    done = _finished(tmp_path)
    assert done["status"] == "done", done["message"]
    assert done["params"]["config"]["pretrained"] == "imagenet"


def test_weights_that_do_not_fit_the_backbone_fail_the_job_with_cores_message(page, images, tmp_path):
    at = page()
    _tiny(at, images["flooded_areas"], arch="fcdd-resnet50")
    _widget(at.selectbox, "Backbone weights").set_value("file")
    _widget(at.text_input, "Weights file on the server").input(str(images["weights"]))
    _start(at)
    done = _finished(tmp_path)
    assert done["status"] == "failed" and "does not fit this backbone" in done["message"], done["message"]
    at.run()
    assert any("does not fit this backbone" in t.value for t in at.text)  # on the job's card


@pytest.mark.parametrize("setup, words", [
    ({"Synthetic 'confetti' anomalies": "off"}, "Confetti is off but no anomalies are given"),
    ({"Backbone weights": "file"}, "Weights file: type the full path"),
    ({"Weights file on the server": "/tmp/x.pth"}, "a weights file is given but 'Auto: the trunk's offline"),
    ({"Backbone weights": "file", "Weights file on the server": "/no/such/weights.pth"}, "is not a file"),
    ({"Backbone weights": "file", "Weights file on the server": "weights.pth"}, "not an absolute path"),
])
def test_inconsistent_advanced_values_are_refused_before_any_job(page, images, tmp_path, setup, words):
    at = page()
    _tiny(at, images["flooded_areas"])
    for label, value in setup.items():
        if label == "Weights file on the server":
            _widget(at.text_input, label).input(value)
        else:
            _widget(at.selectbox, label).set_value(value)
    _start(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and words in errors[0], errors
    _no_job(tmp_path)
    uploads = tmp_path / "ws" / "files" / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_a_weights_file_outside_the_allowed_folders_is_refused(page, images, tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv(ENV_SERVER_PATHS, f"{allowed}")
    normal = allowed / "normal"
    normal.mkdir()
    for f in images["flooded_areas"].iterdir():
        (normal / f.name).write_bytes(f.read_bytes())
    at = page()
    _tiny(at, normal)
    _widget(at.selectbox, "Backbone weights").set_value("file")
    _widget(at.text_input, "Weights file on the server").input(str(images["weights"]))
    _start(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "outside the folders" in errors[0] and ENV_SERVER_PATHS in errors[0], errors
    _no_job(tmp_path)


def test_offline_pretrained_choices_are_checked_against_the_trunk() -> None:
    from ui.models_train import check_pretrained

    assert check_pretrained("auto", "", "fcdd-resnet18") == "auto"
    assert check_pretrained("hed-vgg16", "", "fcdd-vgg16") == "hed-vgg16"
    assert check_pretrained("hed-vgg16", "", "patchcore-vgg16") == "hed-vgg16"
    with pytest.raises(ModelError, match="fit the vgg16 trunk"):
        check_pretrained("hed-vgg16", "", "fcdd-resnet18")
