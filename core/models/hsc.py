"""HSC: a trunk + global average pooling + linear head to a vector z (hypersphere classifier).

Ruff et al., "Rethinking Assumptions in Deep Anomaly Detection" (2020): ``h(z) = sqrt(‖z‖² + 1) − 1`` is the
anomaly score, trained with the one-class loss of the FCDD paper (:func:`core.models.objectives.one_class_loss`).
Heatmaps are gradient saliency (:class:`core.models.vector.VectorNet`).
"""

from __future__ import annotations

from torch import Tensor

from core.models.base import pseudo_huber
from core.models.objectives import one_class_loss
from core.models.vector import VECTOR_DIM, VectorNet

#: Default length of z.
HSC_DIM = VECTOR_DIM


class HSCNet(VectorNet):
    """Trunk (stride 8) + global average pooling + bias-free linear layer to ``dim`` outputs; score h(z)."""

    objective = "hsc"
    family = "HSC"

    def anomaly(self, out: Tensor) -> Tensor:
        """h(z) = sqrt(‖z‖² + 1) − 1, (N,)."""
        self._check_output(out)
        return pseudo_huber((out * out).sum(1))

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """HSC loss of the batch: :func:`one_class_loss` of h(z)."""
        return one_class_loss(self.image_score(out), y)
