"""The detector's view of change: scene-relative distances between pre and post trunk features.

For a pre/post tile pair on one grid the detector's trunk is run on both, and every trunk *stage* (the last
activation at each resolution: for ResNet the stem at stride 2 and ``layer1`` at stride 4, for VGG the blocks
before each max-pool) is average-pooled onto the model's map grid (stride ``rf.j``). Per stage ``l`` and map
cell ``x``::

    d_l(x) = sqrt( mean_c (f_post,l,c(x) - f_pre,l,c(x))² / V_l )

where ``V_l`` is the mean per-channel variance of stage ``l`` over the *pre scene* (a sample of its windows): a
change is measured against how much the scene itself varies - change vector analysis on per-scene standardised
bands, the usual radiometric normalisation of remote-sensing change detection, done on learned features. The
stages used (default: every stage finer than the model stride but coarser than the pixels, the "early trunk")
are averaged, the cell map is
Gaussian-upsampled with the model's receptive field exactly like the FCDD heatmap (normalised by the kernel
coverage so tile borders are not dimmed), and calibrated against *no-change* statistics: the same distance between
normal images and photometrically jittered, slightly shifted copies of themselves (:func:`fit_change_calibration`),
``score = (D - q50) / (q99 - q50)`` - 0 is a median no-change pixel, 1 the 99th percentile of no-change pixels,
the default threshold the 99.9th percentile. Why this formulation (measured on xBD Harvey): see :mod:`.scene`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.detection.detector import to_tensor
from core.errors import InputError
from core.i18n import _
from core.models.upsample import gaussian_upsample

CALIBRATION_VERSION = 1
METHOD = "scene-relative early-trunk feature change"
#: Deterministic nuisance copies (no change): brightness, contrast, saturation, gamma, blur sigma, shift dx, dy.
NUISANCE: tuple[tuple[float, ...], ...] = (
    (0.08, -0.05, 0.00, 1.00, 0.0, 1.0, -0.5),
    (-0.08, 0.05, -0.10, 1.00, 0.0, -0.7, 1.2),
    (0.00, 0.00, 0.10, 0.90, 0.6, 1.5, 1.0),
    (0.03, -0.08, 0.05, 1.10, 0.0, -1.2, -1.5),
)
#: No-change statistics used when a checkpoint has no ``change_calibration``. D is dimensionless (scene-relative),
#: and its no-change quantiles hardly depend on the model: fit_change_calibration on 102 normal 256-px patches
#: (64 Joplin pre, 38 Harvey pre) gave q50 0.38-0.43, q99 1.52-1.78, q999 2.15-2.81 for two trained
#: fcdd-resnet18 and untrained fcdd-resnet18 / fcdd-vgg11 trunks; these are the rounded middles. They depend on
#: the imagery more than on the model (Joplin patches alone: q99 ~0.55), so training should store its own.
GENERIC_CALIBRATION: dict[str, Any] = {
    "version": CALIBRATION_VERSION, "method": METHOD, "levels": None, "q50": 0.40, "q99": 1.70, "q999": 2.50,
    "threshold": (2.50 - 0.40) / (1.70 - 0.40), "n_patches": 0,
    "source": "generic"}  # a code: core.change.texts.CALIBRATION_SOURCES says it in words
_MAX_CAL_VALUES = 2_000_000  #: pixel values kept for the no-change quantiles
_QS = (0.5, 0.9, 0.99, 0.999)
_SPECS: weakref.WeakKeyDictionary[nn.Module, list[dict[str, Any]]] = weakref.WeakKeyDictionary()
_SPECS_LOCK = threading.Lock()


def trunk_modules(net: nn.Module) -> list[nn.Module]:
    """The detector trunk as a flat chain of modules in execution order (a plain VGG ``features`` is unrolled)."""
    mods: list[nn.Module] = []
    for m in net.backbone.layers():
        kids = list(m.children())
        if type(m) is nn.Sequential and kids and all(not list(k.children()) for k in kids):
            mods.extend(kids)
        else:
            mods.append(m)
    return mods


def _run_stages(net: nn.Module, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
    """Last activation at each resolution, in order (stops after stage ``upto`` when given)."""
    outs: list[torch.Tensor] = []
    h = x
    last: torch.Tensor | None = None
    for m in trunk_modules(net):
        h = m(h)
        if last is not None and h.shape[-2:] != last.shape[-2:]:
            outs.append(last)
            if upto is not None and len(outs) > upto:
                return outs
        last = h
    assert last is not None
    outs.append(last)
    return outs


def level_specs(det: Any) -> list[dict[str, Any]]:
    """Stride and channel count of every trunk stage of ``det`` (computed once per network)."""
    with _SPECS_LOCK:
        if det.net in _SPECS:
            return _SPECS[det.net]
    x = torch.zeros(1, 3, 64, 64, device=det.device)
    with torch.inference_mode():
        outs = _run_stages(det.net, x)
    specs = [{"index": i, "stride": 64 / o.shape[-1], "channels": int(o.shape[1])} for i, o in enumerate(outs)]
    with _SPECS_LOCK:
        _SPECS[det.net] = specs
    return specs


def early_levels(det: Any) -> list[int]:
    """The default levels: the stages finer than the model stride, but not a full-resolution one.

    A stage at stride 1 (VGG's conv1_2) is little more than the pixels' colours: pre and post images taken in
    other light, season or sensor differ there everywhere. Measured on xBD Harvey with the HED VGG16 trunk
    (building AUROC pooled / within scene, 12 pairs): conv1_2+conv2_2+conv3_3 0.983 / 0.716, conv2_2+conv3_3
    0.987 / 0.823 (the blurred pixel difference: 0.859 / 0.357). ResNet trunks start at stride 2 and are unchanged.
    """
    specs = level_specs(det)
    early = [s["index"] for s in specs if s["stride"] < float(det.rf.j) - 1e-6]
    coarse = [i for i in early if specs[i]["stride"] > 1.0 + 1e-6]
    return coarse or early or [specs[-1]["index"]]


def trunk_levels(det: Any, tiles: np.ndarray, levels: Sequence[int]) -> list[np.ndarray]:
    """Stage activations of ``tiles`` (uint8 N×H×W×3) pooled to the map grid: one (N, C_l, h, w) array per level."""
    if tiles.ndim != 4 or tiles.shape[-1] != 3 or tiles.dtype != np.uint8:
        raise InputError(_("tiles must be uint8 (N,H,W,3), got {dtype} {shape}").format(
                             dtype=tiles.dtype, shape=tiles.shape))
    hw = det.net.map_shape((tiles.shape[1], tiles.shape[2]))
    upto = max(levels)
    out: list[list[np.ndarray]] = [[] for _ in levels]
    from core.detection.detector import device_lock  # the detector's per-device lock: one batch at a time on a GPU

    with device_lock(det.device), torch.inference_mode():
        for i in range(0, len(tiles), det.batch_size):
            x = to_tensor(tiles[i:i + det.batch_size], det.mean, det.std).to(det.device)
            with torch.autocast(det.device.type, dtype=torch.bfloat16, enabled=det.amp):
                stages = _run_stages(det.net, x, upto)
            for k, lv in enumerate(levels):
                out[k].append(F.adaptive_avg_pool2d(stages[lv].float(), hw).cpu().numpy())
    return [np.concatenate(o) for o in out]


def nuisance_copy(rgb: np.ndarray, setting: Sequence[float]) -> np.ndarray:
    """A photometrically jittered, sub-pixel shifted copy of ``rgb`` (no real change): see :data:`NUISANCE`."""
    bright, contrast, sat, gamma, blur, dx, dy = setting
    x = rgb.astype(np.float32) / 255.0
    mean = float(x.mean())
    x = (x - mean) * (1 + contrast) + mean * (1 + bright)
    grey = x.mean(axis=2, keepdims=True)
    x = np.clip(grey + (x - grey) * (1 + sat), 0, 1) ** gamma
    if blur > 0:
        x = cv2.GaussianBlur(x, (0, 0), blur)
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    x = cv2.warpAffine(x, m, (x.shape[1], x.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def fill_invalid(post: np.ndarray, post_valid: np.ndarray, pre: np.ndarray, pre_valid: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Copy each image's valid pixels into the other's holes, so nodata never looks like change to the trunk."""
    pre_f = np.where(pre_valid[..., None], pre, post)
    post_f = np.where(post_valid[..., None], post, pre_f)
    return post_f, pre_f


class ChangeScorer:
    """Scene-relative feature change for one detector; see the module docstring.

    ``calibration`` is the dict of :func:`fit_change_calibration` (a checkpoint's ``meta["change_calibration"]``);
    None or an outdated version falls back to :data:`GENERIC_CALIBRATION`. Call :meth:`fit_scene` with a sample
    of the pre scene before :meth:`heat`. :meth:`calibrate_on` recalibrates on the pre scene itself (per pair:
    measured to hurt cross-pair ranking, see :mod:`core.change.scene`; kept for diagnostics).
    """

    def __init__(self, det: Any, calibration: dict[str, Any] | None = None,
                 levels: Sequence[int] | None = None) -> None:
        self.det = det
        if calibration is None or int(calibration.get("version", 0)) != CALIBRATION_VERSION:
            calibration = GENERIC_CALIBRATION
        self.calibration: dict[str, Any] = dict(calibration)
        n = len(level_specs(det))
        lv = list(levels) if levels is not None else (list(calibration["levels"]) if calibration.get("levels")
                                                      else early_levels(det))
        if not lv or min(lv) < 0 or max(lv) >= n:
            raise InputError(_("change levels {lv} do not exist in {arch} (it has {n} trunk stages)").format(
                                 lv=lv, arch=det.arch, n=n))
        self.levels = lv
        self.scales: np.ndarray | None = None
        self._den: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def calibration_source(self) -> str:
        """Where the no-change statistics come from: a code of :data:`core.change.texts.CALIBRATION_SOURCES`
        ("generic", "pre-image", "checkpoint"), or what an older checkpoint stored."""
        return str(self.calibration.get("source", "checkpoint"))

    def level_features(self, tiles: np.ndarray) -> list[np.ndarray]:
        """Pooled stage features (one array per used level) of uint8 tiles."""
        return trunk_levels(self.det, tiles, self.levels)

    def fit_scene(self, pre_tiles: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Per-level feature variance ``V_l`` of the pre scene from sample tiles (N×H×W×3, validity N×H×W)."""
        feats = self.level_features(pre_tiles)
        h, w = feats[0].shape[-2:]
        if valid is None:
            ok = np.ones((len(pre_tiles), h, w), bool)
        else:
            v = torch.from_numpy(valid.astype(np.float32))[:, None]
            ok = F.adaptive_avg_pool2d(v, (h, w))[:, 0].numpy() >= 0.5
        if not ok.any():
            raise InputError(_("the pre-event image has no valid pixels where it overlaps the post-event image"))
        scales = []
        for f in feats:
            cells = np.moveaxis(f, 1, -1)[ok]  # (cells, C)
            scales.append(max(float(cells.var(axis=0).mean()), 1e-8))
        self.scales = np.asarray(scales, np.float64)
        return self.scales

    def raw(self, post_tiles: np.ndarray, pre_tiles: np.ndarray,
            pre_feats: list[np.ndarray] | None = None, scales: np.ndarray | None = None) -> np.ndarray:
        """Cell distances D (N×h×w): mean over levels of the scene-relative distances.

        ``scales`` (L, or N×L per tile) overrides the scene's ``V_l`` from :meth:`fit_scene`.
        """
        s = self.scales if scales is None else np.asarray(scales, np.float64)
        if s is None:
            raise RuntimeError(_("call fit_scene() with a sample of the pre scene first"))
        s = np.broadcast_to(s, (len(post_tiles), len(self.levels)))
        fa = self.level_features(post_tiles)
        fb = pre_feats if pre_feats is not None else self.level_features(pre_tiles)
        d = [np.sqrt(np.mean((a - b) ** 2, axis=1) / s[:, k, None, None])
             for k, (a, b) in enumerate(zip(fa, fb, strict=True))]
        return np.mean(d, axis=0).astype(np.float32)

    def upsample(self, cells: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """Receptive-field Gaussian upsampling of cell maps (N×h×w) to N×H×W, normalised by kernel coverage."""
        rf, sigma = self.det.rf, float(getattr(self.det.net, "sigma", 10.0))
        t = torch.from_numpy(np.ascontiguousarray(cells, dtype=np.float32))[:, None]
        key = (hw, tuple(cells.shape[-2:]))
        if key not in self._den:
            self._den[key] = gaussian_upsample(torch.ones_like(t[:1]), rf, hw, sigma).clamp_min(1e-6)
        return (gaussian_upsample(t, rf, hw, sigma) / self._den[key])[:, 0].numpy()

    def calibrate(self, d: np.ndarray) -> np.ndarray:
        """Upsampled distances -> calibrated change scores."""
        q50, q99 = float(self.calibration["q50"]), float(self.calibration["q99"])
        return ((d - q50) / max(q99 - q50, 1e-12)).astype(np.float32)

    def heat(self, post_tiles: np.ndarray, pre_tiles: np.ndarray) -> np.ndarray:
        """Calibrated full-resolution change maps (N×H×W) of tile pairs (invalid pixels already filled)."""
        return self.calibrate(self.upsample(self.raw(post_tiles, pre_tiles), post_tiles.shape[1:3]))

    def calibrate_on(self, pre_tiles: np.ndarray) -> dict[str, Any]:
        """Per-pair calibration from the pre scene's own sample tiles (needs :meth:`fit_scene` first)."""
        if self.scales is None:
            raise RuntimeError(_("call fit_scene() first"))
        self.calibration = _nochange_calibration(self, list(pre_tiles), scene_scales=True)
        self.calibration["source"] = "pre-image"
        return self.calibration


def _nochange_calibration(scorer: ChangeScorer, patches: list[np.ndarray], scene_scales: bool,
                          seed: int = 0, chunk: int = 8) -> dict[str, Any]:
    """No-change quantiles of the upsampled distance between patches and their :data:`NUISANCE` copies.

    ``scene_scales``: use the scorer's scene ``V_l`` for every patch; else each patch is its own scene.
    """
    rng = np.random.default_rng(seed)
    keep = max(1, _MAX_CAL_VALUES // max(1, len(patches) * len(NUISANCE)))
    vals: list[np.ndarray] = []
    groups: dict[tuple[int, ...], list[np.ndarray]] = {}
    for p in patches:
        groups.setdefault(p.shape, []).append(p)
    k = len(NUISANCE)
    for same in groups.values():
        for i in range(0, len(same), chunk):
            base = np.stack(same[i:i + chunk])
            copies = np.stack([nuisance_copy(b, s) for b in base for s in NUISANCE])
            fb = scorer.level_features(base)
            if scene_scales:
                scales = None
            else:  # each patch its own scene: V_l of the patch's own cells
                scales = np.stack([np.maximum(f.var(axis=(2, 3)).mean(axis=1), 1e-8) for f in fb], axis=1)
                scales = np.repeat(scales, k, axis=0)
            d = scorer.upsample(scorer.raw(copies, copies, [np.repeat(f, k, axis=0) for f in fb], scales),
                                base.shape[1:3])
            for one in d.reshape(len(base), -1):
                vals.append(one if one.size <= keep else one[rng.integers(0, one.size, keep)])
    v = np.concatenate(vals).astype(np.float64)
    q = dict(zip(_QS, np.quantile(v, _QS), strict=True))
    q50, q99 = float(q[0.5]), float(q[0.99])
    if q99 - q50 <= 1e-12:
        q99 = q50 + max(float(v.std()), 1e-6)
    specs = level_specs(scorer.det)
    return {"version": CALIBRATION_VERSION, "method": METHOD, "levels": list(scorer.levels),
            "level_strides": [specs[i]["stride"] for i in scorer.levels], "q50": q50, "q99": q99,
            "q999": float(q[0.999]), "threshold": float(max((q[0.999] - q50) / (q99 - q50), 1.0)),
            "n_patches": len(patches), "nuisance": [list(s) for s in NUISANCE],
            "scales": "per scene" if scene_scales else "per patch"}


def fit_change_calibration(det: Any, normal_patches: np.ndarray | Sequence[np.ndarray], *,
                           levels: Sequence[int] | None = None, seed: int = 0) -> dict[str, Any]:
    """No-change statistics of ``det``'s change score, for ``meta["change_calibration"]`` in the checkpoint.

    ``normal_patches``: uint8 RGB patches (N×H×W×3, or a list of H×W×3 arrays of any sizes >= 32 px) of held-out
    normal imagery. Each patch is its own "scene" (its feature variance is ``V_l``) and is compared with four
    nuisance copies of itself (:data:`NUISANCE`: ±8 % brightness/contrast, ±10 % saturation and gamma, slight
    blur, 0.5-1.5 px shifts). Returns a JSON-safe dict (q50/q99/q999 of the upsampled no-change distance, the
    default threshold in calibrated units, the levels used).
    """
    patches = [np.asarray(p) for p in normal_patches]
    if not patches:
        raise InputError(_("fit_change_calibration needs at least one normal patch"))
    for p in patches:
        if p.ndim != 3 or p.shape[2] != 3 or p.dtype != np.uint8 or min(p.shape[:2]) < 32:
            raise InputError(_("normal patches must be uint8 H×W×3 of at least 32 px, got {dtype} {shape}").format(
                                 dtype=p.dtype, shape=p.shape))
    scorer = ChangeScorer(det, None, levels)
    cal = _nochange_calibration(scorer, patches, scene_scales=False, seed=seed)
    cal["source"] = "checkpoint"
    return cal
