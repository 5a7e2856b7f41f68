"""Objectives: hand-computed scores and losses, all-anomaly batches, finite gradients near s = 0."""

from __future__ import annotations

import math

import pytest
import torch

from core.errors import ModelError
from core.learn.losses import EPS, FCDDObjective, HSCObjective, Objective, objective_for, one_class_loss
from core.models import build_model

torch.set_num_threads(1)

S1_ANOMALY = -math.log(1 - math.exp(-1) + EPS)  # loss of an anomaly with s = 1: 0.45867514...


def phi_const(value: float, n: int = 1, hw: tuple[int, int] = (3, 4)) -> torch.Tensor:
    return torch.full((n, 1, *hw), value, dtype=torch.float64)


def test_fcdd_score_of_zero_map_is_zero() -> None:
    assert FCDDObjective().score(phi_const(0.0)).tolist() == [0.0]


def test_fcdd_score_is_mean_pseudo_huber() -> None:
    # A = sqrt(phi^2 + 1) - 1: phi = 0, sqrt(3), sqrt(8), 0 -> A = 0, 1, 2, 0 -> mean 0.75
    phi = torch.tensor([[[[0.0, math.sqrt(3)], [math.sqrt(8), 0.0]]]], dtype=torch.float64)
    assert FCDDObjective().score(phi).item() == pytest.approx(0.75, abs=1e-12)


def test_fcdd_loss_known_values() -> None:
    obj = FCDDObjective()
    phi = phi_const(math.sqrt(3), n=2)  # s = 1 for both samples
    assert obj.loss(phi, torch.tensor([0, 0])).item() == pytest.approx(1.0, abs=1e-12)
    assert obj.loss(phi, torch.tensor([1, 1])).item() == pytest.approx(S1_ANOMALY, abs=1e-12)
    assert obj.loss(phi, torch.tensor([0, 1])).item() == pytest.approx((1.0 + S1_ANOMALY) / 2, abs=1e-12)
    assert S1_ANOMALY == pytest.approx(0.4586751453870819)


def test_all_anomaly_batch_is_trained_as_anomalies() -> None:
    # the reference code would fall back to the nominal loss (mean s = 1 here) for a one-label batch
    phi = phi_const(math.sqrt(3), n=3)
    loss = FCDDObjective().loss(phi, torch.ones(3))
    assert loss.item() == pytest.approx(S1_ANOMALY, abs=1e-12)
    assert loss.item() != pytest.approx(1.0)


def test_anomaly_at_zero_score_has_the_eps_bounded_loss() -> None:
    loss = FCDDObjective().loss(phi_const(0.0), torch.ones(1))
    assert loss.item() == pytest.approx(-math.log(EPS), rel=1e-9)  # 20.72..., finite


def test_labels_may_be_bool_or_float() -> None:
    phi = phi_const(math.sqrt(3), n=2)
    obj = FCDDObjective()
    a = obj.loss(phi, torch.tensor([False, True]))
    b = obj.loss(phi, torch.tensor([0.0, 1.0]))
    assert a.item() == b.item() == pytest.approx((1.0 + S1_ANOMALY) / 2, abs=1e-12)


def test_hsc_score_and_loss_known_values() -> None:
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    obj = HSCObjective()
    s = obj.score(z)
    assert s.tolist() == pytest.approx([math.sqrt(26) - 1, 0.0], abs=1e-12)
    expected = (-math.log(1 - math.exp(-(math.sqrt(26) - 1)) + EPS) + 0.0) / 2  # anomaly z1, normal z2
    assert obj.loss(z, torch.tensor([1, 0])).item() == pytest.approx(expected, abs=1e-12)
    assert obj.loss(z, torch.tensor([0, 0])).item() == pytest.approx((math.sqrt(26) - 1) / 2, abs=1e-12)


def test_small_scores_keep_precision_in_float32() -> None:
    # naive sqrt(q+1)-1 gives exactly 0 in float32 for q = 1e-8; the true value is 5e-9
    z = torch.tensor([[1e-4]], dtype=torch.float32)
    assert HSCObjective().score(z).item() == pytest.approx(5e-9, rel=1e-4)


@pytest.mark.parametrize("value", [0.0, 1e-6, 1e-3])
def test_gradients_finite_near_zero_for_anomalies(value: float) -> None:
    for obj, out in ((FCDDObjective(), torch.full((2, 1, 4, 4), value)), (HSCObjective(), torch.full((2, 8), value))):
        out.requires_grad_(True)
        loss = obj.loss(out, torch.ones(2))
        (grad,) = torch.autograd.grad(loss, out)
        assert torch.isfinite(loss) and torch.all(torch.isfinite(grad))
        if value > 0:  # anomalies are pushed away from 0
            assert torch.all(grad < 0)


def test_normal_gradient_pulls_towards_zero() -> None:
    out = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)
    (grad,) = torch.autograd.grad(FCDDObjective().loss(out, torch.zeros(1)), out)
    assert torch.all(grad > 0)


def test_label_shape_mismatch_raises() -> None:
    with pytest.raises(ModelError):
        one_class_loss(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ModelError):
        FCDDObjective().score(torch.zeros(2, 8))
    with pytest.raises(ModelError):
        HSCObjective().score(torch.zeros(2, 1, 3, 3))


@pytest.mark.parametrize("arch,cls", [("fcdd-resnet18", FCDDObjective), ("hsc-resnet18", HSCObjective)])
def test_objective_for_model_agrees_with_model_scores(arch: str, cls: type) -> None:
    torch.manual_seed(0)
    model = build_model(arch).eval()
    obj = objective_for(model)
    assert isinstance(obj, cls) and isinstance(obj, Objective) and obj.name == model.objective
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 48))
    torch.testing.assert_close(obj.score(out), model.image_score(out))


def test_objective_for_unknown_objective_raises() -> None:
    model = build_model("fcdd-resnet18")
    model.objective = "svdd"
    with pytest.raises(ModelError, match="known objectives"):
        objective_for(model)
