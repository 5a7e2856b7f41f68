"""Offline pretrained trunks: the hed-vgg16 conversion against HED's own computation, its checks and its cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.detection.detector import IMAGENET_MEAN, IMAGENET_STD, to_tensor
from core.errors import ModelError
from core.models import build_model
from core.models import pretrained as P
from core.models.backbones import build_backbone

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BDA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "trunks"


def _hed_reference(img: np.ndarray) -> torch.Tensor:
    """HED's VGG16 conv1_1..conv4_3 as HED computes it: Caffe input (BGR, 0-255, minus the mean), plain convs."""
    convs = P._hed_convs(P._verified_path("hed-vgg16"))
    h = torch.from_numpy(img[..., ::-1].astype(np.float32) - np.array(P.HED_MEAN_BGR, np.float32)).permute(0, 3, 1, 2)
    k = 0
    for block, n in ((1, 2), (2, 2), (3, 3), (4, 3)):
        for _ in range(n):
            w, b = convs[k]
            k += 1
            h = torch.relu(F.conv2d(h, torch.from_numpy(w), torch.from_numpy(b), padding=1))
        if block < 4:
            h = F.max_pool2d(h, 2)
    return h


def test_hed_vgg16_trunk_computes_heds_activations() -> None:
    img = np.random.default_rng(0).integers(0, 256, (2, 64, 80, 3)).astype(np.uint8)
    trunk = build_backbone("vgg16", "hed-vgg16").eval()
    with torch.no_grad():
        ours = trunk(to_tensor(img, IMAGENET_MEAN, IMAGENET_STD))
    ref = _hed_reference(img)
    assert ours.shape == ref.shape == (2, 512, 8, 10)
    scale = float(ref.abs().max())
    # exact but for the one-pixel zero padding at the border (Caffe pads its own zero, we pad ours)
    assert float((ours - ref)[..., 2:-2, 2:-2].abs().max()) < 1e-3 * scale
    assert float((ours - ref).abs().max()) < 2e-2 * scale


def test_hed_conversion_shapes_and_identity_batch_norms() -> None:
    trunk = build_backbone("vgg16", "hed-vgg16")
    convs = [m for m in trunk.features if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in trunk.features if isinstance(m, torch.nn.BatchNorm2d)]
    assert [c.weight.shape[0] for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512]
    raw = P._hed_convs(P._verified_path("hed-vgg16"))
    torch.testing.assert_close(convs[4].weight, torch.from_numpy(raw[4][0]))  # a kernel transposed HWIO -> OIHW
    torch.testing.assert_close(convs[4].bias, torch.from_numpy(raw[4][1]))
    for bn in bns:
        x = torch.randn(1, bn.num_features, 4, 4)
        torch.testing.assert_close(bn.eval()(x), x)


def test_fold_caffe_input_by_hand() -> None:
    w = torch.zeros(1, 3, 1, 1)
    w[0, 0, 0, 0] = 2.0  # Caffe channel 0 is blue
    b = torch.tensor([1.0])
    w2, b2 = P.fold_caffe_input(w, b, (100.0, 0.0, 0.0), (0.0, 0.0, 0.5), (1.0, 1.0, 0.25))
    # blue u_B normalised: pixel = 255 * (0.25 u + 0.5); Caffe sees pixel - 100 -> 2 * (63.75 u + 27.5) + 1
    assert w2[0, 2, 0, 0] == pytest.approx(2 * 255 * 0.25) and w2[0, :2].abs().sum() == 0
    assert b2[0] == pytest.approx(1 + 2 * (255 * 0.5 - 100))


def test_conversion_is_cached_and_a_broken_cache_is_rebuilt(_cache: Path) -> None:
    build_backbone("vgg16", "hed-vgg16")
    files = list(_cache.glob("hed-vgg16-vgg16-*.pt"))
    assert len(files) == 1
    files[0].write_bytes(b"not a torch file")
    trunk = build_backbone("vgg16", "hed-vgg16")  # rebuilt, not trusted
    assert torch.isfinite(trunk.features[0].weight).all() and files[0].stat().st_size > 1_000_000


def test_source_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match="fits the vgg16 trunk"):
        build_backbone("resnet18", "hed-vgg16")
    with pytest.raises(ModelError, match="offline sources"):
        P.get_source("nope")
    src = P.SOURCES["hed-vgg16"]
    P._verified_path.cache_clear()
    monkeypatch.setitem(P.SOURCES, "hed-vgg16", dataclasses.replace(src, sha256="0" * 64))
    with pytest.raises(ModelError, match="not the recorded"):
        build_backbone("vgg16", "hed-vgg16")
    monkeypatch.setitem(P.SOURCES, "hed-vgg16", dataclasses.replace(src, distribution="no-such-dist-xyz"))
    P._verified_path.cache_clear()
    with pytest.raises(ModelError, match="requirements-weights.txt"):
        build_backbone("vgg16", "hed-vgg16")
    P._verified_path.cache_clear()


def test_auto_picks_the_installed_source() -> None:
    from core.models.registry import resolve_pretrained

    assert resolve_pretrained("fcdd-vgg16", "auto") == "hed-vgg16"
    assert resolve_pretrained("patchcore-vgg16", "auto") == "hed-vgg16"
    assert resolve_pretrained("fcdd-resnet18", "auto") == "none"
    assert resolve_pretrained("fcdd-vgg16", "none") == "none"
    assert build_model("fcdd-vgg16", "hed-vgg16").pretrained == "hed-vgg16"


@pytest.mark.slow  # trains (one step of VGG16 and its calibration)
def test_a_fine_tuned_stage_is_stored_in_half_precision_and_loads_back(tmp_path: Path) -> None:
    """Training on a pretrained trunk with its last stage fine-tuned stores that stage (and nothing else of the
    trunk) in float16: half the file. Loading casts it back into the net's float32 parameters."""
    import cv2

    from core.detection.detector import Detector
    from core.learn.training import TrainConfig, train
    from core.models.checkpoint import read_checkpoint

    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f"normal{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
        paths.append(str(p))
    out = tmp_path / "ft.pt"
    train(TrainConfig(arch="fcdd-vgg16", pretrained="hed-vgg16", freeze="auto", normal=paths, out=str(out),
                      input_size=32, epochs=1, steps_per_epoch=1, batch_size=2, optimizer="adam", lr=1e-4,
                      device="cpu", name="ft"))
    state, meta = read_checkpoint(out)
    net = build_model("fcdd-vgg16", pretrained="hed-vgg16")
    ids = {id(p) for m in net.backbone.last_stage() for p in m.parameters()}
    last_stage = {f"backbone.{n}" for n, p in net.backbone.named_parameters() if id(p) in ids}
    trunk = {k: v for k, v in state.items() if k.startswith("backbone.")}
    assert meta["trunk_source"]["name"] == "hed-vgg16" and set(trunk) == last_stage
    assert all(v.dtype == torch.float16 for v in trunk.values())
    assert state["head.weight"].dtype == torch.float32
    stage_params = sum(v.numel() for v in trunk.values())
    assert out.stat().st_size < stage_params * 2 + 1_000_000  # two bytes a weight, plus the head and metadata
    det = Detector.load(out, device="cpu")
    loaded = dict(det.net.named_parameters())
    for k, v in trunk.items():
        assert loaded[k].dtype == torch.float32 and torch.equal(loaded[k].detach(), v.float())
    maps, scores = det.predict(rng.integers(0, 255, (1, 64, 64, 3), dtype=np.uint8))
    assert np.isfinite(maps).all() and np.isfinite(scores).all()
