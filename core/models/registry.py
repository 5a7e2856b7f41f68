"""Architecture name -> model, generated from one table of objectives × trunks; :func:`build_model` is the factory.

Names are ``<objective>-<trunk>``: ``fcdd-vgg11`` (the FCDD reference net), ``fcdd-vgg16`` ("Deeper FCDD"),
``hsc-resnet18``, ``deep-svdd-vgg16``, ``deep-sad-resnet50``, ``patchcore-vgg16`` ... Each row of :data:`OBJECTIVES`
names the net class of one objective (which carries its score, loss and heatmap), the trunks it is offered on and
what its head does; an architecture's description is composed from its objective's and its trunk's.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from core.errors import ModelError
from core.i18n import N_, _
from core.models.backbones import BACKBONES, build_backbone
from core.models.base import OneClassNet
from core.models.fcdd import FCDDNet
from core.models.hsc import HSCNet
from core.models.patchcore import PatchCoreNet
from core.models.pretrained import default_source
from core.models.svdd import DeepSADNet, DeepSVDDNet

Pretrained = str | os.PathLike[str]

ALL_TRUNKS = ("vgg11", "vgg16", "resnet18", "resnet50", "effnet-lite0")


@dataclass(frozen=True)
class Objective:
    """One row of the registry: an objective's net class over each of ``trunks``."""

    prefix: str  #: name prefix of its architectures
    net: type[OneClassNet]
    head: str  #: what the objective adds to the trunk, for people
    trunks: tuple[str, ...] = ALL_TRUNKS
    #: family names that differ from ``net.family`` for some trunks ("Deeper FCDD" is FCDD over VGG16)
    families: Mapping[str, str] = field(default_factory=dict)
    #: a word about the objective over some trunks (its paper, a reference net)
    notes: Mapping[str, str] = field(default_factory=dict)

    def family(self, trunk: str) -> str:
        """The family of this objective over ``trunk``."""
        return self.families.get(trunk, self.net.family)


OBJECTIVES: tuple[Objective, ...] = (
    Objective("fcdd", FCDDNet, N_("bias-free 1x1 conv to a one-channel map φ; A = sqrt(φ² + 1) − 1, score mean(A)"),
              families={"vgg16": "Deeper FCDD"},
              notes={"vgg11": "reference net FCDD_CNN224_VGG", "vgg16": "Yasuno et al. 2023"}),
    Objective("hsc", HSCNet, N_("global average pooling + bias-free linear head to a 128-d vector z; "
                                "score sqrt(‖z‖² + 1) − 1; gradient-saliency heatmaps")),
    Objective("deep-svdd", DeepSVDDNet, N_("global average pooling + bias-free linear head to a 128-d vector z, trunk "
                                           "biases not trained; score ‖z − c‖² around the centre c of the normal data; "
                                           "learns from normal samples only; gradient-saliency heatmaps")),
    Objective("deep-sad", DeepSADNet, N_("Deep SVDD's network, centre c and score ‖z − c‖²; labelled anomalies pushed "
                                         "away from c (weight η); gradient-saliency heatmaps")),
    Objective("patchcore", PatchCoreNet, N_("the last three stages' features, 3x3-aggregated, against a memory bank "
                                            "of normal imagery; score mean distance to the 9 nearest bank entries"),
              trunks=("vgg16", "resnet18", "effnet-lite0")),
)


@dataclass(frozen=True)
class Entry:
    """One registered architecture."""

    arch: str
    objective: Objective
    trunk: str

    @property
    def family(self) -> str:
        """The family people know it by."""
        return self.objective.family(self.trunk)

    @property
    def description(self) -> str:
        """Composed from the objective's and the trunk's descriptions."""
        note = self.objective.notes.get(self.trunk)
        family = f"{self.family} ({note})" if note else self.family
        return _("{family} over {trunk}: {head}.").format(family=family, trunk=_(BACKBONES[self.trunk].description),
                                                          head=_(self.objective.head))


_REGISTRY: dict[str, Entry] = {f"{o.prefix}-{t}": Entry(f"{o.prefix}-{t}", o, t) for o in OBJECTIVES for t in o.trunks}


def list_archs() -> list[str]:
    """Registered architecture names, objective by objective (the order of :data:`OBJECTIVES`)."""
    return list(_REGISTRY)


def _entry(arch: str) -> Entry:
    entry = _REGISTRY.get(arch)
    if entry is None:
        raise ModelError(_("unknown architecture {arch!r}; valid names: {value}").format(
                             arch=arch, value=', '.join(_REGISTRY)))
    return entry


def resolve_pretrained(arch: str, pretrained: Pretrained) -> str:
    """``"auto"`` -> the installed offline source that fits ``arch``'s trunk (else ``"none"``); others unchanged."""
    if str(pretrained) != "auto":
        return str(pretrained)
    return default_source(_entry(arch).trunk)


def build_model(arch: str, pretrained: Pretrained = "none", **options: Any) -> OneClassNet:
    """Build ``arch`` with backbone weights ``pretrained`` and the objective's ``options`` (e.g. Deep SAD's ``eta``).

    ``"none"``: random init (reproducible under ``torch.manual_seed``); ``"imagenet"``: torchvision DEFAULT weights
    from the torch hub cache only, never downloaded; a named offline source (``"hed-vgg16"``); otherwise a path to a
    local torchvision state_dict of the backbone. Unknown names, options and unusable weights raise
    :class:`ModelError`.
    """
    entry = _entry(arch)
    net_cls = entry.objective.net
    unknown = sorted(set(options) - set(net_cls.options))
    if unknown:
        takes = (_("it takes {options}").format(options=", ".join(net_cls.options)) if net_cls.options
                 else _("it takes none"))
        raise ModelError(_("{arch} has no option {unknown} ({takes})").format(
            arch=arch, unknown=", ".join(map(repr, unknown)), takes=takes))
    trunk = build_backbone(entry.trunk, pretrained)
    net = net_cls.from_trunk(arch, entry.trunk, trunk, str(pretrained), **options)
    net.family = entry.family
    return net


@functools.cache
def _info(arch: str) -> tuple[tuple[str, Any], ...]:
    """The language-independent facts (cached: it builds the net on the meta device); :func:`arch_info` adds the
    descriptions in the language in use (a cached translation kept the first caller's language for every later one)."""
    entry = _entry(arch)
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # no memory, no effect on the caller's RNG
        model = build_model(arch, "none")
    h, w = model.map_shape((224, 224))
    out = {
        "arch": arch,
        "objective": model.objective,
        "family": entry.family,
        "backbone": model.backbone_name,
        "rf": model.rf.to_dict(),
        "map_size_224": [h, w],
        "stride": float(model.rf.j),
        "feature_channels": int(model.backbone.out_channels),
        "sigma": float(model.sigma),
        "output": model.output_description,
        "trained_by_gradient": bool(model.trained_by_gradient),
        "learns_from_anomalies": bool(model.learns_from_anomalies),
        "options": list(model.options),
    }
    return tuple(out.items())


def arch_info(arch: str) -> dict[str, Any]:
    """JSON-safe facts about ``arch``.

    Keys: arch, objective, family, backbone, backbone_description, description, rf {r, j, s}, map_size_224 [h, w],
    stride, feature_channels, sigma, output, trained_by_gradient, learns_from_anomalies, options (the keyword
    options :func:`build_model` takes). Builds nothing real (meta
    device) and leaves the RNG untouched.
    """
    info = dict(_info(arch))
    trunk = BACKBONES[info["backbone"]]
    info["backbone_description"] = _(trunk.description)
    info["description"] = _entry(arch).description
    info["rf"] = dict(info["rf"])
    info["map_size_224"] = list(info["map_size_224"])
    return info
