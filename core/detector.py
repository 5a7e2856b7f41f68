"""Run a trained one-class detector on image tiles: safe loading, best device, batching, thread safety.

The dashboard shares one :class:`Detector` across sessions, so :meth:`Detector.predict` serialises inference per
device with a lock (one batch at a time on a GPU; no state is kept between calls, so sessions cannot mix results).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.assets import DEFAULT_MODEL
from core.calibration import Calibration
from core.checkpoint import load_model
from core.errors import CheckpointError, InputError, ModelError
from core.i18n import _
from core.models.registry import arch_info

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU raises a clear error."""
    device = (device or "auto").lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(_("device 'cuda' was asked for but no CUDA GPU is available here; use --device cpu or "
                               "auto"))
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise InputError(_("unknown device {device!r}; use auto, cpu or cuda").format(device=device))


def device_label(device: torch.device) -> str:
    """Human-readable device name: the GPU model, or 'CPU'."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return "CPU"


def device_lock(device: torch.device) -> threading.Lock:
    """The process-wide lock serialising inference on ``device`` (one batch at a time on a GPU)."""
    with _LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(str(device), threading.Lock())


def to_tensor(tiles: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (N,H,W,3) -> normalised float32 (N,3,H,W)."""
    x = torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


#: Training imagery whose ground sample distances span at most this factor counts as one scale (see model_gsd).
ONE_SCALE = 1.5


def model_gsd(meta: dict[str, Any]) -> tuple[float | None, str]:
    """The ground sample distance (m/px) a model works at, and where it comes from: the one recorded at training
    (``gsd_m``), else the geometric mean of its normal training imagery's GSD range when that imagery was of one
    scale (max/min at most :data:`ONE_SCALE`), else None (inputs are then analysed at their own resolution)."""
    g = meta.get("gsd_m")
    if isinstance(g, (int, float)) and math.isfinite(g) and g > 0:
        return float(g), "recorded at training"
    rng = ((meta.get("training") or {}).get("normal") or {}).get("gsd_m_range")
    if isinstance(rng, (list, tuple)) and len(rng) == 2 and all(isinstance(v, (int, float)) for v in rng):
        lo, hi = float(rng[0]), float(rng[1])
        if math.isfinite(lo + hi) and 0 < lo <= hi <= lo * ONE_SCALE:
            return math.sqrt(lo * hi), f"training imagery ({lo:.2f}–{hi:.2f} m)"
    return None, "not recorded"


#: Display name of a model family by (objective, backbone); backbone None is the objective's name for any trunk.
#: "Deeper FCDD" is FCDD over VGG16 (Yasuno et al. 2023).
FAMILIES: dict[tuple[str, str | None], str] = {
    ("fcdd", "vgg16"): "Deeper FCDD",
    ("fcdd", None): "FCDD",
    ("hsc", None): "HSC",
    ("patchcore", None): "Feature matching (PatchCore)",
}


#: ``BDA_PRECISION=fp32`` turns bf16 off everywhere; ``bf16`` asks for it on a CPU without native support too.
ENV_PRECISION = "BDA_PRECISION"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def use_bf16(device: torch.device, precision: str | None = None) -> bool:
    """bf16 autocast (with channels_last) on CUDA and on CPUs with native bf16, unless fp32 is asked for.

    ``precision``: "auto" (default, from ``$BDA_PRECISION``), "fp32" or "bf16". On a bf16 CPU this is 2-3× faster
    for the VGG trunks; heatmaps differ from fp32 by well under 1 % (tests/test_precision.py).
    """
    p = (precision or os.environ.get(ENV_PRECISION, "") or "auto").strip().lower()
    if p not in ("auto", "fp32", "bf16"):
        raise InputError(_("precision must be auto, fp32 or bf16, got {p!r} (set {env_precision} accordingly)").format(
                             p=p, env_precision=ENV_PRECISION))
    if p == "fp32":
        return False
    return device.type == "cuda" or p == "bf16" or (device.type == "cpu" and cpu_has_bf16())


def model_family(arch: str) -> str:
    """The family of a registered architecture ("FCDD", "Deeper FCDD", "HSC"), from its registry facts (objective
    and backbone, :func:`core.models.registry.arch_info`), not its name; an unknown one is named as given."""
    try:
        info = arch_info(arch)
    except ModelError:
        return arch or "model"
    objective, backbone = str(info["objective"]), str(info["backbone"])
    return FAMILIES.get((objective, backbone)) or FAMILIES.get((objective, None)) or objective.upper()


class Detector:
    """A loaded model ready to score tiles. Build with :meth:`load` or :meth:`from_model`."""

    def __init__(self, net: torch.nn.Module, meta: dict[str, Any], calibration: Calibration | None,
                 device: torch.device, sha256: str = "", path: Path | None = None, batch_size: int = 16,
                 precision: str | None = None) -> None:
        self.net = net.to(device).eval()
        self.meta = meta
        self.device = device
        self.sha256 = sha256
        self.path = path
        self.batch_size = batch_size
        self.arch: str = meta.get("arch", getattr(net, "arch", "unknown"))
        self.objective: str = getattr(net, "objective", meta.get("objective", "fcdd"))
        self.rf = net.rf
        self.name: str = meta.get("name") or (path.stem if path else self.arch)
        self.version: str = str(meta.get("version", "0"))
        self.input_size: int = int(meta.get("input_size", 224))
        self.gsd_m, self.gsd_source = model_gsd(meta)
        self.tile_size: int = int(meta.get("tile_size", 512))
        norm = meta.get("normalization", {})
        self.mean = tuple(norm.get("mean", IMAGENET_MEAN))
        self.std = tuple(norm.get("std", IMAGENET_STD))
        self.calibration = calibration or _identity_calibration()
        self.amp = use_bf16(device, precision)  #: bf16 autocast and channels_last
        if self.amp:
            self.net = self.net.to(memory_format=torch.channels_last)

    @property
    def family(self) -> str:
        """The model's family ("FCDD", "Deeper FCDD", "HSC"); see :func:`model_family`."""
        return model_family(self.arch)

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "auto", batch_size: int = 16,
             precision: str | None = None) -> Detector:
        """Load a checkpoint safely (``None``: the bundled default model); ``precision``: see :func:`use_bf16`."""
        p = Path(path) if path else DEFAULT_MODEL
        if path is None and not p.is_file():
            raise CheckpointError(_("the bundled default model is missing ({p}); reinstall or pass --model").format(
                                      p=p))
        net, meta, sha = load_model(p)
        cal = Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else None
        return cls(net, meta, cal, resolve_device(device), sha256=sha, path=p, batch_size=batch_size,
                   precision=precision)

    @classmethod
    def from_model(cls, net: torch.nn.Module, calibration: Calibration | None = None,
                   meta: dict[str, Any] | None = None, device: str = "cpu", precision: str | None = None
                   ) -> Detector:
        """Wrap an in-memory network (e.g. right after training)."""
        meta = dict(meta or {})
        meta.setdefault("arch", getattr(net, "arch", "unknown"))
        return cls(net, meta, calibration, resolve_device(device), precision=precision)

    def _batches(self, tiles: np.ndarray) -> Iterator[torch.Tensor]:
        if tiles.ndim != 4 or tiles.shape[-1] != 3 or tiles.dtype != np.uint8:
            raise InputError(_("tiles must be uint8 (N,H,W,3), got {dtype} {shape}").format(
                                 dtype=tiles.dtype, shape=tiles.shape))
        for i in range(0, len(tiles), self.batch_size):
            x = to_tensor(tiles[i:i + self.batch_size], self.mean, self.std).to(self.device, non_blocking=True)
            if self.amp:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x

    def predict(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score tiles: uint8 (N,H,W,3) -> (raw anomaly maps float32 (N,H,W), raw image scores float32 (N,))."""
        maps, scores = [], []
        with device_lock(self.device):
            for x in self._batches(tiles):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    if getattr(self.net, "heatmap_needs_grad", False):  # saliency heatmaps need autograd
                        m, s = self.net.heatmap(x)
                    else:
                        with torch.inference_mode():
                            m, s = self.net.heatmap(x)
                maps.append(m.float().cpu().numpy())
                scores.append(s.float().cpu().numpy())
        return np.concatenate(maps).astype(np.float32), np.concatenate(scores).astype(np.float32)

    def features(self, tiles: np.ndarray) -> np.ndarray:
        """Backbone feature maps (N,C,h,w) float32 at stride ``rf.j`` (used for pre/post change)."""
        out = []
        with device_lock(self.device), torch.inference_mode():
            for x in self._batches(tiles):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    out.append(self.net.features(x).float().cpu().numpy())
        return np.concatenate(out)

    def info(self) -> dict[str, Any]:
        """JSON-safe provenance of this model for results and reports."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "arch": self.arch,
                "objective": self.objective, "family": self.family, "input_size": self.input_size,
                "gsd_m": self.gsd_m,
                "gsd_source": self.gsd_source,
                "device": device_label(self.device), "precision": "bf16" if self.amp else "fp32",
                "threshold": self.calibration.threshold,
                "path": str(self.path) if self.path else None,
                "evaluation": self.meta.get("evaluation", {}), "created": self.meta.get("created")}


def _identity_calibration() -> Calibration:
    """Used only for uncalibrated in-memory nets: raw values pass through (q50=0, q99=1)."""
    return Calibration(pixel_q50=0.0, pixel_q99=1.0, image_q50=0.0, image_q99=1.0, threshold=1.0,
                       image_threshold=1.0)
