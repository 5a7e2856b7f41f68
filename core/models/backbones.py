"""Truncated torchvision trunks (stride 8) and loading their pretrained weights without any download.

Each trunk keeps torchvision's parameter names (``features.0.weight`` for VGG, ``layer1.0.conv1.weight`` for ResNet),
so a torchvision state_dict of the *whole* classifier loads into it directly: keys the trunk does not have
(classifier, later stages) are ignored, missing or mis-shaped keys are an error.

* VGG (``vgg11_bn``, ``vgg16_bn``): ``features`` up to, not including, the 4th max-pool (the FCDD_CNN224_VGG cut,
  ``features[:-8]`` for vgg11_bn), 512 channels.
* ResNet (``resnet18``, ``resnet50``): stem + ``layer1`` + ``layer2``; 128 / 512 channels.
* EfficientNet-Lite0 (``effnet-lite0``, :mod:`core.models.effnet`): stem + MBConv blocks 0-4, 40 channels; written
  in the project (torchvision has no Lite variant), its weights come from the ``efficientnet-lite0`` offline source.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import ModelError
from core.i18n import N_, _
from core.models.pretrained import SOURCES, source_state
from core.models.tv_layers import (
    RESNET18,
    RESNET50,
    VGG11_BN,
    VGG16_BN,
    VGG_CFGS,
    HubWeights,
    ResNet,
    resnet18,
    resnet50,
)
from core.models.tv_layers import vgg_make_layers as _vgg_make_layers


class Trunk(nn.Module):
    """What every trunk offers the heads and the trainers (stride 8 output, stages, the last stage)."""

    out_channels: int
    stage_channels: list[int]

    def layers(self) -> list[nn.Module]:
        """Modules in execution order, for receptive-field tracking."""
        raise NotImplementedError

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last activation at each resolution, finest first; the last is :meth:`forward`'s output."""
        raise NotImplementedError

    def last_stage(self) -> list[nn.Module]:
        """The modules of the last stage (fine-tuned when the rest of a pretrained trunk is frozen)."""
        raise NotImplementedError


class VGGTrunk(Trunk):
    """VGG-BN ``features`` cut before the 4th max-pool (stride 8)."""

    def __init__(self, cfg: str) -> None:
        super().__init__()
        full = _vgg_make_layers(VGG_CFGS[cfg], batch_norm=True)
        pools = [i for i, m in enumerate(full) if isinstance(m, nn.MaxPool2d)]
        self.features = nn.Sequential(*list(full)[:pools[3]])
        for m in self.features.modules():  # torchvision VGG's own initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        self.stage_channels: list[int] = []  #: channels of :meth:`stages`
        channels = 3
        for m in self.features:
            if isinstance(m, nn.MaxPool2d):
                self.stage_channels.append(channels)
            elif isinstance(m, nn.Conv2d):
                channels = m.out_channels
        self.stage_channels.append(channels)
        self.out_channels = channels

    def layers(self) -> list[nn.Module]:
        """Modules in execution order, for receptive-field tracking."""
        return [self.features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) -> (N,512,H/8,W/8)."""
        return self.features(x)

    def last_stage(self) -> list[nn.Module]:
        """Modules after the last max-pool (the part fine-tuned when the rest is frozen)."""
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        return list(self.features)[pools[-1] + 1:]

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last activation at each resolution (before every max-pool, and the output): strides 1, 2, 4, 8."""
        outs = []
        for m in self.features:
            if isinstance(m, nn.MaxPool2d):
                outs.append(x)
            x = m(x)
        return [*outs, x]


def _block_channels(block: nn.Module) -> int:
    """Output channels of a ResNet block (its last batch norm)."""
    bn: Any = block.bn3 if hasattr(block, "bn3") else block.bn2
    return int(bn.num_features)


class ResNetTrunk(Trunk):
    """ResNet stem + ``layer1`` + ``layer2`` (stride 8)."""

    def __init__(self, factory: Callable[..., ResNet]) -> None:
        super().__init__()
        net = factory(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2 = net.layer1, net.layer2
        self.out_channels = _block_channels(self.layer2[-1])
        #: channels of :meth:`stages`: stem, layer1, layer2
        self.stage_channels = [self.bn1.num_features, _block_channels(self.layer1[-1]), self.out_channels]

    def layers(self) -> list[nn.Module]:
        """Modules in execution order, for receptive-field tracking."""
        return [self.conv1, self.bn1, self.relu, self.maxpool, self.layer1, self.layer2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) -> (N,C,H/8,W/8)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer2(self.layer1(x))

    def last_stage(self) -> list[nn.Module]:
        """``layer2`` (the part fine-tuned when the rest is frozen)."""
        return [self.layer2]

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last activation at each resolution: stem (stride 2), ``layer1`` (4), ``layer2`` (8)."""
        stem = self.relu(self.bn1(self.conv1(x)))
        l1 = self.layer1(self.maxpool(stem))
        return [stem, l1, self.layer2(l1)]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one trunk and where its ImageNet weights come from."""

    name: str
    make: Callable[[], Trunk]
    weights: HubWeights | None  #: torchvision's DEFAULT ImageNet weights (their torch hub file); None: none
    description: str  #: English, marked for translation: shown through ``_()``


BACKBONES: dict[str, BackboneSpec] = {
    "vgg11": BackboneSpec("vgg11", lambda: VGGTrunk("A"), VGG11_BN,
                          N_("VGG11-BN features before the 4th max-pool")),
    "vgg16": BackboneSpec("vgg16", lambda: VGGTrunk("D"), VGG16_BN,
                          N_("VGG16-BN features before the 4th max-pool")),
    "resnet18": BackboneSpec("resnet18", lambda: ResNetTrunk(resnet18), RESNET18,
                             N_("ResNet18 stem + layer1 + layer2")),
    "resnet50": BackboneSpec("resnet50", lambda: ResNetTrunk(resnet50), RESNET50,
                             N_("ResNet50 stem + layer1 + layer2")),
    "effnet-lite0": BackboneSpec("effnet-lite0", lambda: _effnet_lite0(5), None,
                                 N_("EfficientNet-Lite0 stem + MBConv blocks 0-4 (stride 8)")),
}


def _effnet_lite0(n_blocks: int) -> Trunk:
    from core.models.effnet import EfficientNetLiteTrunk  # imports this module's Trunk

    return EfficientNetLiteTrunk(n_blocks)


def hub_weights_path(weights: HubWeights) -> Path:
    """Where torch hub keeps ``weights`` once downloaded (``<torch.hub.get_dir()>/checkpoints/<file>``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable/unsafe file is the same user error
        raise ModelError(_("cannot read backbone weights from {path}: {e}. Give a torchvision state_dict file "
                           "(.pth saved with torch.save(model.state_dict()))").format(path=path, e=e)) from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(_("{path} is not a state_dict (a mapping of parameter names to tensors); give a "
                           "torchvision state_dict file of the backbone").format(path=path))
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_backbone_weights(trunk: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy the trunk's parameters and buffers from ``state`` (a trunk or full torchvision state_dict)."""
    own = trunk.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ModelError(_("{source} does not fit this backbone: {missing} of its {own} tensors are missing (e.g. "
                           "{value}). Give the torchvision state_dict of the same architecture, or use "
                           "--pretrained none").format(
                             source=source, missing=len(missing), own=len(own), value=', '.join(missing[:3])))
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if state[k].shape != v.shape]
    if bad:
        raise ModelError(_("{source} does not fit this backbone: wrong tensor shapes ({value}). Give the "
                           "torchvision state_dict of the same architecture").format(
                             source=source, value='; '.join(bad[:3])))
    trunk.load_state_dict({k: state[k] for k in own}, strict=True)


def build_backbone(name: str, pretrained: str | os.PathLike[str] = "none") -> Trunk:
    """Build trunk ``name`` with random (``"none"``), ``"imagenet"`` (hub cache only), a named offline source
    (:data:`core.models.pretrained.SOURCES`, e.g. ``"hed-vgg16"``) or local-file weights.

    Never downloads: ImageNet weights are used only if torch hub already has the file.
    """
    spec = BACKBONES.get(name)
    if spec is None:
        raise ModelError(_("unknown backbone {name!r}; valid: {value}").format(
                             name=name, value=', '.join(BACKBONES)))
    trunk = spec.make()
    if isinstance(pretrained, str) and pretrained == "none":
        return trunk
    if isinstance(pretrained, str) and pretrained in SOURCES:
        load_backbone_weights(trunk, source_state(pretrained, name, trunk.state_dict()), f"source {pretrained}")
        return trunk
    if isinstance(pretrained, str) and pretrained == "imagenet":
        if spec.weights is None:
            fits = [n for n, src in SOURCES.items() if name in src.backbones]
            raise ModelError(_("torchvision has no ImageNet weights for {name}; use an offline source ({sources}), "
                               "--pretrained none or a weights file").format(
                                   name=name, sources=", ".join(fits) or _("none installed")))
        path = hub_weights_path(spec.weights)
        if not path.is_file():
            raise ModelError(_("ImageNet weights for {name} are unavailable offline (looked for {path}); use "
                               "--pretrained none, or --pretrained PATH to a local torchvision state_dict file, or "
                               "place the file there").format(name=name, path=path))
        load_backbone_weights(trunk, _read_state_dict(path), f"ImageNet weights {path.name}")
        return trunk
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise ModelError(_("pretrained must be 'none', 'imagenet', an offline source ({value}) or a path to a "
                           "local weights file; {pretrained!r} is none of these (file not found)").format(
                             value=', '.join(SOURCES), pretrained=str(pretrained)))
    load_backbone_weights(trunk, _read_state_dict(path), str(path))
    return trunk
