"""Deep SVDD and Deep SAD trained for a few steps on real images through the CLI, then evaluated through the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from core.cli.main import main
from core.detection.detector import Detector
from core.models.checkpoint import read_checkpoint

torch.set_num_threads(2)


@pytest.mark.parametrize("arch, extra", [("deep-svdd-resnet18", []), ("deep-sad-resnet18", ["--eta", "2"])])
def test_cli_trains_and_evaluates_the_lineage(shared_data, tmp_path, capsys, arch, extra):
    aider = shared_data / "aider"
    if not (aider / "fire").is_dir():
        pytest.skip("AIDER images missing")
    out = tmp_path / "m.pt"
    rc = main(["train", "--arch", arch, "--normal", str(aider / "flooded_areas/flood_image000*.jpg"),
               "--anomalies", str(aider / "fire/fire_image000*.jpg"), "--input-size", "64", "--epochs", "2",
               "--steps-per-epoch", "2", "--batch-size", "4", "--device", "cpu", "--out", str(out), *extra])
    assert rc == 0, capsys.readouterr().err
    state, meta = read_checkpoint(out)
    family = "Deep SVDD" if arch.startswith("deep-svdd") else "Deep SAD"
    assert meta["family"] == family and meta["training"]["optimizer"] == "adam"
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in meta["training"]["history"])
    assert torch.all(state["c"].abs() >= 0.1) and "head.bias" not in state
    warned = any("anomaly file(s) were not used" in w for w in meta["training"]["warnings"])
    assert warned == (family == "Deep SVDD")  # Deep SVDD learns from normal images only
    assert meta["training"]["config"]["options"] == ({"eta": 2.0} if extra else {})
    det = Detector.load(out, device="cpu")
    assert det.family == family and torch.equal(det.net.c.cpu(), state["c"])
    capsys.readouterr()
    rc = main(["evaluate", "--model", str(out), "--normal", str(aider / "flooded_areas/flood_image001*.jpg"),
               "--anomalous", str(aider / "fire/fire_image001*.jpg"), "--json", "--device", "cpu"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"]["family"] == family
    assert result["images"]["n_normal"] == result["images"]["n_anomalous"] == 10
    assert 0.0 <= result["images"]["auroc"] <= 1.0


def test_an_option_the_objective_does_not_take_is_refused_before_reading_images(tmp_path, capsys):
    rc = main(["train", "--arch", "deep-svdd-resnet18", "--eta", "2", "--normal", str(tmp_path / "missing"),
               "--out", str(tmp_path / "m.pt")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "takes no option eta" in err and "deep-sad" in err and "Traceback" not in err
