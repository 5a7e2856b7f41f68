"""Gaussian kernel and receptive-field upsampling: values vs the formula, exact sizes, blob placement."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.errors import ModelError
from core.models import ReceptiveField, gaussian_blur, gaussian_kernel, gaussian_upsample

torch.set_num_threads(1)


def g(t: float, sigma: float) -> float:
    return math.exp(-0.5 * (t / sigma) ** 2)


def test_kernel_odd_matches_formula() -> None:
    sigma = 1.5
    k = gaussian_kernel(5, sigma)
    assert k.shape == (5, 5) and k.dtype == torch.float32
    for a in range(5):
        for b in range(5):
            assert k[a, b].item() == pytest.approx(g(a - 2, sigma) * g(b - 2, sigma), rel=1e-6)
    assert k[2, 2].item() == 1.0  # unnormalised: peak 1


def test_kernel_even_is_reference_window() -> None:
    # even r: odd r-1 window, centre sample duplicated, then the 1-D window halved (FCDD gkern)
    sigma = 2.0
    one_d = [g(t, sigma) / 2 for t in (-2, -1, 0, 0, 1, 2)]
    k = gaussian_kernel(6, sigma)
    assert k.shape == (6, 6)
    for a in range(6):
        for b in range(6):
            assert k[a, b].item() == pytest.approx(one_d[a] * one_d[b], rel=1e-6)
    assert k[2, 2].item() == k[3, 3].item() == pytest.approx(0.25)
    assert torch.equal(k, k.T) and torch.equal(k, k.flip(0).flip(1))


def test_kernel_sizes_one_and_two() -> None:
    assert gaussian_kernel(1, 3.0).tolist() == [[1.0]]
    assert gaussian_kernel(2, 3.0).tolist() == [[0.25, 0.25], [0.25, 0.25]]


@pytest.mark.parametrize("r,sigma", [(0, 1.0), (3, 0.0), (3, float("nan")), (2.5, 1.0)])
def test_kernel_rejects_bad_arguments(r: float, sigma: float) -> None:
    with pytest.raises(ModelError):
        gaussian_kernel(r, sigma)  # type: ignore[arg-type]


def reference_fcdd_upsample(a: torch.Tensor, r: int, j: int, s: float, n_out: int, sigma: float) -> torch.Tensor:
    """The FCDD reference computation (ReceptiveModule._receptive_field_map) for square inputs, re-typed here."""
    s_i = int(s)
    pad = (r - 1) // 2
    k = gaussian_kernel(r, sigma)[None, None]
    extra = 0 if (r - 1) % 2 == 0 else 1
    res = F.conv_transpose2d(a, k, stride=j, padding=0, output_padding=n_out - (a.size(-1) - 1) * j - 1 - extra)
    return res[:, :, pad - s_i:-pad - s_i, pad - s_i:-pad - s_i]


@pytest.mark.parametrize("r,j,s", [(62, 8, 3.5), (91, 8, 0.0)])
def test_upsample_28_to_224_matches_reference(r: int, j: int, s: float) -> None:
    torch.manual_seed(0)
    a = torch.rand(2, 1, 28, 28)
    out = gaussian_upsample(a, ReceptiveField(r, j, s), (224, 224), sigma=10.0)
    assert out.shape == (2, 1, 224, 224)
    ref = reference_fcdd_upsample(a, r, j, s, 224, 10.0)
    assert ref.shape == out.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_separable_equals_full_conv_transpose() -> None:
    torch.manual_seed(1)
    a = torch.rand(1, 1, 7, 5)
    rf = ReceptiveField(62, 8, 3.5)
    full = F.conv_transpose2d(a, gaussian_kernel(62, 9.0)[None, None], stride=8)
    off = 27  # (r-1)/2 - s
    expected = full[:, :, off:off + 56, off:off + 40]
    torch.testing.assert_close(gaussian_upsample(a, rf, (56, 40), 9.0), expected, rtol=1e-5, atol=1e-6)


def centroid(m: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.meshgrid(torch.arange(m.size(0), dtype=torch.float64),
                            torch.arange(m.size(1), dtype=torch.float64), indexing="ij")
    m = m.double()
    return float((m * ys).sum() / m.sum()), float((m * xs).sum() / m.sum())


@pytest.mark.parametrize("rf", [ReceptiveField(62, 8, 3.5), ReceptiveField(92, 8, 3.5), ReceptiveField(91, 8, 0.0),
                                ReceptiveField(99, 8, 0.0), ReceptiveField(7, 4, 1.0)])
def test_single_hot_blob_is_centred_on_s_plus_j_index(rf: ReceptiveField) -> None:
    iy, ix = 9, 14
    a = torch.zeros(1, 1, 20, 28)
    a[0, 0, iy, ix] = 1.0
    out = gaussian_upsample(a, rf, (160, 224), sigma=8.0)[0, 0]
    cy, cx = centroid(out)
    assert cy == pytest.approx(rf.s + rf.j * iy, abs=1e-6)
    assert cx == pytest.approx(rf.s + rf.j * ix, abs=1e-6)
    # the whole r×r kernel lands inside: nothing lost, support exactly r wide
    assert out.sum().item() == pytest.approx(gaussian_kernel(int(rf.r), 8.0).sum().item(), rel=1e-5)
    rows = torch.nonzero(out.sum(1) > 0).flatten()
    assert rows[-1] - rows[0] + 1 == rf.r


def test_even_kernel_peak_straddles_half_pixel_centre() -> None:
    a = torch.zeros(1, 1, 28, 28)
    a[0, 0, 0, 0] = 1.0
    out = gaussian_upsample(a, ReceptiveField(62, 8, 3.5), (224, 224), sigma=10.0)[0, 0]
    peak = out.max()
    assert out[3, 3] == peak and out[4, 4] == peak and out[3, 4] == peak  # centre 3.5 lies between pixels 3, 4
    assert out[2, 3] < peak and out[5, 4] < peak


def test_half_pixel_unalignable_case_goes_to_the_first_pixel() -> None:
    # odd r with half-integer s cannot be aligned exactly: documented to land half a pixel before s
    rf = ReceptiveField(9, 4, 1.5)
    a = torch.zeros(1, 1, 8, 8)
    a[0, 0, 3, 3] = 1.0
    out = gaussian_upsample(a, rf, (32, 32), sigma=2.0)[0, 0]
    assert centroid(out) == pytest.approx((1.0 + 12, 1.0 + 12))


@pytest.mark.parametrize("hw,map_hw", [((160, 224), (20, 28)), ((100, 100), (12, 12)), ((33, 250), (4, 31)),
                                       ((224, 224), (28, 28))])
def test_output_is_exactly_requested_size(hw: tuple[int, int], map_hw: tuple[int, int]) -> None:
    a = torch.rand(3, 1, *map_hw)
    out = gaussian_upsample(a, ReceptiveField(62, 8, 3.5), hw, sigma=10.0)
    assert out.shape == (3, 1, *hw)
    assert torch.all(out >= 0) and torch.all(out[:, :, hw[0] // 2, hw[1] // 2] > 0)


def test_upsample_keeps_dtype_and_rejects_multichannel() -> None:
    a = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    assert gaussian_upsample(a, ReceptiveField(62, 8, 3.5), (32, 32), 10.0).dtype == torch.float64
    with pytest.raises(ModelError):
        gaussian_upsample(torch.rand(1, 2, 4, 4), ReceptiveField(62, 8, 3.5), (32, 32), 10.0)
    with pytest.raises(ModelError):
        gaussian_upsample(torch.rand(4, 4), ReceptiveField(62, 8, 3.5), (32, 32), 10.0)


def test_upsample_and_blur_ignore_autocast() -> None:
    a = torch.rand(1, 1, 6, 6)
    rf = ReceptiveField(62, 8, 3.5)
    ref, ref_blur = gaussian_upsample(a, rf, (48, 48), 10.0), gaussian_blur(a, 2.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, blur = gaussian_upsample(a, rf, (48, 48), 10.0), gaussian_blur(a, 2.0)
    assert out.dtype == blur.dtype == torch.float32
    assert torch.equal(out, ref) and torch.equal(blur, ref_blur)


def test_upsample_channels_last_input() -> None:
    a = torch.rand(2, 1, 6, 9)
    rf = ReceptiveField(62, 8, 3.5)
    ref = gaussian_upsample(a, rf, (48, 72), 10.0)
    out = gaussian_upsample(a.to(memory_format=torch.channels_last), rf, (48, 72), 10.0)
    torch.testing.assert_close(out, ref)


def test_blur_preserves_constants_and_is_nonnegative() -> None:
    x = torch.full((1, 2, 20, 30), 3.0)
    torch.testing.assert_close(gaussian_blur(x, 4.0), x)
    y = torch.zeros(1, 1, 40, 40)
    y[0, 0, 20, 20] = 1.0
    b = gaussian_blur(y, 3.0)
    assert b.shape == y.shape and torch.all(b >= 0)
    assert b.sum().item() == pytest.approx(1.0, rel=1e-5)
    assert centroid(b[0, 0]) == pytest.approx((20.0, 20.0))
    assert b[0, 0].argmax().item() == 20 * 40 + 20
    with pytest.raises(ModelError):
        gaussian_blur(y, 0.0)


def test_blur_sigma_larger_than_image() -> None:
    x = torch.rand(1, 1, 8, 8)
    assert gaussian_blur(x, 12.0).shape == x.shape
