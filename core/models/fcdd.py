"""FCDD: a fully convolutional trunk + 1×1 conv to one channel; the map itself is the explanation.

Liznerski et al., "Explainable Deep One-Class Classification", ICLR 2021. φ(X) is an (N,1,h,w) map,
``A = sqrt(φ² + 1) − 1`` its pixel-wise anomaly, the image score is the mean of A, and the full-resolution heatmap
is A upsampled with the receptive-field Gaussian (:func:`core.models.upsample.gaussian_upsample`). The loss is the
one-class loss of the FCDD paper on the image score (:func:`core.models.objectives.one_class_loss`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.errors import ModelError
from core.models.backbones import Trunk
from core.models.base import OneClassNet, pseudo_huber
from core.models.objectives import one_class_loss
from core.models.upsample import gaussian_upsample


class FCDDNet(OneClassNet):
    """Trunk (stride 8) + bias-free 1×1 conv to one channel."""

    objective = "fcdd"
    family = "FCDD"
    tile_invariant = True  # local maps, image score = mean of the map

    def __init__(self, arch: str, backbone_name: str, backbone: Trunk, rf_layers: list[nn.Module],
                 channels: int, pretrained: str = "none", sigma: float | None = None) -> None:
        # the 1×1 head does not change the receptive field, so rf is the trunk's
        super().__init__(arch, backbone_name, backbone, rf_layers, pretrained, sigma)
        # no bias: a constant output would let the network map everything to the same φ (hypersphere collapse)
        self.head = nn.Conv2d(channels, 1, kernel_size=1, bias=False)

    @property
    def output_description(self) -> str:
        """What :meth:`forward` returns, for people."""
        return "map φ (N,1,h,w)"

    def forward(self, x: Tensor) -> Tensor:
        """Raw map φ, (N,1,h,w)."""
        return self.head(self.features(x))

    def anomaly(self, out: Tensor) -> Tensor:
        """A = sqrt(φ² + 1) − 1, (N,1,h,w)."""
        return pseudo_huber(out * out)

    def image_score(self, out: Tensor) -> Tensor:
        """Mean of A over the map, (N,)."""
        if out.dim() != 4 or out.size(1) != 1:
            raise ModelError(f"FCDD output must be an (N, 1, h, w) map, got {tuple(out.shape)}")
        return self.anomaly(out).flatten(1).mean(1)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """FCDD loss (Eq. 2 of the paper) of the batch: :func:`one_class_loss` of the image scores."""
        return one_class_loss(self.image_score(out), y)

    def heatmap(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Gaussian-upsampled A at the input's exact H×W (N,H,W) float32, and image scores (N,)."""
        with torch.no_grad():
            a = self.anomaly(self(x).float())  # float32 even when the trunk ran under autocast
            maps = gaussian_upsample(a, self.rf, (x.size(2), x.size(3)), self.sigma)
            scores = a.flatten(1).mean(1)
        return maps[:, 0].contiguous(), scores
