"""Architecture name -> builder. One tiny entry point per name; :func:`build_model` is the only factory.

Names are ``<objective>-<backbone>``: ``fcdd-vgg11`` (the FCDD reference net), ``fcdd-vgg16`` ("Deeper FCDD"),
``fcdd-resnet18`` / ``fcdd-resnet50``, and the same four trunks with an HSC head.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import torch

from core.errors import ModelError
from core.i18n import _
from core.models.backbones import BACKBONES, build_backbone
from core.models.base import OneClassNet
from core.models.fcdd import FCDDNet
from core.models.hsc import HSCNet
from core.models.patchcore import PatchCoreNet
from core.models.pretrained import default_source

Pretrained = str | os.PathLike[str]
_REGISTRY: dict[str, Callable[[Pretrained], OneClassNet]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register(fn: Callable[[Pretrained], OneClassNet]) -> Callable[[Pretrained], OneClassNet]:
    """Register a builder under its function name with ``_`` -> ``-`` (``fcdd_vgg11`` -> ``fcdd-vgg11``).

    The builder's docstring is the architecture's description.
    """
    name = fn.__name__.replace("_", "-")
    _REGISTRY[name] = fn
    _DESCRIPTIONS[name] = " ".join((fn.__doc__ or "").split())
    return fn


def _fcdd(arch: str, backbone: str, pretrained: Pretrained) -> OneClassNet:
    trunk = build_backbone(backbone, pretrained)
    return FCDDNet(arch, backbone, trunk, trunk.layers(), trunk.out_channels, pretrained=str(pretrained))


def _patchcore(arch: str, backbone: str, pretrained: Pretrained) -> OneClassNet:
    trunk = build_backbone(backbone, pretrained)
    return PatchCoreNet(arch, backbone, trunk, trunk.layers(), trunk.stage_channels, pretrained=str(pretrained))


def _hsc(arch: str, backbone: str, pretrained: Pretrained) -> OneClassNet:
    trunk = build_backbone(backbone, pretrained)
    return HSCNet(arch, backbone, trunk, trunk.layers(), trunk.out_channels, pretrained=str(pretrained))


@register
def fcdd_vgg11(pretrained: Pretrained = "none") -> OneClassNet:
    """FCDD reference net (FCDD_CNN224_VGG): VGG11-BN to before the 4th max-pool + 1x1 conv."""
    return _fcdd("fcdd-vgg11", "vgg11", pretrained)


@register
def fcdd_vgg16(pretrained: Pretrained = "none") -> OneClassNet:
    """Deeper FCDD (Yasuno et al. 2023): VGG16-BN to before the 4th max-pool + 1x1 conv."""
    return _fcdd("fcdd-vgg16", "vgg16", pretrained)


@register
def fcdd_resnet18(pretrained: Pretrained = "none") -> OneClassNet:
    """FCDD on ResNet18 stem+layer1+layer2 + 1x1 conv (light, CPU-friendly)."""
    return _fcdd("fcdd-resnet18", "resnet18", pretrained)


@register
def fcdd_resnet50(pretrained: Pretrained = "none") -> OneClassNet:
    """FCDD on ResNet50 stem+layer1+layer2 + 1x1 conv."""
    return _fcdd("fcdd-resnet50", "resnet50", pretrained)


@register
def hsc_vgg11(pretrained: Pretrained = "none") -> OneClassNet:
    """HSC: VGG11-BN trunk + global average pooling + linear head to a 128-d vector."""
    return _hsc("hsc-vgg11", "vgg11", pretrained)


@register
def hsc_vgg16(pretrained: Pretrained = "none") -> OneClassNet:
    """HSC: VGG16-BN trunk + global average pooling + linear head to a 128-d vector."""
    return _hsc("hsc-vgg16", "vgg16", pretrained)


@register
def hsc_resnet18(pretrained: Pretrained = "none") -> OneClassNet:
    """HSC: ResNet18 trunk + global average pooling + linear head to a 128-d vector."""
    return _hsc("hsc-resnet18", "resnet18", pretrained)


@register
def hsc_resnet50(pretrained: Pretrained = "none") -> OneClassNet:
    """HSC: ResNet50 trunk + global average pooling + linear head to a 128-d vector."""
    return _hsc("hsc-resnet50", "resnet50", pretrained)


@register
def patchcore_vgg16(pretrained: Pretrained = "none") -> OneClassNet:
    """Feature matching (PatchCore): VGG16 conv3_3 + conv4_3 features vs a memory bank of normal imagery."""
    return _patchcore("patchcore-vgg16", "vgg16", pretrained)


@register
def patchcore_resnet18(pretrained: Pretrained = "none") -> OneClassNet:
    """Feature matching (PatchCore): ResNet18 layer1 + layer2 features vs a memory bank of normal imagery."""
    return _patchcore("patchcore-resnet18", "resnet18", pretrained)


def list_archs() -> list[str]:
    """Registered architecture names, in registration order."""
    return list(_REGISTRY)


def _builder(arch: str) -> Callable[[Pretrained], OneClassNet]:
    fn = _REGISTRY.get(arch)
    if fn is None:
        raise ModelError(_("unknown architecture {arch!r}; valid names: {value}").format(
                             arch=arch, value=', '.join(_REGISTRY)))
    return fn


def resolve_pretrained(arch: str, pretrained: Pretrained) -> str:
    """``"auto"`` -> the installed offline source that fits ``arch``'s trunk (else ``"none"``); others unchanged."""
    if str(pretrained) != "auto":
        return str(pretrained)
    return default_source(str(arch_info(arch)["backbone"]))


def build_model(arch: str, pretrained: Pretrained = "none") -> OneClassNet:
    """Build ``arch`` with backbone weights ``pretrained``.

    ``"none"``: random init (reproducible under ``torch.manual_seed``); ``"imagenet"``: torchvision DEFAULT weights
    from the torch hub cache only, never downloaded; otherwise a path to a local torchvision state_dict of the
    backbone. Unknown names and unusable weights raise :class:`ModelError`.
    """
    return _builder(arch)(pretrained)


@functools.cache
def _info(arch: str) -> tuple[tuple[str, Any], ...]:
    builder = _builder(arch)
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # no memory, no effect on the caller's RNG
        model = builder("none")
    h, w = model.map_shape((224, 224))
    out = {
        "arch": arch,
        "objective": model.objective,
        "backbone": model.backbone_name,
        "backbone_description": BACKBONES[model.backbone_name].description,
        "description": _DESCRIPTIONS[arch],
        "rf": model.rf.to_dict(),
        "map_size_224": [h, w],
        "stride": float(model.rf.j),
        "feature_channels": int(model.backbone.out_channels),
        "sigma": float(model.sigma),
        "output": model.output_description,
    }
    return tuple(out.items())


def arch_info(arch: str) -> dict[str, Any]:
    """JSON-safe facts about ``arch``.

    Keys: arch, objective, backbone, backbone_description, description, rf {r, j, s}, map_size_224 [h, w], stride,
    feature_channels, sigma, output. Builds nothing real (meta device) and leaves the RNG untouched.
    """
    info = dict(_info(arch))
    info["rf"] = dict(info["rf"])
    info["map_size_224"] = list(info["map_size_224"])
    return info
