"""A small real training run on ../shared/data through the CLI, then evaluate and the checkpoint's metadata."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from core.cli.main import main
from core.detection.detector import Detector
from core.models.checkpoint import read_checkpoint

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny_model(shared_data, tmp_path_factory):
    """fcdd-resnet18 trained for a few steps on Joplin pre tiles with AIDER fire as outlier exposure."""
    out = tmp_path_factory.mktemp("model") / "tiny.pt"
    j = shared_data / "geotiff/joplin_tornado_xview2deploy"
    rc = main(["train", "--arch", "fcdd-resnet18", "--normal", str(j / "pre"),
               "--anomalies", str(shared_data / "aider/fire/fire_image00*.jpg"), "--confetti", "mix",
               "--exclude-like", *map(str, sorted((j / "chips_aligned/pre").glob("*.tif"))),
               "--input-size", "64", "--epochs", "2", "--steps-per-epoch", "3", "--batch-size", "4",
               "--optimizer", "adam", "--out", str(out), "--name", "tiny", "--device", "cpu"])
    assert rc == 0
    return out


def test_checkpoint_metadata_is_complete(tiny_model):
    _, meta = read_checkpoint(tiny_model)
    assert meta["arch"] == "fcdd-resnet18" and meta["objective"] == "fcdd" and meta["input_size"] == 64
    assert meta["receptive_field"] == {"r": 99.0, "j": 8.0, "s": 0.0}
    cal = meta["calibration"]
    assert cal["pixel_q99"] > cal["pixel_q50"] and cal["threshold"] >= 1.0 and cal["n_images"] > 0
    assert meta["change_calibration"], "pre/post change calibration is stored with the model"
    tr = meta["training"]
    assert len(tr["history"]) == 2 and tr["samples"] == 24
    assert tr["normal"]["files"] == 4 and tr["anomalies"]["files"] >= 1
    assert tr["config"]["exclude_bounds"], "the held-out chips' area must be recorded as excluded"
    assert {"torch", "torchvision", "core"} <= set(meta["versions"]) and meta["created"]
    json.dumps(meta)


def _valid_patches(path, patch: int) -> int:
    """Patches whose pixels are at least 90% not exact black, counted independently of core."""
    import rasterio

    with rasterio.open(path) as ds:
        valid = ds.read()[:3].any(axis=0)
    h, w = valid.shape
    return sum(valid[r:r + patch, c:c + patch].mean() >= 0.9
               for r in range(0, h - patch + 1, patch) for c in range(0, w - patch + 1, patch))


def test_evaluate_cli_json(tiny_model, shared_data, capsys):
    j = shared_data / "geotiff/joplin_tornado_xview2deploy/chips_aligned"
    rc = main(["evaluate", "--model", str(tiny_model), "--normal", str(j / "pre/0_pre.tif"),
               "--anomalous", str(j / "post/0_post.tif"), "--patch", "256", "--json", "--device", "cpu"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    # 16 patches of 256 px per 1024 px chip, less those mostly exact-black nodata (the post chip has a border)
    assert out["images"]["n_normal"] == _valid_patches(j / "pre/0_pre.tif", 256) == 16
    assert out["images"]["n_anomalous"] == _valid_patches(j / "post/0_post.tif", 256) < 16
    assert 0.0 <= out["images"]["auroc"] <= 1.0
    assert out["model"]["name"] == "tiny"


def test_detector_is_thread_safe(tiny_model, shared_data):
    det = Detector.load(tiny_model, device="cpu")
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 255, (2, 96, 128, 3), dtype=np.uint8) for _ in range(6)]
    serial = [det.predict(t)[0] for t in tiles]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = det.predict(tiles[i])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(6):
        assert results[i].shape == (2, 96, 128)
        np.testing.assert_allclose(results[i], serial[i], rtol=1e-5, atol=1e-6)


def test_train_errors_are_clear(tmp_path, capsys):
    rc = main(["train", "--normal", str(tmp_path / "missing"), "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err and "not found" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    rc = main(["train", "--normal", str(tmp_path / "empty"), "--out", str(tmp_path / "m.pt")])
    assert rc == 2 and "no normal images found" in capsys.readouterr().err
    rc = main(["train", "--normal", str(tmp_path), "--input-size", "30"])
    assert rc == 2 and "multiple of 8" in capsys.readouterr().err


def test_evaluate_needs_labels(capsys):
    assert main(["evaluate"]) == 2
    assert "--normal and --anomalous" in capsys.readouterr().err


def test_cuda_request_without_gpu_is_clear(tiny_model, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    rc = main(["evaluate", "--model", str(tiny_model), "--xbd", "x", "--device", "cuda"])
    assert rc == 2 and "no CUDA GPU" in capsys.readouterr().err
