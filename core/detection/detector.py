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
from core.detection.calibration import Calibration
from core.errors import CheckpointError, InputError, ModelError
from core.i18n import _
from core.models.checkpoint import load_model
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


#: ``BDA_DEVICE_SHARE=queue|lock``: how sessions share a device (default: queue on a GPU, lock on a CPU).
ENV_SHARE = "BDA_DEVICE_SHARE"
#: Batch size when the caller names none (on a GPU it is then chosen from free memory).
DEFAULT_BATCH = 16


def _to_host(t: torch.Tensor) -> np.ndarray:
    """Copy a device tensor into pinned host memory with one non-blocking copy, then wait once."""
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    torch.cuda.current_stream(t.device).synchronize()
    return host.numpy().copy()


#: Training imagery whose ground sample distances span at most this factor counts as one scale (see model_gsd).
ONE_SCALE = 1.5


def model_frame_side(meta: dict[str, Any]) -> int | None:
    """The input size when every normal training image was a photo without georeferencing (training scales photos
    so their short side is about the input size; evaluation scores them at exactly that), else None."""
    normal = (meta.get("training") or {}).get("normal") or {}
    frames, used = normal.get("frames"), normal.get("used")
    if isinstance(frames, int) and isinstance(used, int) and used > 0 and frames == used:
        return int(meta.get("input_size", 224))
    return None


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
    """The family of a registered architecture ("FCDD", "Deeper FCDD", "HSC", "Deep SVDD", "Deep SAD", ...), a fact
    the registry keeps about it (:func:`core.models.registry.arch_info`), not read from its name; an unknown one is
    named as given."""
    try:
        return str(arch_info(arch)["family"])
    except ModelError:
        return arch or "model"


class Detector:
    """A loaded model ready to score tiles. Build with :meth:`load` or :meth:`from_model`."""

    def __init__(self, net: torch.nn.Module, meta: dict[str, Any], calibration: Calibration | None,
                 device: torch.device, sha256: str = "", path: Path | None = None, batch_size: int = DEFAULT_BATCH,
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
        #: the short side photos are scaled to, for a model that learnt from photos only (else None): see
        #: :func:`core.detection.scene_grid.resample_factor`
        self.frame_side: int | None = model_frame_side(meta)
        self.tile_size: int = int(meta.get("tile_size", 512))
        norm = meta.get("normalization", {})
        self.mean = tuple(norm.get("mean", IMAGENET_MEAN))
        self.std = tuple(norm.get("std", IMAGENET_STD))
        self.calibration = calibration or _identity_calibration()
        self.amp = use_bf16(device, precision)  #: bf16 autocast and channels_last
        #: how sessions share the device: "queue" (batched across sessions, the default on a GPU) or "lock"
        self.share = os.environ.get(ENV_SHARE, "") or ("queue" if device.type == "cuda" else "lock")
        if self.share not in ("queue", "lock"):
            raise InputError(_("{env} must be queue or lock, got {value!r}; set it to one of them or unset it")
                             .format(env=ENV_SHARE, value=self.share))
        if device.type == "cuda" and batch_size == DEFAULT_BATCH:  # not chosen by the caller: from free memory
            self.batch_size = self._cuda_batch()
        if self.amp:
            self.net = self.net.to(memory_format=torch.channels_last)

    @property
    def family(self) -> str:
        """The model's family ("FCDD", "Deeper FCDD", "HSC", "Deep SVDD", ...): the net's own, else the registry's."""
        return str(getattr(self.net, "family", "") or model_family(self.arch))

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "auto", batch_size: int = DEFAULT_BATCH,
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
        if self.device.type == "cuda":
            yield from self._cuda_batches(tiles)
            return
        for i in range(0, len(tiles), self.batch_size):
            x = to_tensor(tiles[i:i + self.batch_size], self.mean, self.std)
            if self.amp:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x

    def _cuda_batches(self, tiles: np.ndarray) -> Iterator[torch.Tensor]:
        """Batches on the GPU through two pinned uint8 staging buffers (a double buffer): the next batch is
        copied host-to-device on a side stream (``non_blocking``) while the current one computes; uint8 travels
        (4× less than float) and is normalised on the device."""
        n, b = len(tiles), min(self.batch_size, len(tiles))
        stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        main = torch.cuda.current_stream(self.device)
        bufs = [torch.empty((b, *tiles.shape[1:]), dtype=torch.uint8).pin_memory() for _ in range(2)]
        done: list[torch.cuda.Event | None] = [None, None]  # copy out of each buffer finished
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1) * 255.0
        for k, i in enumerate(range(0, n, b)):
            slot, chunk = k % 2, tiles[i:i + b]
            ev = done[slot]
            if ev is not None:
                ev.synchronize()  # this buffer's previous copy has left the host
            host = bufs[slot][:len(chunk)]
            host.numpy()[...] = chunk
            with torch.cuda.stream(stream):
                xu = host.to(self.device, non_blocking=True)
                copied = torch.cuda.Event()  # type: ignore[no-untyped-call]
                copied.record(stream)
            done[slot] = copied
            main.wait_event(copied)
            xu.record_stream(main)
            x = xu.permute(0, 3, 1, 2).float().sub_(mean).div_(std)
            yield x.contiguous(memory_format=torch.channels_last) if self.amp else x.contiguous()

    def predict(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score tiles: uint8 (N,H,W,3) -> (raw anomaly maps float32 (N,H,W), raw image scores float32 (N,)).

        Sessions share the device: on a GPU (or with ``share="queue"``) through ``device_queue.device_queue``,
        which merges waiting sessions' tiles of the same shape into one batch; on a CPU behind the device lock.
        """
        if tiles.ndim != 4 or tiles.shape[-1] != 3 or tiles.dtype != np.uint8:
            raise InputError(_("tiles must be uint8 (N,H,W,3), got {dtype} {shape}").format(
                dtype=tiles.dtype, shape=tiles.shape))
        if self.share == "queue":
            from core.detection.device_queue import device_queue

            return device_queue(str(self.device)).submit((id(self), self.amp), tiles, self._predict_now,
                                                         max(self.batch_size, len(tiles)))
        with device_lock(self.device):
            return self._predict_now(tiles)

    def _predict_now(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the net over ``tiles`` in batches (the caller holds the device). On a GPU the batches' maps stay on
        the device until the end: one synchronising copy back per call, not one per batch."""
        maps, scores = [], []
        for x in self._batches(tiles):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                if getattr(self.net, "heatmap_needs_grad", False):  # saliency heatmaps need autograd
                    m, s = self.net.heatmap(x)
                else:
                    with torch.inference_mode():
                        m, s = self.net.heatmap(x)
            maps.append(m.float())
            scores.append(s.float())
        if self.device.type == "cuda":
            return _to_host(torch.cat(maps)), _to_host(torch.cat(scores))
        return (np.concatenate([m.numpy() for m in maps]).astype(np.float32),
                np.concatenate([s.numpy() for s in scores]).astype(np.float32))

    def features(self, tiles: np.ndarray) -> np.ndarray:
        """Backbone feature maps (N,C,h,w) float32 at stride ``rf.j`` (used for pre/post change)."""
        out = []
        with device_lock(self.device), torch.inference_mode():
            for x in self._batches(tiles):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    out.append(self.net.features(x).float().cpu().numpy())
        return np.concatenate(out)

    def tile_budget_px(self) -> int | None:
        """Pixels per tile the scene pipeline may use for this model (None: keep the model's tile size).

        Only for tile-invariant models (:attr:`core.models.base.OneClassNet.tile_invariant`): on a CPU
        :data:`core.detection.tile_cover.CPU_BUDGET_PX` (half in fp32); on a GPU what half its free memory holds.
        """
        if not getattr(self.net, "tile_invariant", False):
            return None
        if self.device.type == "cuda":
            from core.detection.device_queue import budget_for_memory

            return budget_for_memory(torch.cuda.mem_get_info(self.device)[0])
        from core.detection.tile_cover import CPU_BUDGET_PX

        return CPU_BUDGET_PX if self.amp else CPU_BUDGET_PX // 2  # fp32 activations take twice the memory

    def _cuda_batch(self) -> int:
        """Tiles per batch for the model's own tile size, from the GPU's free memory (at most 256)."""
        from core.detection.device_queue import batch_for_memory

        return batch_for_memory(torch.cuda.mem_get_info(self.device)[0], self.tile_size * self.tile_size)

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
