"""One-class / outlier-exposure objectives: one class per objective, chosen once by :func:`objective_for`.

Both use the pseudo-Huber anomaly score ``s`` of a sample and the same loss (FCDD paper, Eq. 2; HSC, Ruff et al.)::

    loss = mean over the batch of  (1 − y)·s − y·log(1 − exp(−s) + ε),   y = 1 for (labelled or synthetic)
                                                                         anomalies, ε = 1e-9

Normal samples are pulled to s = 0, anomalies pushed to large s. Unlike the FCDD reference code, a batch made only
of anomalies is trained as anomalies (the reference silently treats it as nominal). ``1 − exp(−s)`` is computed as
``−expm1(−s)``, the same number without cancellation for small s.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from core.errors import ModelError
from core.models.base import OneClassNet, pseudo_huber

EPS = 1e-9


@runtime_checkable
class Objective(Protocol):
    """What a trainer needs from an objective."""

    name: str

    def loss(self, net_out: Tensor, y: Tensor) -> Tensor:
        """Scalar loss of a batch of raw network outputs with labels y (1 = anomaly)."""
        ...

    def score(self, net_out: Tensor) -> Tensor:
        """Per-sample anomaly score s, (N,)."""
        ...


def one_class_loss(s: Tensor, y: Tensor) -> Tensor:
    """``mean((1 − y)·s − y·log(1 − exp(−s) + ε))`` for scores ``s`` (N,) and labels ``y`` (N,), 1 = anomaly."""
    if y.shape != s.shape:
        raise ModelError(f"labels must have one entry per sample: got {tuple(y.shape)} for {s.shape[0]} samples")
    y = y.to(s.dtype)
    anomalous = -torch.log(-torch.expm1(-s) + EPS)
    return ((1 - y) * s + y * anomalous).mean()


class FCDDObjective:
    """FCDD: net_out φ (N,1,h,w); A = sqrt(φ² + 1) − 1; s = mean of A per sample."""

    name = "fcdd"

    def score(self, net_out: Tensor) -> Tensor:
        """Mean pseudo-Huber anomaly of the map, (N,)."""
        if net_out.dim() != 4 or net_out.size(1) != 1:
            raise ModelError(f"FCDD output must be an (N, 1, h, w) map, got {tuple(net_out.shape)}")
        return pseudo_huber(net_out * net_out).flatten(1).mean(1)

    def loss(self, net_out: Tensor, y: Tensor) -> Tensor:
        """Batch loss (scalar)."""
        return one_class_loss(self.score(net_out), y)


class HSCObjective:
    """HSC: net_out z (N,d); s = sqrt(‖z‖² + 1) − 1."""

    name = "hsc"

    def score(self, net_out: Tensor) -> Tensor:
        """Pseudo-Huber norm of z, (N,)."""
        if net_out.dim() != 2:
            raise ModelError(f"HSC output must be an (N, d) vector batch, got {tuple(net_out.shape)}")
        return pseudo_huber((net_out * net_out).sum(1))

    def loss(self, net_out: Tensor, y: Tensor) -> Tensor:
        """Batch loss (scalar)."""
        return one_class_loss(self.score(net_out), y)


_OBJECTIVES: dict[str, type[FCDDObjective] | type[HSCObjective]] = {"fcdd": FCDDObjective, "hsc": HSCObjective}


def objective_for(model: OneClassNet) -> Objective:
    """The objective that trains ``model`` (by its ``objective`` attribute)."""
    cls = _OBJECTIVES.get(getattr(model, "objective", ""))
    if cls is None:
        raise ModelError(f"model {getattr(model, 'arch', type(model).__name__)!r} has objective "
                         f"{getattr(model, 'objective', None)!r}; known objectives: {', '.join(_OBJECTIVES)}")
    return cls()
