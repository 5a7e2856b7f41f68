"""HSC: a trunk + global average pooling + linear head to a vector z (hypersphere classifier).

Ruff et al., "Rethinking Assumptions in Deep Anomaly Detection" (2020): ``h(z) = sqrt(‖z‖² + 1) − 1`` is the
anomaly score. HSC has no spatial output, so its heatmaps are gradient saliency as in the FCDD paper's HSC
baseline: ``|∂ score / ∂ x|`` summed over colour channels, then Gaussian-blurred.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.models.backbones import Trunk
from core.models.base import OneClassNet, pseudo_huber
from core.models.upsample import gaussian_blur

#: Default length of z.
HSC_DIM = 128


class HSCNet(OneClassNet):
    """Trunk (stride 8) + global average pooling + bias-free linear layer to ``dim`` outputs."""

    objective = "hsc"
    heatmap_needs_grad = True

    def __init__(self, arch: str, backbone_name: str, backbone: Trunk, rf_layers: list[nn.Module],
                 channels: int, pretrained: str = "none", sigma: float | None = None, dim: int = HSC_DIM) -> None:
        # rf is the trunk's last feature map (pooling makes the vector's receptive field the whole image)
        super().__init__(arch, backbone_name, backbone, rf_layers, pretrained, sigma)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, dim, bias=False)  # no bias: it would make a trivial constant solution easier
        self.dim = dim

    @property
    def output_description(self) -> str:
        """What :meth:`forward` returns, for people."""
        return f"vector z (N,{self.dim})"

    def forward(self, x: Tensor) -> Tensor:
        """Vector z, (N,d)."""
        return self.head(self.pool(self.features(x)).flatten(1))

    def anomaly(self, out: Tensor) -> Tensor:
        """h(z) = sqrt(‖z‖² + 1) − 1, (N,)."""
        return pseudo_huber((out * out).sum(1))

    def image_score(self, out: Tensor) -> Tensor:
        """h(z), (N,)."""
        return self.anomaly(out)

    def heatmap(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Blurred ``Σ_c |∂h/∂x_c|`` (N,H,W) float32 ≥ 0, and image scores h(z) (N,).

        Needs autograd even when called under ``torch.inference_mode()``: the gradient is taken with respect to
        a fresh leaf copy of ``x``; parameters get no ``.grad``. In eval mode the samples of a batch are
        independent, so the gradient of the summed scores gives every sample its own saliency.
        """
        with torch.inference_mode(False), torch.enable_grad():
            leaf = x.detach().clone().requires_grad_(True)
            scores = self.anomaly(self(leaf).float())  # float32 even when the trunk ran under autocast
            (grad,) = torch.autograd.grad(scores.sum(), leaf)
        sal = grad.detach().abs().sum(1, keepdim=True).float()
        maps = gaussian_blur(sal, self.sigma)
        return maps[:, 0].contiguous(), scores.detach().float()
