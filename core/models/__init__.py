"""Networks for one-class anomaly detection over truncated torchvision trunks: FCDD, HSC, Deep SVDD, Deep SAD and
feature matching (PatchCore), one class per objective with its own score, loss and heatmap.

``build_model(arch, pretrained)`` is the factory; ``list_archs()`` / ``arch_info(arch)`` describe what exists.
Every model is a :class:`OneClassNet` with a receptive field ``rf`` and a heatmap σ ``sigma``.
"""

from core.models.base import IMAGENET_MEAN, IMAGENET_STD, OneClassNet, pseudo_huber
from core.models.receptive import ReceptiveField, output_shape, receptive_field
from core.models.registry import arch_info, build_model, list_archs
from core.models.upsample import gaussian_blur, gaussian_kernel, gaussian_upsample

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "OneClassNet", "ReceptiveField", "arch_info", "build_model",
    "gaussian_blur", "gaussian_kernel", "gaussian_upsample", "list_archs", "output_shape", "pseudo_huber",
    "receptive_field",
]
