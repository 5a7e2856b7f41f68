"""Objectives: hand-computed scores and losses of every objective's net (FCDD, HSC, Deep SVDD, Deep SAD), all-anomaly
batches, finite gradients near s = 0, Deep SVDD's centre and its bias-free network, and feature matching's refusal."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from core.errors import ModelError
from core.models import build_model
from core.models.base import OneClassNet
from core.models.objectives import EPS, SAD_EPS, one_class_loss, sad_loss, svdd_loss
from core.models.svdd import C_MIN, DeepSADNet, DeepSVDDNet, centre_of

torch.set_num_threads(1)

S1_ANOMALY = -math.log(1 - math.exp(-1) + EPS)  # loss of an anomaly with s = 1: 0.45867514...


@pytest.fixture(scope="module")
def nets() -> dict[str, OneClassNet]:
    torch.manual_seed(0)
    return {a: build_model(f"{a}-resnet18").eval()
            for a in ("fcdd", "hsc", "deep-svdd", "deep-sad", "patchcore")}


def phi_const(value: float, n: int = 1, hw: tuple[int, int] = (3, 4)) -> torch.Tensor:
    return torch.full((n, 1, *hw), value, dtype=torch.float64)


def vec(*rows: list[float], dim: int = 128) -> torch.Tensor:
    """Vectors z of the registered length (128), the given leading coordinates and zeros after them."""
    out = torch.zeros(len(rows), dim, dtype=torch.float64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.float64)
    return out


# --- FCDD ----------------------------------------------------------------------------------------------------------

def test_fcdd_score_of_zero_map_is_zero(nets) -> None:
    assert nets["fcdd"].image_score(phi_const(0.0)).tolist() == [0.0]


def test_fcdd_score_is_mean_pseudo_huber(nets) -> None:
    # A = sqrt(phi^2 + 1) - 1: phi = 0, sqrt(3), sqrt(8), 0 -> A = 0, 1, 2, 0 -> mean 0.75
    phi = torch.tensor([[[[0.0, math.sqrt(3)], [math.sqrt(8), 0.0]]]], dtype=torch.float64)
    assert nets["fcdd"].image_score(phi).item() == pytest.approx(0.75, abs=1e-12)


def test_fcdd_loss_known_values(nets) -> None:
    net = nets["fcdd"]
    phi = phi_const(math.sqrt(3), n=2)  # s = 1 for both samples
    assert net.loss(phi, torch.tensor([0, 0])).item() == pytest.approx(1.0, abs=1e-12)
    assert net.loss(phi, torch.tensor([1, 1])).item() == pytest.approx(S1_ANOMALY, abs=1e-12)
    assert net.loss(phi, torch.tensor([0, 1])).item() == pytest.approx((1.0 + S1_ANOMALY) / 2, abs=1e-12)
    assert S1_ANOMALY == pytest.approx(0.4586751453870819)


def test_all_anomaly_batch_is_trained_as_anomalies(nets) -> None:
    # the reference code would fall back to the nominal loss (mean s = 1 here) for a one-label batch
    phi = phi_const(math.sqrt(3), n=3)
    loss = nets["fcdd"].loss(phi, torch.ones(3))
    assert loss.item() == pytest.approx(S1_ANOMALY, abs=1e-12)
    assert loss.item() != pytest.approx(1.0)


def test_anomaly_at_zero_score_has_the_eps_bounded_loss(nets) -> None:
    loss = nets["fcdd"].loss(phi_const(0.0), torch.ones(1))
    assert loss.item() == pytest.approx(-math.log(EPS), rel=1e-9)  # 20.72..., finite


def test_labels_may_be_bool_or_float(nets) -> None:
    phi = phi_const(math.sqrt(3), n=2)
    a = nets["fcdd"].loss(phi, torch.tensor([False, True]))
    b = nets["fcdd"].loss(phi, torch.tensor([0.0, 1.0]))
    assert a.item() == b.item() == pytest.approx((1.0 + S1_ANOMALY) / 2, abs=1e-12)


# --- HSC -----------------------------------------------------------------------------------------------------------

def test_hsc_score_and_loss_known_values(nets) -> None:
    net = nets["hsc"]
    z = vec([3.0, 4.0], [0.0, 0.0])
    s = net.image_score(z)
    assert s.tolist() == pytest.approx([math.sqrt(26) - 1, 0.0], abs=1e-12)
    expected = (-math.log(1 - math.exp(-(math.sqrt(26) - 1)) + EPS) + 0.0) / 2  # anomaly z1, normal z2
    assert net.loss(z, torch.tensor([1, 0])).item() == pytest.approx(expected, abs=1e-12)
    assert net.loss(z, torch.tensor([0, 0])).item() == pytest.approx((math.sqrt(26) - 1) / 2, abs=1e-12)


def test_small_scores_keep_precision_in_float32(nets) -> None:
    # naive sqrt(q+1)-1 gives exactly 0 in float32 for q = 1e-8; the true value is 5e-9
    z = vec([1e-4]).float()
    assert nets["hsc"].image_score(z).item() == pytest.approx(5e-9, rel=1e-4)


@pytest.mark.parametrize("value", [0.0, 1e-6, 1e-3])
def test_gradients_finite_near_zero_for_anomalies(nets, value: float) -> None:
    for net, out in ((nets["fcdd"], torch.full((2, 1, 4, 4), value)), (nets["hsc"], torch.full((2, 128), value))):
        out.requires_grad_(True)
        loss = net.loss(out, torch.ones(2))
        (grad,) = torch.autograd.grad(loss, out)
        assert torch.isfinite(loss) and torch.all(torch.isfinite(grad))
        if value > 0:  # anomalies are pushed away from 0
            assert torch.all(grad < 0)


def test_normal_gradient_pulls_towards_zero(nets) -> None:
    out = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)
    (grad,) = torch.autograd.grad(nets["fcdd"].loss(out, torch.zeros(1)), out)
    assert torch.all(grad > 0)


def test_wrong_shapes_raise(nets) -> None:
    with pytest.raises(ModelError):
        one_class_loss(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ModelError):
        nets["fcdd"].image_score(torch.zeros(2, 8))
    for name in ("hsc", "deep-svdd", "deep-sad"):
        with pytest.raises(ModelError):
            nets[name].image_score(torch.zeros(2, 1, 3, 3))
        with pytest.raises(ModelError):
            nets[name].loss(torch.zeros(2, 128), torch.zeros(3))


@pytest.mark.parametrize("name", ["fcdd", "hsc", "deep-svdd", "deep-sad"])
def test_the_loss_is_the_objective_of_the_nets_own_score(nets, name: str) -> None:
    net = nets[name]
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 48))
    y = torch.tensor([0.0, 1.0])
    pure = {"fcdd": lambda s: one_class_loss(s, y), "hsc": lambda s: one_class_loss(s, y),
            "deep-svdd": lambda s: svdd_loss(s, y), "deep-sad": lambda s: sad_loss(s, y)}[name]
    torch.testing.assert_close(net.loss(out, y), pure(net.image_score(out)))


# --- Deep SVDD / Deep SAD ------------------------------------------------------------------------------------------

def test_centre_pushes_small_coordinates_to_plus_minus_c_min() -> None:
    z = torch.tensor([[0.5, 0.05, -0.02, 0.0, -0.3], [0.3, 0.01, -0.04, 0.0, -0.5]])
    # mean 0.4, 0.03, -0.03, 0, -0.4 -> 0.4, +0.1, -0.1, +0.1, -0.4
    torch.testing.assert_close(centre_of(z), torch.tensor([0.4, C_MIN, -C_MIN, C_MIN, -0.4]))
    with pytest.raises(ModelError):
        centre_of(torch.zeros(0, 5))


def test_svdd_score_is_squared_distance_to_the_centre() -> None:
    net = build_model("deep-svdd-resnet18")
    assert isinstance(net, DeepSVDDNet)
    net.c.copy_(vec([1.0, -1.0])[0].float())
    z = vec([1.0, -1.0], [4.0, 3.0], [0.0, 0.0])  # d² = 0, 9 + 16, 1 + 1
    assert net.image_score(z).tolist() == pytest.approx([0.0, 25.0, 2.0], abs=1e-12)


def test_svdd_loss_known_values_uses_normal_samples_only(nets) -> None:
    d2 = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64)
    assert svdd_loss(d2, torch.tensor([0, 1, 0])).item() == pytest.approx(5.0)  # (1 + 9) / 2
    assert svdd_loss(d2, torch.zeros(3)).item() == pytest.approx(14 / 3)
    d2.requires_grad_(True)
    loss = svdd_loss(d2, torch.ones(3))  # no normal sample: nothing to learn, no push
    (grad,) = torch.autograd.grad(loss, d2)
    assert loss.item() == 0.0 and torch.all(grad == 0)
    net = nets["deep-svdd"]
    z = vec([3.0, 4.0], [1.0, 0.0])  # c = 0 (not started): d² = 25, 1
    assert net.loss(z, torch.tensor([0, 1])).item() == pytest.approx(25.0)
    assert not net.learns_from_anomalies


def test_sad_loss_known_values_and_eta(nets) -> None:
    d2 = torch.tensor([1.0, 4.0], dtype=torch.float64)
    y = torch.tensor([0, 1])
    assert sad_loss(d2, y).item() == pytest.approx((1 + 1 / (4 + SAD_EPS)) / 2, abs=1e-12)  # 0.625
    assert sad_loss(d2, y, eta=2.0).item() == pytest.approx((1 + 2 / (4 + SAD_EPS)) / 2, abs=1e-12)  # 0.75
    assert sad_loss(torch.zeros(1, dtype=torch.float64), torch.ones(1)).item() == pytest.approx(1 / SAD_EPS)
    d2.requires_grad_(True)
    (grad,) = torch.autograd.grad(sad_loss(d2, y), d2)
    assert grad[0] > 0 and grad[1] < 0  # the normal sample pulled in, the anomaly pushed away
    net = nets["deep-sad"]
    z = vec([3.0, 4.0], [2.0, 0.0])  # c = 0: d² = 25 (normal), 4 (anomaly)
    assert net.loss(z, y).item() == pytest.approx((25 + 1 / (4 + SAD_EPS)) / 2, rel=1e-9)
    assert net.learns_from_anomalies


def test_deep_sad_eta_is_an_option_of_its_builder() -> None:
    net = build_model("deep-sad-resnet18", eta=3.0)
    assert isinstance(net, DeepSADNet) and net.eta == 3.0
    with pytest.raises(ModelError, match="positive"):
        build_model("deep-sad-resnet18", eta=0.0)
    with pytest.raises(ModelError, match="no option 'eta'"):
        build_model("deep-svdd-resnet18", eta=1.0)


def test_start_training_sets_the_centre_from_the_initial_outputs() -> None:
    torch.manual_seed(1)
    net = build_model("deep-svdd-resnet18").eval()
    x = torch.randn(40, 3, 32, 32)  # more than one chunk of the centre's forward
    with torch.no_grad():
        expected = centre_of(net(x))
    assert torch.all(net.c == 0)
    net.start_training(x)
    torch.testing.assert_close(net.c, expected)
    assert torch.all(net.c.abs() >= C_MIN)
    assert "c" in net.state_dict()
    fcdd = build_model("fcdd-resnet18")  # the default hook changes nothing
    before = {k: v.clone() for k, v in fcdd.state_dict().items()}
    fcdd.start_training(x[:2])
    assert all(torch.equal(before[k], v) for k, v in fcdd.state_dict().items())


@pytest.mark.parametrize("arch", ["deep-svdd-vgg11", "deep-sad-resnet18"])
def test_svdd_network_has_no_trained_bias_terms(arch: str) -> None:
    torch.manual_seed(2)
    net = build_model(arch).train()
    assert net.head.bias is None
    fixed = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert fixed == {f"backbone.{n}" for n in _offset_names(net.backbone)}
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    x = torch.randn(4, 3, 32, 32)
    net.start_training(x)
    loss = net.loss(net(x), torch.tensor([0, 0, 1, 1]))
    loss.backward()
    opt.step()
    after = dict(net.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in fixed)
    assert not torch.equal(before["head.weight"], after["head.weight"])


def _offset_names(trunk: torch.nn.Module) -> set[str]:
    """Names of the trunk's bias and batch-norm affine parameters."""
    out = {f"{mn}.{pn}" for mn, m in trunk.named_modules() for pn, _ in m.named_parameters(recurse=False)
           if pn == "bias" or isinstance(m, torch.nn.BatchNorm2d)}
    assert out  # the trunk has some
    return out


# --- feature matching, and the house rule ---------------------------------------------------------------------------

def test_feature_matching_refuses_a_loss(nets) -> None:
    net = nets["patchcore"]
    assert not net.trained_by_gradient
    with pytest.raises(ModelError, match="no training loss.*--normal"):
        net.loss(torch.zeros(2, 1, 4, 4), torch.zeros(2))


def test_no_objective_name_switches_in_the_code() -> None:
    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"objective\s*(==|!=|in\s*[(\[{])|objective_for|_OBJECTIVES\b|FAMILIES\b")
    files = [p for d in ("core", "ui", "pages", "benchmarks") for p in (root / d).rglob("*.py")]
    hits = [f"{p.relative_to(root)}:{i}" for p in files
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []
