"""Receptive-field Gaussian upsampling of low-resolution anomaly maps (FCDD) and Gaussian blurring.

FCDD turns its ``h × w`` anomaly map into a full-resolution heatmap by placing, for every map position, a fixed
Gaussian the size of the receptive field (``r × r``) centred on the input pixels that position sees:
``conv_transpose2d(A, K, stride=j)``, then a crop so that output pixel ``x`` is input pixel ``x``.

The kernel reproduces the reference code (``fcdd/datasets/noise.py::gkern``, used by
``fcdd/models/bases.py::ReceptiveModule._receptive_field_map``), which samples ``scipy.signal.gaussian``:

* odd ``r``:  ``g[n] = exp(−½·((n − (r−1)/2)/σ)²)`` for ``n = 0 … r−1`` (peak 1 at the centre);
* even ``r``: the odd ``r−1`` window of the same formula, its centre sample duplicated (two peak samples, at
  ``n = r/2 − 1`` and ``r/2``), and the whole 1-D window halved (peak 0.5), exactly as the reference does;
* ``K = g gᵀ`` (outer product), not normalised. For even ``r`` the 2-D peak is therefore 0.25 instead of 1:
  a constant factor per model that the global score calibration (:mod:`core.detection.calibration`) absorbs.

The transposed convolution is computed separably (rows, then columns) because ``K`` is an outer product: it equals
``conv_transpose2d(A, K, stride=j)`` (tested) at O(r) instead of O(r²) work per output pixel.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from core.errors import ModelError
from core.models.receptive import ReceptiveField


def _gauss_1d(r: int, sigma: float) -> torch.Tensor:
    """The reference 1-D window (see module docstring), float64 for exactness."""
    if int(r) != r or r < 1:
        raise ModelError(f"Gaussian kernel size must be a positive integer, got {r}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ModelError(f"Gaussian sigma must be a positive finite number, got {sigma}")
    r = int(r)
    m = r if r % 2 else r - 1
    n = torch.arange(m, dtype=torch.float64)
    g = torch.exp(-0.5 * ((n - (m - 1) / 2) / sigma) ** 2)
    if r % 2 == 0:
        c = (m - 1) // 2
        g = torch.cat([g[:c], g[c:c + 1], g[c:]]) / 2
    return g


def gaussian_kernel(r: int, sigma: float) -> torch.Tensor:
    """The ``r × r`` FCDD reference kernel: unnormalised outer product of 1-D Gaussians (float32).

    Odd ``r``: centred Gaussian with peak 1. Even ``r``: the odd ``r−1`` window with its centre sample duplicated,
    then halved per axis (see the module docstring).
    """
    g = _gauss_1d(r, sigma)
    return torch.outer(g, g).to(torch.float32)


@contextlib.contextmanager
def _full_precision(device: torch.device) -> Iterator[None]:
    """Switch autocast off: heatmap post-processing runs in the input's dtype, never silently in bf16/fp16."""
    if device.type in ("cpu", "cuda") and torch.is_autocast_enabled(device.type):
        with torch.autocast(device.type, enabled=False):
            yield
    else:
        yield


def _crop_offset(rf: ReceptiveField) -> int:
    """Index of the first kept sample of the full transposed-convolution output along one axis.

    In the full output the kernel of map position ``i`` is centred at ``i·j + (r−1)/2``; we want it at ``s + j·i``.
    When ``(r−1)/2 − s`` is a half-integer (odd r with half-integer s, or even r with integer s) no integer crop is
    exact; the blob is then placed half a pixel before ``s`` (towards the top-left).
    """
    return math.floor((rf.r - 1) / 2 - rf.s + 0.5)


def gaussian_upsample(a: torch.Tensor, rf: ReceptiveField, out_hw: tuple[int, int], sigma: float) -> torch.Tensor:
    """Upsample a map ``a`` (N,1,h,w) to (N,1,H,W) = ``out_hw`` with the receptive-field Gaussian.

    Map position (y, x) contributes ``a[y, x]·K`` centred on input pixel ``(s + j·y, s + j·x)``; contributions
    outside the output are dropped, output pixels no kernel reaches are 0. Works for non-square maps and any
    ``out_hw``. Runs in ``a``'s dtype even inside an autocast region.
    """
    if a.dim() != 4 or a.size(1) != 1:
        raise ModelError(f"gaussian_upsample expects an (N, 1, h, w) map, got shape {tuple(a.shape)}")
    if int(rf.r) != rf.r or int(rf.j) != rf.j or rf.j < 1:
        raise ModelError(f"receptive field {rf} must have integer size and stride for Gaussian upsampling")
    r, j = int(rf.r), int(rf.j)
    H, W = int(out_hw[0]), int(out_hw[1])
    g = _gauss_1d(r, sigma).to(dtype=a.dtype, device=a.device)
    with _full_precision(a.device):
        x = F.conv_transpose2d(a, g.view(1, 1, r, 1), stride=(j, 1))
        x = F.conv_transpose2d(x, g.view(1, 1, 1, r), stride=(1, j))
    off = _crop_offset(rf)
    full_h, full_w = x.shape[-2:]
    # negative padding crops; positive pads zeros where no map position reaches
    return F.pad(x, (-off, W - (full_w - off), -off, H - (full_h - off)))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Normalised Gaussian blur of (N,C,H,W) maps, same size out, edges replicated; kernel ``2·⌈3σ⌉+1`` wide."""
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ModelError(f"blur sigma must be a positive finite number, got {sigma}")
    half = int(math.ceil(3 * sigma))
    g = _gauss_1d(2 * half + 1, sigma)
    g = (g / g.sum()).to(dtype=x.dtype, device=x.device)
    c = x.size(1)
    with _full_precision(x.device):
        y = F.pad(x, (half, half, half, half), mode="replicate")
        y = F.conv2d(y, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return F.conv2d(y, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
