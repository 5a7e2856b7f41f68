"""Deep SVDD and Deep SAD: a bias-free network maps normal data close to a fixed centre c.

* Deep SVDD (Ruff et al., "Deep One-Class Classification", ICML 2018), the one-class objective: the network has no
  bias terms (a bias would let it map every input to c, the trivial "hypersphere collapse": Prop. 2 of the paper),
  so the linear head is bias-free and the trunk's bias and batch-norm affine parameters are not trained (they keep
  their initial or pretrained values). The centre c is the mean of the *initial* network's outputs on normal data,
  with coordinates nearer 0 than :data:`C_MIN` pushed to ±:data:`C_MIN` (the reference code's guard against a
  trivial c), set once before training (:meth:`DeepSVDDNet.start_training`) and saved in checkpoints as a buffer.
  Score: ``‖z − c‖²``; loss: its mean over the normal samples (:func:`core.models.objectives.svdd_loss`); labelled
  or synthetic anomalies are not used.
* Deep SAD (Ruff et al., "Deep Semi-Supervised Anomaly Detection", ICLR 2020): the same network, centre and score;
  labelled anomalies are pushed away through the inverse squared distance, weighted by η
  (:func:`core.models.objectives.sad_loss`, η = 1 by default as in the paper).

Heatmaps are gradient saliency of the score, as for HSC (:class:`core.models.vector.VectorNet`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.errors import ModelError
from core.i18n import _
from core.models.backbones import Trunk
from core.models.objectives import sad_loss, svdd_loss
from core.models.vector import VECTOR_DIM, VectorNet

#: Coordinates of c nearer 0 than this are pushed to ±C_MIN (Ruff et al.'s reference code).
C_MIN = 0.1
#: Inputs forwarded at once while the centre is computed.
CENTRE_CHUNK = 32


def centre_of(z: Tensor, c_min: float = C_MIN) -> Tensor:
    """Mean of outputs ``z`` (N,d); coordinates nearer 0 than ``c_min`` become ``±c_min`` (their sign; 0 -> +)."""
    if z.dim() != 2 or z.size(0) == 0:
        raise ModelError(f"the centre needs a non-empty (N, d) batch of outputs, got {tuple(z.shape)}")
    c = z.float().mean(0)
    near = c.abs() < c_min
    return torch.where(near, torch.where(c < 0, -c_min, c_min), c)


def _freeze_offsets(trunk: nn.Module) -> None:
    """Never train the trunk's biases or batch-norm affine parameters (Deep SVDD's 'no bias terms')."""
    for m in trunk.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for p in m.parameters(recurse=False):
                p.requires_grad_(False)
        elif isinstance(getattr(m, "bias", None), nn.Parameter):
            m.bias.requires_grad_(False)


class DeepSVDDNet(VectorNet):
    """Bias-free vector net with a centre c (a buffer); score ``‖z − c‖²``, one-class loss over normal samples."""

    objective = "deep-svdd"
    family = "Deep SVDD"
    learns_from_anomalies = False
    paper_optimizer = "adam"  # Ruff et al. train both objectives with Adam
    start_samples = 64  # the centre is the mean output over this many normal training patches

    c: Tensor

    def __init__(self, arch: str, backbone_name: str, backbone: Trunk, rf_layers: list[nn.Module],
                 channels: int, pretrained: str = "none", sigma: float | None = None, dim: int = VECTOR_DIM) -> None:
        super().__init__(arch, backbone_name, backbone, rf_layers, channels, pretrained, sigma, dim)
        _freeze_offsets(self.backbone)
        self.register_buffer("c", torch.zeros(dim))  # set by start_training; saved with the weights

    def anomaly(self, out: Tensor) -> Tensor:
        """Squared distance to the centre ``‖z − c‖²``, (N,)."""
        self._check_output(out)
        return (out - self.c.to(out.dtype)).pow(2).sum(1)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """Deep SVDD's one-class loss: mean ``‖z − c‖²`` of the batch's normal samples (anomalies unused)."""
        return svdd_loss(self.anomaly(out), y)

    def start_training(self, normal: Tensor) -> None:
        """Set c to the mean output of the network as it is now on the normal inputs ``normal`` (N,3,H,W)."""
        with torch.no_grad():
            z = torch.cat([self(chunk).float() for chunk in torch.split(normal, CENTRE_CHUNK)])
        self.c.copy_(centre_of(z))


class DeepSADNet(DeepSVDDNet):
    """Deep SVDD's network, centre and score; labelled anomalies pushed away from c, weighted by ``eta``."""

    objective = "deep-sad"
    family = "Deep SAD"
    learns_from_anomalies = True
    options = ("eta",)

    def __init__(self, arch: str, backbone_name: str, backbone: Trunk, rf_layers: list[nn.Module],
                 channels: int, pretrained: str = "none", sigma: float | None = None, dim: int = VECTOR_DIM,
                 eta: float = 1.0) -> None:
        super().__init__(arch, backbone_name, backbone, rf_layers, channels, pretrained, sigma, dim)
        if not eta > 0:
            raise ModelError(_("Deep SAD's η (weight of the labelled anomalies) must be positive, got {eta}; give "
                               "--eta above 0").format(eta=eta))
        self.eta = float(eta)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """Deep SAD's loss: ``mean((1 − y)·‖z − c‖² + η·y·(‖z − c‖² + ε)^−1)``."""
        return sad_loss(self.anomaly(out), y, self.eta)
