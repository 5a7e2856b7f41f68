"""EfficientNet-Lite0: the trunk against lukemelas' computation read straight from the weights file, the classifier on
a real photograph, the source's checks, and the registered models."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.detection.detector import IMAGENET_MEAN, IMAGENET_STD, to_tensor
from core.errors import ModelError
from core.models import build_model
from core.models import pretrained as P
from core.models.backbones import build_backbone
from core.models.effnet import EfficientNetLiteTrunk, MBConv
from core.models.receptive import ReceptiveField, receptive_field

torch.set_num_threads(1)

SRC = "efficientnet-lite0"
#: ImageNet class 652, "military uniform": the classic label of matplotlib's sample photograph of Grace Hopper.
MILITARY_UNIFORM = 652


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BDA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "trunks"


def _raw() -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(P._verified_path(SRC), map_location="cpu", weights_only=True)
    return state


def _same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow "SAME" padding (lukemelas' Conv2dDynamicSamePadding): the extra pixel goes bottom/right."""
    h, w = x.shape[-2:]
    ph, pw = (max((math.ceil(n / s) - 1) * s + k - n, 0) for n in (h, w))
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


def lukemelas(sd: dict[str, torch.Tensor], v: torch.Tensor, n_blocks: int, tf_pad: bool) -> torch.Tensor:
    """EfficientNet-Lite0 as lukemelas' EfficientNet computes it from its own state_dict keys, in plain torch ops, on
    TF-Lite input ``v`` = (x·255 − 127)/128: the first ``n_blocks`` blocks, or (``n_blocks`` = 16) the logits."""
    def conv(x: torch.Tensor, w: torch.Tensor, s: int = 1, groups: int = 1) -> torch.Tensor:
        k = w.shape[-1]
        if tf_pad:
            return F.conv2d(_same_pad(x, k, s), w, stride=s, groups=groups)
        return F.conv2d(x, w, stride=s, padding=k // 2, groups=groups)

    def bn(x: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                            sd[f"{p}.bias"], False, 0.0, 1e-3)

    x = F.relu6(bn(conv(v, sd["_conv_stem.weight"], 2), "_bn0"))
    for i in range(n_blocks):
        b, inp = f"_blocks.{i}.", x
        if f"{b}_expand_conv.weight" in sd:
            x = F.relu6(bn(conv(x, sd[f"{b}_expand_conv.weight"]), f"{b}_bn0"))
        dw = sd[f"{b}_depthwise_conv.weight"]
        stride = 2 if i in (1, 3, 5, 11) else 1  # first block of stages 2, 3, 4, 6
        x = F.relu6(bn(conv(x, dw, stride, groups=dw.shape[0]), f"{b}_bn1"))
        x = bn(conv(x, sd[f"{b}_project_conv.weight"]), f"{b}_bn2")
        if stride == 1 and inp.shape == x.shape:
            x = x + inp
    if n_blocks < 16:
        return x
    x = F.relu6(bn(conv(x, sd["_conv_head.weight"]), "_bn1"))
    return F.linear(x.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])


def _tf_lite_input(img: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(img.astype(np.float32)).permute(0, 3, 1, 2) - 127.0) / 128.0


def test_trunk_computes_lukemelas_activations() -> None:
    img = np.random.default_rng(0).integers(0, 256, (2, 128, 144, 3)).astype(np.uint8)
    trunk = build_backbone("effnet-lite0", SRC).eval()
    with torch.no_grad():
        ours = trunk(to_tensor(img, IMAGENET_MEAN, IMAGENET_STD))
        ref = lukemelas(_raw(), _tf_lite_input(img), 5, tf_pad=False)
    assert ours.shape == ref.shape == (2, 40, 16, 18)
    scale = float(ref.abs().max())
    # exact where the receptive window (67 px, stride 8) misses the border, where the zero padding of our
    # normalised input is not TF-Lite's zero
    assert float((ours - ref)[..., 5:-5, 5:-5].abs().max()) < 1e-4 * scale
    assert float((ours - ref).abs().max()) < 0.2 * scale


def test_every_trunk_tensor_is_mapped_with_its_shape() -> None:
    trunk = EfficientNetLiteTrunk(16)  # every block of the file, not just the stride-8 cut
    want = trunk.state_dict()
    state = P._convert_lite0(P._verified_path(SRC), want)
    raw = _raw()
    assert set(state) == set(want) and len(want) == len(raw) - 8  # all but conv_head, its BN (6) and the fc (2)
    for k, v in want.items():
        assert state[k].shape == v.shape == raw[P.lite_source_key(k)].shape
    assert P.lite_source_key("blocks.3.depthwise.bn.running_mean") == "_blocks.3._bn1.running_mean"
    torch.testing.assert_close(state["blocks.12.project.conv.weight"], raw["_blocks.12._project_conv.weight"])
    with pytest.raises(ModelError, match="no tensor"):
        P.lite_source_key("head.weight")


def test_classifier_on_a_real_photograph() -> None:
    """The whole converted network (16 blocks + the file's head) names a real photograph the way lukemelas' own
    computation does, despite symmetric instead of TF "SAME" padding and the folded input normalisation."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip(f"matplotlib's sample photograph is not installed ({path})")
    im = Image.open(path).convert("RGB")
    c = min(im.size)
    im = im.crop(((im.width - c) // 2, (im.height - c) // 2, (im.width + c) // 2, (im.height + c) // 2))
    img = np.array(im.resize((224, 224), Image.Resampling.BICUBIC))[None]
    raw = _raw()
    trunk = EfficientNetLiteTrunk(16).eval()
    trunk.load_state_dict(P._convert_lite0(P._verified_path(SRC), trunk.state_dict()))
    with torch.no_grad():
        feats = trunk(to_tensor(img, IMAGENET_MEAN, IMAGENET_STD))
        head = F.batch_norm(F.conv2d(feats, raw["_conv_head.weight"]), raw["_bn1.running_mean"],
                            raw["_bn1.running_var"], raw["_bn1.weight"], raw["_bn1.bias"], False, 0.0, 1e-3)
        ours = F.linear(F.relu6(head).mean((2, 3)), raw["_fc.weight"], raw["_fc.bias"]).softmax(1)[0]
        ref = lukemelas(raw, _tf_lite_input(img), 16, tf_pad=True).softmax(1)[0]
    assert int(ref.argmax()) == int(ours.argmax()) == MILITARY_UNIFORM
    assert float(ours[MILITARY_UNIFORM]) > 0.2
    top5 = set(ours.topk(5).indices.tolist()) & set(ref.topk(5).indices.tolist())
    assert len(top5) >= 3


def test_fold_input_norm_by_hand() -> None:
    w = torch.zeros(1, 3, 1, 1)
    w[0, 1, 0, 0] = 2.0  # green
    w2, c = P.fold_input_norm(w, 0.5, 0.5, (0.0, 0.25, 0.0), (1.0, 0.1, 1.0))
    # green x = 0.1 u + 0.25; the source sees (x - 0.5) / 0.5 = 0.2 u - 0.5 -> 2 * (0.2 u - 0.5) = 0.4 u - 1
    assert w2[0, 1, 0, 0] == pytest.approx(0.4) and c[0] == pytest.approx(-1.0)
    assert float(w2[0, 0].abs().sum() + w2[0, 2].abs().sum()) == 0


def test_receptive_field_counts_the_main_path_only() -> None:
    trunk = build_backbone("effnet-lite0")
    # stem k3 s2: r 3, j 2; blocks (depthwise k, stride): (3,1) r 7; (3,2) r 11, j 4; (3,1) r 19; (5,2) r 35, j 8;
    # (5,1) r 67. Symmetric padding keeps every window centred: s = 0
    assert receptive_field(trunk.layers()) == ReceptiveField(67, 8, 0)
    block = trunk.blocks[2]
    assert isinstance(block, MBConv) and block.residual
    assert receptive_field([block]) == ReceptiveField(3, 1, 0)
    assert trunk.stage_channels == [16, 24, 40] and trunk.out_channels == 40
    x = torch.randn(1, 3, 64, 48)
    assert [tuple(s.shape[-2:]) for s in trunk.stages(x)] == [(32, 24), (16, 12), (8, 6)]
    assert trunk.last_stage() == [trunk.blocks[3], trunk.blocks[4]]


def test_source_checks_and_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.models.registry import resolve_pretrained

    assert resolve_pretrained("patchcore-effnet-lite0", "auto") == SRC
    assert resolve_pretrained("fcdd-effnet-lite0", "auto") == SRC
    assert resolve_pretrained("fcdd-vgg16", "auto") == "hed-vgg16"
    with pytest.raises(ModelError, match="fits the effnet-lite0 trunk"):
        build_backbone("vgg16", SRC)
    with pytest.raises(ModelError, match="no ImageNet weights for effnet-lite0"):
        build_backbone("effnet-lite0", "imagenet")
    src = P.SOURCES[SRC]
    P._verified_path.cache_clear()
    monkeypatch.setitem(P.SOURCES, SRC, dataclasses.replace(src, sha256="0" * 64))
    with pytest.raises(ModelError, match="not the recorded"):
        build_backbone("effnet-lite0", SRC)
    monkeypatch.setitem(P.SOURCES, SRC, dataclasses.replace(src, distribution="no-such-dist-xyz"))
    P._verified_path.cache_clear()
    with pytest.raises(ModelError, match="requirements-weights.txt"):
        build_backbone("effnet-lite0", SRC)
    assert P.default_source("effnet-lite0") == "none"  # auto falls back when the package is missing
    P._verified_path.cache_clear()


def test_conversion_is_cached(_cache: Path) -> None:
    a = build_backbone("effnet-lite0", SRC)
    files = list(_cache.glob("efficientnet-lite0-effnet-lite0-*.pt"))
    assert len(files) == 1
    b = build_backbone("effnet-lite0", SRC)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_patchcore_effnet_embeds_its_last_stages() -> None:
    model = build_model("patchcore-effnet-lite0", SRC).eval()
    assert model.pretrained == SRC and model.dim == 16 + 24 + 40
    two = build_model("patchcore-effnet-lite0", SRC, stages=2).eval()
    assert two.dim == 24 + 40
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 80)
        e, e2 = model.embed(x), two.embed(x)
    assert e.shape == (1, 80, 8, 10) and torch.isfinite(e).all()
    torch.testing.assert_close(e[:, 16:], e2)  # the last two stages are the same features
