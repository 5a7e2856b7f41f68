"""Vector heads: a trunk + global average pooling + bias-free linear layer to z, explained by gradient saliency.

The common base of the hypersphere objectives (HSC, Deep SVDD, Deep SAD). They have no spatial output, so their
heatmaps are gradient saliency as in the FCDD paper's HSC baseline: ``|∂ score / ∂ x|`` summed over colour channels,
then Gaussian-blurred.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.errors import ModelError
from core.models.backbones import Trunk
from core.models.base import OneClassNet
from core.models.upsample import gaussian_blur

#: Default length of z.
VECTOR_DIM = 128


class VectorNet(OneClassNet):
    """Trunk (stride 8) + global average pooling + bias-free linear layer to ``dim`` outputs; saliency heatmaps."""

    heatmap_needs_grad = True

    def __init__(self, arch: str, backbone_name: str, backbone: Trunk, rf_layers: list[nn.Module],
                 channels: int, pretrained: str = "none", sigma: float | None = None, dim: int = VECTOR_DIM) -> None:
        # rf is the trunk's last feature map (pooling makes the vector's receptive field the whole image)
        super().__init__(arch, backbone_name, backbone, rf_layers, pretrained, sigma)
        self.pool = nn.AdaptiveAvgPool2d(1)
        # no bias: a constant output would make the trivial solution (every input at the centre) easy
        self.head = nn.Linear(channels, dim, bias=False)
        self.dim = dim

    @property
    def output_description(self) -> str:
        """What :meth:`forward` returns, for people."""
        return f"vector z (N,{self.dim})"

    def forward(self, x: Tensor) -> Tensor:
        """Vector z, (N,d)."""
        z: Tensor = self.head(self.pool(self.features(x)).flatten(1))
        return z

    def _check_output(self, out: Tensor) -> None:
        if out.dim() != 2 or out.size(1) != self.dim:
            raise ModelError(f"{self.arch} output must be an (N, {self.dim}) vector batch, got {tuple(out.shape)}")

    def image_score(self, out: Tensor) -> Tensor:
        """The anomaly of z, (N,)."""
        return self.anomaly(out)

    def heatmap(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Blurred ``Σ_c |∂ score/∂x_c|`` (N,H,W) float32 ≥ 0, and image scores (N,).

        Needs autograd even when called under ``torch.inference_mode()``: the gradient is taken with respect to
        a fresh leaf copy of ``x``; parameters get no ``.grad``. In eval mode the samples of a batch are
        independent, so the gradient of the summed scores gives every sample its own saliency.
        """
        with torch.inference_mode(False), torch.enable_grad():
            leaf = x.detach().clone().requires_grad_(True)
            scores = self.image_score(self(leaf).float())  # float32 even when the trunk ran under autocast
            (grad,) = torch.autograd.grad(scores.sum(), leaf)
        sal = grad.detach().abs().sum(1, keepdim=True).float()
        maps = gaussian_blur(sal, self.sigma)
        return maps[:, 0].contiguous(), scores.detach().float()
