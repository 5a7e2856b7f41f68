"""Receptive-field arithmetic for the convolutional trunks the detectors use.

Every output position of a fully convolutional map "sees" an ``r`` × ``r`` window of the input; neighbouring output
positions are ``j`` pixels apart; output position ``i`` is centred on input coordinate ``s + j·i``. Coordinates are
pixel *indices* (pixel 0 is centred on 0.0), as in the FCDD reference code, so ``s = 3.5`` means "between pixels 3
and 4". Per layer with kernel ``k``, stride ``t``, padding ``p`` and dilation ``d`` (effective kernel
``k_e = d·(k−1)+1``)::

    n' = ⌊(n + 2p − k_e)/t⌋ + 1      j' = j·t      r' = r + (k_e − 1)·j      s' = s + ((k_e − 1)/2 − p)·j

The numbers are always computed by walking the real modules, never typed in. Residual blocks count their main path
only: the 1×1 downsample branch (or identity skip) has a smaller receptive field, and the sum's receptive field is
the larger one. Besides ResNet's blocks, any module with a ``main_path()`` method (e.g. EfficientNet's MBConv,
:class:`core.models.effnet.MBConv`) is walked through the modules that method returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import nn

from core.errors import ModelError

#: Layers that change neither size, stride nor receptive field.
_POINTWISE = (nn.BatchNorm2d, nn.ReLU, nn.Identity, nn.Dropout, nn.Dropout2d, nn.LeakyReLU, nn.GELU, nn.SiLU,
              nn.ReLU6)


@runtime_checkable
class HasMainPath(Protocol):
    """A residual block that names the modules of its main path (its skip adds nothing to the receptive field)."""

    def main_path(self) -> list[nn.Module]:
        """The main path's modules in execution order."""
        ...


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one output map position (all in input pixels)."""

    r: float  #: receptive field size
    j: float  #: jump: distance between neighbouring output positions, i.e. the map's stride
    s: float  #: centre of output position 0, in pixel-index coordinates

    def centre(self, index: int) -> float:
        """Input coordinate the output position ``index`` is centred on (``s + j·index``)."""
        return self.s + self.j * index

    def to_dict(self) -> dict[str, float]:
        """JSON-safe form."""
        return {"r": float(self.r), "j": float(self.j), "s": float(self.s)}


@dataclass(frozen=True)
class _Op:
    """One sliding-window operation along one axis."""

    k: int
    stride: int
    pad: int
    dilation: int
    ceil_mode: bool = False


def _pair(v: int | tuple[int, ...], what: str, layer: nn.Module) -> int:
    """Square value of an int-or-pair hyper-parameter; non-square ones are not supported by a scalar field."""
    if isinstance(v, int):
        return v
    vals = tuple(int(x) for x in v)
    if len(set(vals)) != 1:
        raise ModelError(f"{type(layer).__name__} has a non-square {what} {vals}; receptive-field tracking "
                         "supports square kernels, strides, paddings and dilations only: use a square layer")
    return vals[0]


def _conv_op(layer: nn.Conv2d) -> _Op:
    k = _pair(layer.kernel_size, "kernel", layer)
    stride = _pair(layer.stride, "stride", layer)
    dil = _pair(layer.dilation, "dilation", layer)
    pad = layer.padding
    if isinstance(pad, str):
        if pad == "valid":
            pad = 0
        else:  # "same" (stride 1 only, as torch enforces): total padding d·(k−1) must split evenly
            total = dil * (k - 1)
            if total % 2:
                raise ModelError(f"{layer} uses padding='same' with an even effective kernel, which pads "
                                 "asymmetrically; use an odd kernel or explicit padding")
            pad = total // 2
    else:
        pad = _pair(pad, "padding", layer)
    return _Op(k, stride, pad, dil)


def _pool_op(layer: nn.MaxPool2d | nn.AvgPool2d) -> _Op:
    k = _pair(layer.kernel_size, "kernel", layer)
    stride = _pair(layer.stride if layer.stride is not None else layer.kernel_size, "stride", layer)
    pad = _pair(layer.padding, "padding", layer)
    dil = _pair(layer.dilation, "dilation", layer) if isinstance(layer, nn.MaxPool2d) else 1
    return _Op(k, stride, pad, dil, bool(layer.ceil_mode))


def _is_block(layer: nn.Module, kind: str) -> bool:
    """A ResNet block of ``kind`` (torchvision's or :mod:`core.models.tv_layers`', same attributes), recognised
    without importing torchvision (which costs about 1.5 CPU-s)."""
    return any(c.__name__ == kind and c.__module__ in ("torchvision.models.resnet", "core.models.tv_layers")
               for c in type(layer).__mro__)


def _ops(layers: Iterable[nn.Module]) -> Iterator[_Op]:
    """Flatten modules into their sliding-window operations, in execution order (residual: main path only)."""
    for layer in layers:
        if isinstance(layer, nn.Sequential):
            yield from _ops(layer)
        elif _is_block(layer, "Bottleneck"):
            yield from _ops((layer.conv1, layer.conv2, layer.conv3))
        elif _is_block(layer, "BasicBlock"):
            yield from _ops((layer.conv1, layer.conv2))
        elif isinstance(layer, HasMainPath):
            yield from _ops(layer.main_path())
        elif isinstance(layer, nn.Conv2d):
            yield _conv_op(layer)
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            yield _pool_op(layer)
        elif isinstance(layer, _POINTWISE):
            continue
        else:
            raise ModelError(f"cannot track the receptive field through {type(layer).__name__}; supported: "
                             "Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d, ReLU(6), Sequential, ResNet BasicBlock/"
                             "Bottleneck, blocks with a main_path() method. Build the trunk from these layers.")


def receptive_field(layers: Iterable[nn.Module]) -> ReceptiveField:
    """Receptive field (r, j, s) of the output of ``layers`` applied in order to an image.

    Raises :class:`ModelError` for a layer type whose effect on the receptive field is unknown.
    """
    r, j, s = 1.0, 1.0, 0.0
    for op in _ops(layers):
        ke = op.dilation * (op.k - 1) + 1
        r = r + (ke - 1) * j
        s = s + ((ke - 1) / 2 - op.pad) * j
        j = j * op.stride
    return ReceptiveField(r=r, j=j, s=s)


def output_size(layers: Iterable[nn.Module], n: int) -> int:
    """Length of the output along one axis for an input of ``n`` pixels (0 or less: input too small)."""
    for op in _ops(layers):
        ke = op.dilation * (op.k - 1) + 1
        span = n + 2 * op.pad - ke
        if span < 0:
            return 0
        if op.ceil_mode:
            out = math.ceil(span / op.stride) + 1
            if (out - 1) * op.stride >= n + op.pad:  # torch drops a last window that starts in the right padding
                out -= 1
        else:
            out = span // op.stride + 1
        n = out
    return n


def output_shape(layers: Iterable[nn.Module], hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the output map of ``layers`` for an input of ``hw`` = (H, W) pixels."""
    layers = list(layers)
    return output_size(layers, int(hw[0])), output_size(layers, int(hw[1]))
