"""Train a one-class detector (FCDD, HSC, Deep SVDD, Deep SAD; or fit feature matching), then calibrate it.

The loop only calls the net: ``net.start_training(normal)`` once, then ``net.loss(net(x), y)`` per step, with
outlier exposure and/or confetti noise as anomalies for the objectives that learn from them.

Paper defaults (FCDD reference runners): SGD with Nesterov momentum 0.9, lr 1e-3, weight decay 1e-6, an
exponential schedule (×0.985 per epoch). Adam is offered because random-init networks trained on a CPU converge
faster with it. Progress goes to a callback (the dashboard's live loss curve) and a tqdm bar (the CLI).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import core
from core.detection.calibration import Calibration
from core.detection.detector import IMAGENET_MEAN, IMAGENET_STD, Detector, resolve_device, to_tensor
from core.errors import InputError
from core.i18n import _
from core.learn.samples import OneClassStream, PatchPool, augment, collect_images
from core.models import OneClassNet, build_model
from core.models.checkpoint import save_checkpoint
from core.models.pretrained import SOURCES, source_info, stored_state
from core.models.registry import arch_info, resolve_pretrained


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint)."""

    arch: str = "fcdd-vgg11"
    options: dict[str, float] = field(default_factory=dict)  #: the objective's options, e.g. Deep SAD's {"eta": 1}
    normal: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    out: str = "model.pt"
    pretrained: str = "auto"  #: auto (the trunk's installed offline source, else none), none, imagenet, a source, PATH
    freeze: str = "auto"  #: "auto" (pretrained trunk: all but its last stage), "none", "trunk"
    bank_max: int = 16_384  #: feature matching: most bank entries kept by the coreset
    input_size: int = 224
    epochs: int = 10
    steps_per_epoch: int = 50
    batch_size: int = 16
    optimizer: str = "auto"  #: "auto" (the objective's paper: SGD for FCDD/HSC, Adam for Deep SVDD/SAD), sgd, adam
    lr: float = 1e-3
    weight_decay: float = 1e-6
    lr_decay: float = 0.985
    confetti: str = "auto"  #: "auto" (only when no anomalies), "mix" (also with anomalies), "off"
    anomaly_rate: float = 0.5
    region_share: float = 0.0  #: share of synthetic anomalies drawn as large regions instead of confetti blobs
    exclude_bounds: list[list[float]] = field(default_factory=list)  #: WGS84 w,s,e,n areas never sampled
    seed: int = 0
    device: str = "auto"
    name: str = ""
    workers: int = -1  #: data-loader workers; -1: automatic (0 on CPU)
    gsd_m: float | None = None


ProgressFn = Callable[[dict[str, Any]], None]


def _optimizer(cfg: TrainConfig, net: OneClassNet, params) -> torch.optim.Optimizer:
    name = net.paper_optimizer if cfg.optimizer == "auto" else cfg.optimizer
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise InputError(_("unknown optimizer {optimizer!r}; use auto, sgd or adam").format(optimizer=cfg.optimizer))


def _validate(cfg: TrainConfig) -> None:
    if cfg.input_size < 32 or cfg.input_size % 8:
        raise InputError(_("input size must be a multiple of 8 and at least 32, got {input_size}").format(
                             input_size=cfg.input_size))
    if cfg.epochs < 1 or cfg.steps_per_epoch < 1 or cfg.batch_size < 2:
        raise InputError(_("epochs and steps per epoch must be >= 1 and batch size >= 2"))
    if cfg.confetti not in ("auto", "mix", "off"):
        raise InputError(_("confetti must be auto, mix or off, got {confetti!r}").format(confetti=cfg.confetti))
    if cfg.bank_max < 1:
        raise InputError(_("the feature bank must keep at least one feature, got bank_max={bank_max}").format(
                             bank_max=cfg.bank_max))
    unknown = sorted(set(cfg.options) - set(arch_info(cfg.arch)["options"]))
    if unknown:  # before any image is read
        raise InputError(_("{arch} takes no option {options} (e.g. --eta is for deep-sad-* only, --neighbours for "
                           "patchcore-*)").format(
            arch=cfg.arch, options=", ".join(unknown)))
    if cfg.confetti == "off" and not cfg.anomalies and arch_info(cfg.arch)["learns_from_anomalies"]:
        raise InputError(_("with confetti off, give labelled anomalies (--anomalies); one-class training needs "
                           "some anomalies (real or synthetic) for the FCDD/HSC loss"))


def calibrate(det: Detector, patches: np.ndarray) -> Calibration:
    """Normal-score statistics of held-out normal patches -> :class:`Calibration`."""
    maps, scores = det.predict(patches)
    rng = np.random.default_rng(0)
    px = maps.reshape(-1)
    if px.size > 2_000_000:
        px = rng.choice(px, 2_000_000, replace=False)
    return Calibration.fit(px, scores)


def train(cfg: TrainConfig, progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None
          ) -> dict[str, Any]:
    """Run training; write the checkpoint to ``cfg.out``; return its metadata (with ``sha256`` and ``path``)."""
    _validate(cfg)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    normal_paths = collect_images(cfg.normal, "normal")
    anomaly_paths = collect_images(cfg.anomalies, "anomaly") if cfg.anomalies else []
    warnings: list[str] = []
    bounds = [tuple(b) for b in cfg.exclude_bounds]
    holdout_every = 7 if len(normal_paths) >= 7 else 0
    normal = PatchPool(normal_paths, cfg.input_size, part="train", exclude_bounds=bounds,
                       frame_holdout_every=holdout_every, warnings=warnings)
    held = PatchPool(normal_paths, cfg.input_size, part="holdout", exclude_bounds=bounds,
                     frame_holdout_every=holdout_every, warnings=warnings)
    anomalies = PatchPool(anomaly_paths, cfg.input_size, warnings=warnings) if anomaly_paths else None
    held_patches = held.grid()  # cut before training: a set that cannot be calibrated fails before the long part
    pretrained = resolve_pretrained(cfg.arch, cfg.pretrained)
    net = build_model(cfg.arch, pretrained=pretrained, **cfg.options).to(device)
    fitted: dict[str, Any] | None = None
    t0 = time.perf_counter()
    if anomaly_paths and not net.learns_from_anomalies:
        warnings.append(_("{arch} learns from normal imagery only; the {n} anomaly file(s) were not used").format(
            arch=cfg.arch, n=len(anomaly_paths)))
    if net.trained_by_gradient:
        frozen = _freeze(net, cfg.freeze, pretrained)
        history, seen, stopped = _gradient_steps(cfg, net, normal, anomalies, device, progress, should_stop)
    else:
        from core.learn.area_fit import fit_bank

        frozen = "all (feature matching)"
        fitted = fit_bank(net, normal, device, seed=cfg.seed, bank_max=cfg.bank_max, progress=progress,
                          should_stop=should_stop)
        history, seen, stopped = [], fitted["cells"], False
    train_seconds = time.perf_counter() - t0

    net.eval()
    det = Detector.from_model(net, meta={"arch": cfg.arch}, device=str(device))
    calibration = calibrate(det, held_patches)
    meta = _metadata(cfg, net, calibration, history, normal_paths, anomaly_paths, normal, anomalies, warnings,
                     train_seconds, seen, stopped)
    meta["training"]["frozen"] = frozen
    if net.trained_by_gradient:
        meta["training"]["optimizer"] = net.paper_optimizer if cfg.optimizer == "auto" else cfg.optimizer
    if fitted is not None:
        meta["training"]["feature_bank"] = fitted
    state = net.state_dict()
    if pretrained in SOURCES:
        meta["trunk_source"] = source_info(pretrained)
        state = stored_state(net, state, pretrained)
    from core.change.scene import fit_change_calibration

    # no-change statistics of the pre/post change score on the same held-out normal imagery
    meta["change_calibration"] = fit_change_calibration(det, held_patches[:48])
    sha = save_checkpoint(cfg.out, state, meta)
    for pool in (normal, held, anomalies):
        if pool is not None:
            pool.close()
    if progress is not None:
        progress({"event": "done", "path": cfg.out, "sha256": sha})
    return meta | {"sha256": sha, "path": str(cfg.out)}


def _gradient_steps(cfg: TrainConfig, net: OneClassNet, normal: PatchPool, anomalies: PatchPool | None,
                    device: torch.device, progress: ProgressFn | None, should_stop: Callable[[], bool] | None
                    ) -> tuple[list[dict[str, float]], int, bool]:
    """The loss loop (outlier exposure and/or confetti for objectives that learn from anomalies); returns
    (history, samples seen, stopped)."""
    confetti_share = {"auto": 0.0 if anomalies else 1.0, "mix": 0.5, "off": 0.0}[cfg.confetti]
    if anomalies is None:
        confetti_share = 1.0
    anomaly_rate = cfg.anomaly_rate if net.learns_from_anomalies else 0.0
    stream = OneClassStream(normal, anomalies if net.learns_from_anomalies else None, anomaly_rate=anomaly_rate,
                            confetti_share=confetti_share, region_share=cfg.region_share, seed=cfg.seed)
    workers = cfg.workers if cfg.workers >= 0 else (4 if device.type == "cuda" else 0)
    loader = torch.utils.data.DataLoader(stream, batch_size=cfg.batch_size, num_workers=workers,
                                         collate_fn=_collate, persistent_workers=workers > 0)

    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    opt = _optimizer(cfg, net, [p for p in net.parameters() if p.requires_grad])
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    amp = device.type == "cuda"
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    seen = 0
    bar = _bar(cfg.epochs * cfg.steps_per_epoch, progress is None)
    it = iter(loader)
    stopped = False
    pretrained_bn = [m for m in net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)] \
        if net.pretrained != "none" else []
    _train_mode(net, pretrained_bn)
    # e.g. Deep SVDD's centre, from the initial net
    net.start_training(_normal_batch(normal, net.start_samples, cfg, device, amp))
    for epoch in range(cfg.epochs):
        _train_mode(net, pretrained_bn)
        losses = []
        for _step in range(cfg.steps_per_epoch):
            imgs, labels = next(it)
            x = to_tensor(imgs, IMAGENET_MEAN, IMAGENET_STD).to(device, non_blocking=True)
            if amp:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(labels).float().to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = net(x)
            loss = net.loss(out.float(), y)
            if not torch.isfinite(loss):
                raise InputError(_(
                    "training diverged at epoch {epoch}, step {step} (the loss became {loss}); nothing was saved. "
                    "Lower the learning rate (now {lr}) or use the Adam optimizer").format(
                        epoch=epoch + 1, step=_step + 1, loss=float(loss), lr=f"{opt.param_groups[0]['lr']:g}"))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            seen += len(labels)
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}")
                bar.update(1)
            if should_stop is not None and should_stop():
                stopped = True
                break
        sched.step()
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": opt.param_groups[0]["lr"],
               "seconds": time.perf_counter() - t0, "samples": seen}
        history.append(rec)
        if progress is not None:
            progress({"event": "epoch", **rec, "epochs": cfg.epochs})
        if stopped:
            break
    if bar is not None:
        bar.close()
    return history, seen, stopped


def _train_mode(net: OneClassNet, pretrained_bn: list[torch.nn.Module]) -> None:
    net.train()
    for m in pretrained_bn:  # a pretrained trunk keeps its normalisation statistics
        m.eval()


def _normal_batch(normal: PatchPool, n: int, cfg: TrainConfig, device: torch.device, amp: bool) -> torch.Tensor:
    """``n`` normal training patches (augmented like the steps'), normalised, on ``device`` (n = 0: an empty batch)."""
    rng = np.random.default_rng([cfg.seed, 1])
    imgs = np.stack([augment(normal.sample(rng, tries=100), rng) for _ in range(n)]) if n else \
        np.zeros((0, cfg.input_size, cfg.input_size, 3), np.uint8)
    x = to_tensor(imgs, IMAGENET_MEAN, IMAGENET_STD).to(device)
    return x.contiguous(memory_format=torch.channels_last) if amp else x


def _freeze(net: OneClassNet, freeze: str, pretrained: str) -> str:
    """Freeze the trunk except its last stage (``"auto"``: only when the trunk is pretrained), or the whole trunk
    (``"trunk"``), or nothing (``"none"``); return what was frozen, for the metadata."""
    if freeze not in ("auto", "none", "trunk"):
        raise InputError(_("freeze must be auto, none or trunk, got {freeze!r}").format(freeze=freeze))
    if freeze == "none" or (freeze == "auto" and pretrained == "none"):
        return "none"
    tail = {id(p) for m in ([] if freeze == "trunk" else net.backbone.last_stage()) for p in m.parameters()}
    for p in net.backbone.parameters():  # only ever turned off: an objective may keep some fixed (Deep SVDD's biases)
        if id(p) not in tail:
            p.requires_grad_(False)
    return "trunk" if freeze == "trunk" else "trunk except its last stage"


def _collate(batch: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([np.ascontiguousarray(b[0]) for b in batch]), np.array([b[1] for b in batch], np.int64)


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="training", unit="step")


def _summary(paths: Sequence[Path], pool: PatchPool | None) -> dict[str, Any]:
    if pool is None:
        return {"files": 0}
    gsds = [it.scene.gsd_m for it in pool.items if it.scene.gsd_m]
    return {"files": len(paths), "used": len(pool), "names": [p.name for p in paths][:50],
            "gsd_m_range": [min(gsds), max(gsds)] if gsds else None,
            "frames": sum(1 for it in pool.items if not it.georef)}


def _metadata(cfg: TrainConfig, net, calibration: Calibration, history, normal_paths, anomaly_paths, normal,
              anomalies, warnings, train_seconds: float, seen: int, stopped: bool) -> dict[str, Any]:
    rf = net.rf
    meta = {
        "name": cfg.name or Path(cfg.out).stem, "version": dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d.%H%M"),
        "arch": cfg.arch, "objective": net.objective, "family": net.family, "input_size": cfg.input_size,
        "tile_size": 512,
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "receptive_field": {"r": rf.r, "j": rf.j, "s": rf.s}, "sigma": float(net.sigma),
        "gsd_m": cfg.gsd_m, "calibration": calibration.to_dict(),
        "training": {"config": asdict(cfg), "history": history, "seconds": round(train_seconds, 1),
                     "samples": seen, "stopped_early": stopped, "warnings": warnings[:50],
                     "normal": _summary(normal_paths, normal), "anomalies": _summary(anomaly_paths, anomalies)},
        "versions": {"core": core.__version__, "torch": torch.__version__, "torchvision": _version("torchvision")},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    json.dumps(meta)  # fail early if anything is not JSON-safe
    return meta


def _version(package: str) -> str:
    """An installed package's version from its metadata, without importing it (``import torchvision`` alone costs
    ~2 CPU-s: its detection ops load ``torch._dynamo``); "unknown" when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
