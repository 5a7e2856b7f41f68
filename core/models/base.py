"""The common face of every registered one-class network (FCDD, HSC, Deep SVDD, Deep SAD, feature matching), and
their shared math."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from core.errors import ModelError
from core.i18n import _
from core.models.backbones import Trunk
from core.models.receptive import ReceptiveField, output_shape, receptive_field

#: torchvision ImageNet statistics; models expect inputs normalised with them (the model does not normalise).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def pseudo_huber(sq: Tensor) -> Tensor:
    """``sqrt(q + 1) − 1`` for a squared magnitude ``q`` ≥ 0, computed as ``q / (sqrt(q + 1) + 1)``.

    The two forms are equal; this one keeps full precision (and a clean gradient) near 0, where the naive form
    cancels catastrophically in float32.
    """
    return sq / (torch.sqrt(sq + 1) + 1)


def default_sigma(rf: ReceptiveField) -> float:
    """Heatmap Gaussian σ for receptive field ``rf``: ``r/6`` clipped to the FCDD paper's 8–12 px range.

    ``r/6`` puts the receptive window at ±3σ, so the r×r kernel holds essentially the whole Gaussian; at the
    reference r = 62 this gives σ ≈ 10.3, next to the reference code's default of 10 for 224-px ImageNet-size
    inputs. Deeper trunks (r ≈ 83–92 here) would get σ ≈ 14–15, but the *effective* receptive field of a deep
    CNN grows much more slowly than its theoretical size (Luo et al., NeurIPS 2016), so σ is capped at 12, the top
    of the paper's range.
    """
    return float(min(max(rf.r / 6.0, 8.0), 12.0))


class OneClassNet(nn.Module, ABC):
    """Base of every registered model: a trunk (stride ``rf.j``) plus an objective-specific head.

    One subclass per objective; each computes its own score (:meth:`image_score`) and loss (:meth:`loss`), so a
    trainer only calls the net. Inputs are (N,3,H,W) float tensors normalised with :data:`IMAGENET_MEAN` /
    :data:`IMAGENET_STD`.
    """

    arch: str
    #: Short name of the objective (recorded in checkpoints and reports; never used to choose behaviour).
    objective: str
    #: The family people know the model by ("FCDD", "Deeper FCDD", "HSC", "Deep SVDD", ...); the registry may set a
    #: more precise one per architecture.
    family: str
    rf: ReceptiveField
    sigma: float
    #: False for models fitted without gradients (feature matching): training builds their memory bank instead.
    trained_by_gradient: bool = True
    #: True when :meth:`heatmap` takes gradients (saliency), so it cannot run under ``torch.inference_mode``.
    heatmap_needs_grad: bool = False
    #: False for objectives that learn from normal samples only (Deep SVDD): the trainer then draws no anomalies.
    learns_from_anomalies: bool = True
    #: The optimizer of the objective's paper, used when training asks for "auto": FCDD/HSC's SGD; Deep SVDD/SAD's
    #: Adam (their squared-distance loss has unbounded gradients, which SGD's fixed step turns into divergence on
    #: large pretrained features).
    paper_optimizer: ClassVar[str] = "sgd"
    #: How many normal inputs :meth:`start_training` wants (0: it needs none, and gets an empty batch).
    start_samples: ClassVar[int] = 0
    #: Keyword options of the objective a builder may pass (e.g. Deep SAD's ``eta``); anything else is refused.
    options: ClassVar[tuple[str, ...]] = ()
    #: True when a pixel's heatmap value and the mean-based image score do not depend on the tile it is analysed
    #: in (beyond the receptive field): the scene pipeline may then use the fewest, largest tiles memory allows.
    #: False for saliency (HSC: gradients of a pooled score). PatchCore's maps are local too (its top-1 % image
    #: score then spans a large tile rather than a 512-px one).
    tile_invariant: bool = False

    def __init__(self, arch: str, backbone_name: str, backbone: Trunk, rf_layers: list[nn.Module],
                 pretrained: str = "none", sigma: float | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.backbone_name = backbone_name
        self.pretrained = str(pretrained)
        self.backbone = backbone
        self._rf_layers = rf_layers  # plain list: not registered twice as submodules
        self.rf = receptive_field(rf_layers)
        self.sigma = default_sigma(self.rf) if sigma is None else float(sigma)
        self.input_mean = IMAGENET_MEAN
        self.input_std = IMAGENET_STD

    @classmethod
    def from_trunk(cls, arch: str, backbone_name: str, trunk: Trunk, pretrained: str = "none",
                   **options: Any) -> OneClassNet:
        """Build this objective's net over ``trunk`` (its head sized to the trunk's output channels)."""
        make: Any = cls  # subclasses add the head's size (and their options) to the base's signature
        return make(arch, backbone_name, trunk, trunk.layers(), trunk.out_channels, pretrained=pretrained, **options)

    # --- shapes -------------------------------------------------------------------------------------------------
    def map_shape(self, hw: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the feature / FCDD map for an input of ``hw`` = (H, W) pixels (0 when too small)."""
        return output_shape(self._rf_layers, hw)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.size(1) != 3:
            raise ModelError(f"{self.arch} expects images shaped (N, 3, H, W), got {tuple(x.shape)}")
        h, w = self.map_shape((x.size(2), x.size(3)))
        if h < 1 or w < 1:
            raise ModelError(_("{arch} cannot analyse a {h}×{w} px input: it is smaller than one map position "
                               "(stride {stride}); use tiles of at least 32×32 px").format(
                                   arch=self.arch, h=x.size(2), w=x.size(3), stride=f"{self.rf.j:g}"))

    # --- the interface ------------------------------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """Trunk feature map before the head, (N,C,h,w) at stride ``rf.j``."""
        self._check_input(x)
        return self.backbone(x)

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """FCDD: raw map φ (N,1,h,w). HSC: vector z (N,d)."""

    @abstractmethod
    def anomaly(self, out: Tensor) -> Tensor:
        """Pseudo-Huber anomaly of the raw output: FCDD (N,1,h,w), HSC (N,)."""

    @abstractmethod
    def image_score(self, out: Tensor) -> Tensor:
        """Image-level anomaly score (N,) from the raw output."""

    @abstractmethod
    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """Scalar training loss of a batch of raw outputs ``out`` with labels ``y`` (N,), 1 = anomaly.

        Models fitted without gradients (``trained_by_gradient`` False) raise :class:`ModelError`.
        """

    def start_training(self, normal: Tensor) -> None:
        """Called by the trainer once, before the first step, with :attr:`start_samples` normal inputs (N,3,H,W) on
        the model's device and in the mode the steps run in; objectives that need a start (Deep SVDD's centre) set it
        here. Default: nothing."""
        del normal

    @abstractmethod
    def heatmap(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Heatmaps (N,H,W) float32 at the input's exact H,W, and image scores (N,).

        Works in eval mode and under ``torch.inference_mode``.
        """
