"""Contract tests over every registered architecture, receptive-field arithmetic, and weight loading."""

from __future__ import annotations

import copy
import json
import socket
import urllib.request
from pathlib import Path

import pytest
import torch
from torch import nn

from core.errors import ModelError
from core.models import (
    OneClassNet,
    ReceptiveField,
    arch_info,
    build_model,
    gaussian_upsample,
    list_archs,
    output_shape,
    receptive_field,
)
from core.models.backbones import BACKBONES, hub_weights_path
from core.models.checkpoint import load_model, save_checkpoint
from core.models.patchcore import PatchCoreNet

torch.set_num_threads(1)

ARCHS = list_archs()


@pytest.fixture(scope="module")
def models() -> dict[str, OneClassNet]:
    torch.manual_seed(0)
    out = {a: build_model(a).eval() for a in ARCHS}
    for m in out.values():
        if isinstance(m, PatchCoreNet):  # a small bank of random normal features, so the contract can run
            m.set_bank(torch.nn.functional.normalize(torch.randn(64, m.dim), dim=1))
        m.start_training(torch.randn(4, 3, 32, 32))  # every net takes the hook (Deep SVDD: its centre)
    return out


# --- receptive-field arithmetic -------------------------------------------------------------------------------------

def _probe_copy(trunk: nn.Module) -> nn.Module:
    """Copy of ``trunk`` whose input-gradient support is exactly its receptive field.

    Positive averaging convs, identity BN, max-pools swapped for average pools of the same geometry; a positive
    input keeps every ReLU open.
    """
    probe = copy.deepcopy(trunk).double().eval()

    def swap(mod: nn.Module) -> None:
        for name, child in mod.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(mod, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
            else:
                swap(child)

    swap(probe)
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
                m.weight.fill_(1.0)
                m.bias.zero_()
    return probe


def empirical_rf(trunk: nn.Module, size: int, index: int) -> tuple[int, float]:
    """(support width, support centre) along rows of output position (index, index) on a size×size input."""
    x = torch.ones(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    y = _probe_copy(trunk)(x)
    (grad,) = torch.autograd.grad(y[0, 0, index, index], x)
    rows = torch.nonzero(grad.abs().sum((0, 1, 3)) > 0).flatten()
    first, last = int(rows[0]), int(rows[-1])
    return last - first + 1, (first + last) / 2


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_computed_rf_equals_measured_gradient_support(backbone: str) -> None:
    model = build_model(f"fcdd-{backbone}")
    rf = model.rf
    index = 8  # a position whose receptive window lies inside a 144-px input for every trunk here
    assert rf.s + rf.j * index - rf.r / 2 >= 0 and rf.s + rf.j * index + rf.r / 2 <= 144
    width, centre = empirical_rf(model.backbone, 144, index)
    assert (width, centre) == (rf.r, rf.centre(index))


@pytest.mark.slow  # imports all of torchvision (~2 s: its detection ops load torch._dynamo)
def test_vgg11_reference_numbers_and_cut() -> None:
    from torchvision import models as tvm

    model = build_model("fcdd-vgg11")
    assert model.rf == ReceptiveField(62, 8, 3.5)
    assert model.map_shape((224, 224)) == (28, 28)
    with torch.device("meta"):
        tv = tvm.vgg11_bn()
    assert str(model.backbone.features) == str(tv.features[:-8])  # the FCDD_CNN224_VGG cut
    assert model.head.in_channels == 512 and model.head.out_channels == 1


def test_vgg16_is_cut_before_the_fourth_pool() -> None:
    model = build_model("fcdd-vgg16")
    feats = list(model.backbone.features)
    assert sum(isinstance(m, nn.MaxPool2d) for m in feats) == 3 and isinstance(feats[-1], nn.ReLU)
    assert sum(isinstance(m, nn.Conv2d) for m in feats) == 10
    assert model.rf == receptive_field(model.backbone.layers())
    assert model.rf.j == 8


def test_resnet_rf_ignores_downsample_branch() -> None:
    trunk = build_model("fcdd-resnet50").backbone
    block = trunk.layer2[0]
    assert block.downsample is not None
    with_branch = receptive_field([block])
    main_only = receptive_field([block.conv1, block.conv2, block.conv3])
    assert with_branch == main_only == ReceptiveField(3, 2, 0)


def test_receptive_field_handles_dilation_and_stride() -> None:
    layers = [nn.Conv2d(1, 1, 3, padding=2, dilation=2), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(1, 1, 3, stride=2)]
    # dilated conv: k_e = 5 -> r = 5, s = 0; avgpool k2: r = 6, s = 0.5, j = 2; conv k3 s2: r = 10, s = 2.5, j = 4
    assert receptive_field(layers) == ReceptiveField(10, 4, 2.5)
    # measured on the same geometry with a 3-channel first layer: support width r, centred on s + 4j
    width, centre = empirical_rf(nn.Sequential(nn.Conv2d(3, 1, 3, padding=2, dilation=2), *layers[1:]), 40, 4)
    assert (width, centre) == (10, 2.5 + 4 * 4)


@pytest.mark.parametrize("layer", [nn.Linear(3, 3), nn.AdaptiveAvgPool2d(1), nn.Conv2d(1, 1, (3, 1)),
                                   nn.MaxPool2d((2, 1))])
def test_receptive_field_rejects_unknown_or_non_square_layers(layer: nn.Module) -> None:
    with pytest.raises(ModelError):
        receptive_field([nn.Conv2d(3, 3, 3), layer])


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("n", [7, 8, 9, 33])
def test_output_size_matches_torch(n: int, ceil_mode: bool) -> None:
    layers = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(3, 2, padding=1, ceil_mode=ceil_mode),
                           nn.Conv2d(1, 1, 5, stride=3, dilation=2, padding=1), nn.AvgPool2d(2, ceil_mode=ceil_mode))
    if output_shape(layers, (n, n))[0] < 1:
        with pytest.raises(RuntimeError):
            layers(torch.zeros(1, 1, n, n))
        return
    assert layers(torch.zeros(1, 1, n, n)).shape[-2:] == output_shape(layers, (n, n))


# --- the contract every registered model keeps ---------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_contract(models: dict[str, OneClassNet], arch: str) -> None:
    model = models[arch]
    hw = (37, 53)  # odd and not square: the stride and crop arithmetic's hard case (multiples of 8 take the same path)
    info = arch_info(arch)
    assert model.arch == arch and model.objective == info["objective"] and model.family == info["family"]
    assert arch.endswith(f"-{info['backbone']}") and info["family"] in info["description"]
    extra = [model.aggregate] if isinstance(model, PatchCoreNet) else []  # feature matching aggregates 3x3 cells
    assert model.rf == receptive_field([*model.backbone.layers(), *extra])
    assert model.rf.j == 8 and info["stride"] == 8
    assert 8 <= model.sigma <= 12
    x = torch.randn(2, 3, *hw)
    h, w = model.map_shape(hw)
    with torch.inference_mode():
        out = model(x)
        feats = model.features(x)
        maps, scores = model.heatmap(x)
        img = model.image_score(out)
        a = model.anomaly(out)
    assert abs(h - hw[0] / 8) < 1 and abs(w - hw[1] / 8) < 1  # stride 8 (VGG floors, ResNet rounds up)
    assert feats.shape == (2, info["feature_channels"], h, w)
    if out.dim() == 4:  # a map: its anomaly is a map too
        assert out.shape == a.shape == (2, 1, h, w) and "(N,1,h,w)" in info["output"]
    else:  # a vector per image: one anomaly per image
        assert out.shape == (2, 128) and a.shape == (2,) and "(N,128)" in info["output"]
    assert maps.shape == (2, *hw) and maps.dtype == torch.float32
    assert scores.shape == (2,) and img.shape == (2,)
    torch.testing.assert_close(scores, img.float())
    assert torch.all(torch.isfinite(maps)) and torch.all(maps >= 0) and maps.abs().sum() > 0
    assert torch.all(scores >= 0)


@pytest.mark.parametrize("arch", ARCHS)
def test_contract_training(models: dict[str, OneClassNet], arch: str) -> None:
    """Gradient-trained nets give a finite loss whose gradient reaches the head; feature matching refuses one."""
    model = copy.deepcopy(models[arch]).train()
    info = arch_info(arch)
    x, y = torch.randn(2, 3, 32, 40), torch.tensor([0.0, 1.0])
    assert model.trained_by_gradient == info["trained_by_gradient"]
    if not model.trained_by_gradient:
        with pytest.raises(ModelError, match="no training loss"):
            model.loss(model(x), y)
        return
    loss = model.loss(model(x).float(), y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert model.head.weight.grad is not None and torch.any(model.head.weight.grad != 0)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("arch", ARCHS)
def test_contract_checkpoint_round_trip(models: dict[str, OneClassNet], arch: str, tmp_path: Path) -> None:
    """state_dict -> checkpoint file -> a fresh net of the same arch: the same scores (Deep SVDD's centre included)."""
    model = models[arch]
    path = tmp_path / "m.pt"
    save_checkpoint(path, model.state_dict(), {"arch": arch})
    torch.manual_seed(123)  # a different random init underneath
    loaded, meta, _ = load_model(path)
    assert meta["arch"] == arch and type(loaded) is type(model)
    x = torch.randn(1, 3, 40, 48)
    with torch.inference_mode():
        ref_maps, ref_scores = model.heatmap(x)
        maps, scores = loaded.heatmap(x)
    torch.testing.assert_close(scores, ref_scores, rtol=1e-3, atol=1e-5)  # the bank is stored in half precision
    torch.testing.assert_close(maps, ref_maps, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_map_shape_matches_forward_for_odd_sizes(models: dict[str, OneClassNet], arch: str) -> None:
    model = models[arch]
    for hw in ((32, 32), (45, 161), (100, 33)):
        with torch.no_grad():
            feats = model.features(torch.zeros(1, 3, *hw))
        assert tuple(feats.shape[-2:]) == model.map_shape(hw)


def test_arch_info_is_json_safe_and_matches_models(models: dict[str, OneClassNet]) -> None:
    for arch in ARCHS:
        info = arch_info(arch)
        assert json.loads(json.dumps(info)) == info
        assert info["rf"] == models[arch].rf.to_dict()
        assert info["map_size_224"] == [28, 28]
        assert info["backbone"] in BACKBONES and info["description"]
    assert arch_info("fcdd-vgg11")["rf"] == {"r": 62.0, "j": 8.0, "s": 3.5}


def test_arch_info_does_not_touch_the_rng() -> None:
    from core.models import registry

    torch.manual_seed(3)
    registry._info.cache_clear()
    before = torch.random.get_rng_state()
    arch_info("hsc-resnet50")
    assert torch.equal(before, torch.random.get_rng_state())


def test_fcdd_heatmap_is_upsampled_anomaly_at_non_square_input(models: dict[str, OneClassNet]) -> None:
    model = models["fcdd-vgg11"]
    x = torch.randn(1, 3, 160, 224)
    with torch.no_grad():
        phi = model(x)
        a = model.anomaly(phi)
    maps, scores = model.heatmap(x)
    assert phi.shape == (1, 1, 20, 28) and maps.shape == (1, 160, 224)
    torch.testing.assert_close(maps, gaussian_upsample(a, model.rf, (160, 224), model.sigma)[:, 0])
    torch.testing.assert_close(scores, a.mean((1, 2, 3)))
    torch.testing.assert_close(a, torch.sqrt(phi ** 2 + 1) - 1, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch", ["hsc-vgg11", "hsc-resnet18"])
def test_hsc_heatmap_is_per_sample_and_leaves_parameters_alone(models: dict[str, OneClassNet], arch: str) -> None:
    model = models[arch]
    with torch.inference_mode():
        x = torch.randn(2, 3, 40, 48)  # an inference tensor: heatmap must still get its gradient
        both, s_both = model.heatmap(x)
        one, s_one = model.heatmap(x[1:])
    torch.testing.assert_close(both[1:], one, rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(s_both[1:], s_one)
    assert all(p.grad is None for p in model.parameters())
    assert not torch.equal(both[0], both[1])


@pytest.mark.parametrize("arch", ["fcdd-resnet18", "hsc-vgg11"])
def test_channels_last(models: dict[str, OneClassNet], arch: str) -> None:
    model = models[arch]
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        ref = model(x)
        ref_maps, _ = model.heatmap(x)
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    xc = x.to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = cl(xc)
        maps, _ = cl.heatmap(xc)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(maps, ref_maps, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("arch", ["fcdd-resnet18", "hsc-resnet18"])
def test_heatmap_under_autocast_returns_float32(models: dict[str, OneClassNet], arch: str) -> None:
    model = models[arch]
    x = torch.randn(1, 3, 48, 48)
    ref, ref_s = model.heatmap(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        maps, scores = model.heatmap(x)
    assert maps.dtype == torch.float32 and scores.dtype == torch.float32
    assert torch.all(torch.isfinite(maps)) and torch.all(maps >= 0)
    torch.testing.assert_close(scores, ref_s, rtol=0.1, atol=1e-3)  # bf16 trunk: close, not equal


def test_train_mode_forward_and_backward() -> None:
    torch.manual_seed(0)
    model = build_model("fcdd-resnet18").train()
    out = model(torch.randn(2, 3, 32, 32))
    out.pow(2).mean().backward()
    assert model.head.weight.grad is not None and torch.isfinite(model.head.weight.grad).all()


def test_random_init_is_deterministic_given_seed() -> None:
    torch.manual_seed(42)
    a = build_model("hsc-resnet18").state_dict()
    torch.manual_seed(42)
    b = build_model("hsc-resnet18").state_dict()
    torch.manual_seed(43)
    c = build_model("hsc-resnet18").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], c["head.weight"])


def test_unknown_arch_lists_valid_names() -> None:
    with pytest.raises(ModelError) as e:
        build_model("fcdd-vgg19")
    assert "fcdd-vgg11" in str(e.value) and "hsc-resnet50" in str(e.value)
    with pytest.raises(ModelError):
        arch_info("nope")


@pytest.mark.parametrize("shape", [(1, 3, 7, 64), (1, 1, 64, 64), (3, 64, 64)])
def test_unusable_input_raises_model_error(models: dict[str, OneClassNet], shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelError):
        models["fcdd-vgg11"](torch.zeros(*shape))


# --- weights ---------------------------------------------------------------------------------------------------------

@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and block) every attempt to reach the network. Loopback is not the network: a background thread
    left by an earlier test in this process (Ray's metrics agent polls 127.0.0.1:9090) may use it and passes."""
    attempts: list[str] = []
    real_connect, real_create = socket.socket.connect, socket.create_connection

    def deny(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise AssertionError("network access attempted")

    def loopback(address: object) -> bool:
        host = address[0] if isinstance(address, tuple) and address else address
        return isinstance(host, str) and (host in ("localhost", "::1") or host.startswith("127."))

    def connect(sock: socket.socket, address: object) -> None:
        if loopback(address) or sock.family == socket.AF_UNIX:
            return real_connect(sock, address)  # type: ignore[arg-type]
        deny(sock, address)

    def create_connection(address: object, *args: object, **kwargs: object) -> socket.socket:
        if loopback(address):
            return real_create(address, *args, **kwargs)  # type: ignore[arg-type]
        deny(address)
        raise AssertionError("unreachable")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(urllib.request, "urlopen", deny)
    monkeypatch.setattr(torch.hub, "download_url_to_file", deny)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", deny)
    return attempts


def test_imagenet_offline_raises_without_trying_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            no_network: list[str]) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for arch in ("fcdd-vgg11", "hsc-resnet50"):
        with pytest.raises(ModelError, match="unavailable offline") as e:
            build_model(arch, pretrained="imagenet")
        assert "--pretrained none" in str(e.value)
    assert no_network == []
    assert list(tmp_path.rglob("*")) == []  # nothing downloaded, not even a partial file


@pytest.mark.slow  # imports all of torchvision (~2 s)
def test_imagenet_weights_load_from_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              no_network: list[str]) -> None:
    from torchvision import models as tvm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(7)
    full = tvm.resnet18(weights=None).state_dict()  # what torchvision's download would contain
    path = hub_weights_path(BACKBONES["resnet18"].weights)
    assert path == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(full, path)
    model = build_model("fcdd-resnet18", pretrained="imagenet")
    own = model.backbone.state_dict()
    assert all(torch.equal(v, full[k]) for k, v in own.items())
    assert no_network == []


def test_local_backbone_weights_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    src = build_model("fcdd-vgg11")
    path = tmp_path / "trunk.pth"
    torch.save(src.backbone.state_dict(), path)
    torch.manual_seed(2)
    model = build_model("hsc-vgg11", pretrained=str(path))
    assert model.pretrained == str(path)
    for k, v in src.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    assert build_model("fcdd-vgg11", pretrained=path).backbone.state_dict().keys() == src.backbone.state_dict().keys()


def test_wrong_weights_files_raise_model_error(tmp_path: Path) -> None:
    torch.manual_seed(0)
    r18 = tmp_path / "r18.pth"
    torch.save(build_model("fcdd-resnet18").backbone.state_dict(), r18)
    with pytest.raises(ModelError, match="missing"):
        build_model("fcdd-vgg11", pretrained=str(r18))
    with pytest.raises(ModelError, match="missing|shape"):
        build_model("fcdd-resnet50", pretrained=str(r18))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read"):
        build_model("fcdd-resnet18", pretrained=str(garbage))
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"w": torch.zeros(1), "obj": _Unsafe()}, unsafe)
    with pytest.raises(ModelError, match="cannot read"):
        build_model("fcdd-resnet18", pretrained=str(unsafe))
    not_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_dict)
    with pytest.raises(ModelError, match="not a state_dict"):
        build_model("fcdd-resnet18", pretrained=str(not_dict))
    with pytest.raises(ModelError, match="none, imagenet|'none', 'imagenet'"):
        build_model("fcdd-resnet18", pretrained=str(tmp_path / "missing.pth"))


class _Unsafe:
    """A pickled arbitrary object: weights_only loading must refuse it."""
