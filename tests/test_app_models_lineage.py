"""Models page (AppTest): the one-class lineage (FCDD, HSC, Deep SVDD, Deep SAD, feature matching) is offered with
its families, a tiny Deep SVDD trains from the page as a job (normal images only, confetti off) and gets its card,
and Deep SAD's η reaches the training options."""

from __future__ import annotations

import pytest
import torch

from core.learn import jobs
from core.learn.training import TrainConfig
from core.models.checkpoint import read_checkpoint
from core.models.registry import list_archs
from core.store import Workspace
from tests.support.models import aider_subset, open_models_page
from ui.models_train import Advanced, train_options

torch.set_num_threads(1)


@pytest.fixture
def page(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("BDA_MODEL", str(tiny_model))
    return open_models_page


def _widget(items, label: str):
    return next(w for w in items if w.label == label)


def test_every_architecture_is_offered_with_its_family_and_a_deep_svdd_trains(page, shared_data, tmp_path):
    normal = aider_subset(shared_data, tmp_path, {"flooded_areas": 4})["flooded_areas"]
    at = page()
    arch = _widget(at.selectbox, "Architecture")
    assert len(arch.options) == len(list_archs())
    for label in ("Deeper FCDD · fcdd-vgg16", "HSC · hsc-vgg16", "Deep SVDD · deep-svdd-vgg16",
                  "Deep SAD · deep-sad-resnet18", "Feature matching (PatchCore) · patchcore-vgg16"):
        assert label in arch.options, arch.options
    arch.set_value("deep-svdd-resnet18")
    for label, value in (("Epochs", 2), ("Input size (px)", 64), ("Steps per epoch", 2), ("Batch size", 2)):
        _widget(at.number_input, label).set_value(value)
    next(t for t in at.text_input if t.label.startswith("Model name")).input("svdd-tiny")
    next(t for t in at.text_input if t.label.startswith("…or a folder of normal images")).input(str(normal))
    _widget(at.selectbox, "Synthetic 'confetti' anomalies").set_value("off")  # Deep SVDD needs no anomalies
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("Deep SVDD over ResNet18" in c.value for c in at.caption)  # the architecture's description
    ws = Workspace(tmp_path / "ws")
    try:
        [job] = ws.list_jobs(kind=jobs.TRAIN)
        done = jobs.runner(ws.root).wait(job["id"], timeout=600)
    finally:
        ws.close()
    assert done["status"] == "done", done["message"]
    state, meta = read_checkpoint(done["result"]["path"])
    assert (meta["arch"], meta["objective"], meta["family"]) == ("deep-svdd-resnet18", "deep-svdd", "Deep SVDD")
    assert meta["training"]["optimizer"] == "adam" and meta["training"]["samples"] == 8
    assert torch.all(state["c"].abs() >= 0.1)  # the centre was set before training and saved
    at.run()
    assert not at.exception
    assert any(e.label.startswith("#1 · svdd-tiny") for e in at.expander)
    assert any(m.value == "Deep SVDD" for m in at.metric)  # the card's family


def test_deep_sad_eta_reaches_the_training_options_only_for_deep_sad() -> None:
    adv = Advanced(weights="none", weights_file="", optimizer="auto", lr=1e-3, confetti="auto", seed=0, gsd_m=None,
                   eta=2.5)
    assert train_options(adv, "deep-sad-resnet18", has_anomalies=True)["options"] == {"eta": 2.5}
    assert train_options(adv, "fcdd-resnet18", has_anomalies=True)["options"] == {}
    assert TrainConfig().optimizer == "auto"


def test_feature_matching_neighbours_reach_the_training_options_only_for_patchcore() -> None:
    from core.errors import InputError

    adv = Advanced(weights="none", weights_file="", optimizer="auto", lr=1e-3, confetti="auto", seed=0, gsd_m=None,
                   neighbours=4)
    assert train_options(adv, "patchcore-vgg16", has_anomalies=False)["options"] == {"neighbours": 4}
    assert train_options(adv, "fcdd-resnet18", has_anomalies=True)["options"] == {}
    with pytest.raises(InputError, match="Neighbours averaged: give a whole number from 1 to 256"):
        train_options(Advanced(**{**adv.__dict__, "neighbours": 0}), "patchcore-vgg16", has_anomalies=False)


@pytest.mark.slow  # an app session on the Models page (keeps the fast lane under a minute)
def test_the_feature_matching_card_says_what_was_fitted_not_epochs(tmp_path, monkeypatch) -> None:
    from tests.support.data import REPO

    model = REPO / "assets/models/patchcore-vgg16.pt"
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("BDA_MODEL", str(model))
    _state, meta = read_checkpoint(model)
    bank = meta["training"]["feature_bank"]
    at = open_models_page()
    texts = [t.value for t in at.text]
    assert any(f"a feature bank of {bank['bank']} from {bank['cells']} normal cells; a location's anomaly is its mean "
               f"distance to the {bank['neighbours']} nearest" in t for t in texts), texts
    assert not any("epoch" in t for t in texts if "feature bank" in t)
