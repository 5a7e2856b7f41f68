"""Window arithmetic (property-based), padding, blending, read-ahead and band-streamed stitching."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

from core.detection.band_resample import RowResampler
from core.detection.prefetch import Prefetcher
from core.detection.stitching import EDGE_WEIGHT, Stitcher, blend_weights
from core.detection.tile_grid import grid_windows, pad_to

sizes = st.integers(min_value=1, max_value=700)
tiles = st.integers(min_value=8, max_value=256)


@st.composite
def grids(draw):
    h, w, t = draw(sizes), draw(sizes), draw(tiles)
    ov = draw(st.integers(min_value=0, max_value=t - 1))
    return h, w, t, ov


@settings(max_examples=300, deadline=None)
@given(grids())
def test_windows_cover_every_pixel_and_stay_inside(g):
    h, w, t, ov = g
    wins = grid_windows(h, w, t, ov)
    r0, c0, hh, ww = (np.array([getattr(x, k) for x in wins]) for k in ("row_off", "col_off", "height", "width"))
    assert (r0 >= 0).all() and (c0 >= 0).all()
    assert (r0 + hh <= h).all() and (c0 + ww <= w).all()
    assert (hh == min(t, h)).all() and (ww == min(t, w)).all()
    # how many windows cover each pixel, from a 2-D difference array (a tile of 8 px with 7 px overlap over a 700²
    # image is 480,000 windows: adding them up one slice at a time took seconds)
    diff = np.zeros((h + 1, w + 1), np.int64)
    for dr, dc, sign in ((0, 0, 1), (1, 0, -1), (0, 1, -1), (1, 1, 1)):
        np.add.at(diff, (r0 + dr * hh, c0 + dc * ww), sign)
    cover = diff.cumsum(0).cumsum(1)[:h, :w]
    assert cover.min() >= 1


@settings(max_examples=300, deadline=None)
@given(grids())
def test_neighbours_overlap_as_asked_and_order_is_row_major(g):
    h, w, t, ov = g
    wins = grid_windows(h, w, t, ov)
    rows = sorted({x.row_off for x in wins})
    cols = sorted({x.col_off for x in wins})
    assert [(x.row_off, x.col_off) for x in wins] == [(r, c) for r in rows for c in cols]
    for starts, n in ((rows, h), (cols, w)):
        if n <= t:
            assert starts == [0]
            continue
        steps = np.diff(starts)
        assert (steps > 0).all()
        # every step but the last is exactly tile - overlap; the last (shifted back inside) overlaps at least as much
        assert (steps[:-1] == t - ov).all()
        assert steps[-1] <= t - ov
        assert starts[-1] == n - t
    # no more windows than needed (ceil)
    for n, starts in ((h, rows), (w, cols)):
        expect = 1 if n <= t else int(np.ceil((n - t) / (t - ov))) + 1
        assert len(starts) == expect


def test_grid_windows_rejects_bad_arguments():
    with pytest.raises(ValueError):
        grid_windows(10, 10, 8, 8)
    with pytest.raises(ValueError):
        grid_windows(0, 10, 8, 2)
    with pytest.raises(ValueError):
        grid_windows(10, 10, 0, 0)


def test_grid_windows_exact_example():
    wins = grid_windows(1000, 300, 512, 64)
    assert [w.row_off for w in wins] == [0, 448, 488]
    assert {w.col_off for w in wins} == {0} and all(w.width == 300 for w in wins)


def test_pad_to_mirrors_pixels_and_marks_padding_invalid():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    valid = np.array([[True, False, True], [True, True, True]])
    prgb, pvalid = pad_to(rgb, valid, 5, 4)
    assert prgb.shape == (5, 4, 3) and pvalid.shape == (5, 4)
    assert (prgb[:2, :3] == rgb).all()
    assert (prgb[2, :3] == rgb[1]).all()  # symmetric mirror, not black
    assert (pvalid[:2, :3] == valid).all() and not pvalid[2:].any() and not pvalid[:, 3].any()
    same = pad_to(rgb, valid, 2, 3)
    assert same[0] is rgb
    with pytest.raises(ValueError):
        pad_to(rgb, valid, 1, 3)
    one, onev = pad_to(np.full((1, 1, 3), 7, np.uint8), np.ones((1, 1), bool), 4, 4)
    assert (one == 7).all() and onev.sum() == 1


def test_blend_weights_shape_smoothness_and_partition_of_unity():
    w = blend_weights(64, 48, ramp=16)
    assert w.shape == (64, 48) and w.dtype == np.float32
    assert w.min() >= EDGE_WEIGHT * EDGE_WEIGHT - 1e-9 and w.max() <= 1
    assert w[32, 24] == pytest.approx(1.0)
    assert w[0, 24] < 0.01  # fades out at the edge
    assert np.abs(np.diff(w[:, 24])).max() < 0.2  # smooth
    assert np.allclose(w[:4, 24], EDGE_WEIGHT)  # dead margin (ramp // 4) outvoted by neighbours
    # two neighbours overlapping by the ramp width keep a solid combined weight across the overlap
    row = blend_weights(1, 64, ramp=16)[0]
    total = np.zeros(64 + 48)
    total[:64] += row
    total[48:] += row
    assert total[16:96].min() >= 0.5
    row0 = blend_weights(1, 64, ramp=16, margin=0)[0]  # without a margin, neighbours' fades sum to exactly 1
    total0 = np.zeros(64 + 48)
    total0[:64] += row0
    total0[48:] += row0
    assert np.allclose(total0[16:96], 1.0, atol=2e-3)
    hann = blend_weights(32, 32)
    assert hann[16, 16] > 0.99 and hann[0, 0] < 0.01


class ArraySource:
    """An in-memory pixel source (as core.imagery.reader does for frames), with optional failure/slowness."""

    def __init__(self, rgb, fail_at=None, delay=0.0):
        self.rgb, self.fail_at, self.delay, self.reads = rgb, fail_at, delay, 0

    def read(self, win):
        self.reads += 1
        if self.fail_at is not None and self.reads > self.fail_at:
            raise OSError("disk went away")
        time.sleep(self.delay)
        px = self.rgb[win.toslices()]
        return px.copy(), np.ones(px.shape[:2], bool)


def test_prefetcher_yields_every_window_in_order_with_pixels():
    rgb = np.random.default_rng(0).integers(0, 255, (100, 90, 3), dtype=np.uint8)
    wins = grid_windows(100, 90, 32, 8)
    seen = []
    with Prefetcher(ArraySource(rgb), wins, depth=2) as pf:
        for win, px, valid in pf:
            assert (px == rgb[win.toslices()]).all() and valid.all()
            seen.append(win)
    assert seen == wins and not pf.alive


def test_prefetcher_runs_transform_in_reader_thread():
    rgb = np.zeros((40, 40, 3), np.uint8)
    names = []

    def pad(win, px, valid):
        names.append(threading.current_thread().name)
        return pad_to(px, valid, 32, 32)

    out = list(Prefetcher(ArraySource(rgb), grid_windows(40, 40, 32, 0) + [Window(0, 0, 5, 5)], transform=pad))
    assert all(px.shape == (32, 32, 3) for _, px, _ in out)
    assert out[-1][2].sum() == 25
    assert set(names) == {"tile-prefetch"}


def test_prefetcher_propagates_reader_errors():
    rgb = np.zeros((64, 64, 3), np.uint8)
    wins = grid_windows(64, 64, 16, 0)
    got = 0
    with pytest.raises(OSError, match="disk went away"):
        for _ in Prefetcher(ArraySource(rgb, fail_at=3), wins):
            got += 1
    assert got == 3


def test_prefetcher_stops_when_abandoned_and_reads_at_most_depth_ahead():
    rgb = np.zeros((512, 512, 3), np.uint8)
    src = ArraySource(rgb, delay=0.001)
    wins = grid_windows(512, 512, 16, 0)  # 1024 windows
    pf = Prefetcher(src, wins, depth=2)
    it = iter(pf)
    next(it)
    time.sleep(0.1)
    assert src.reads <= 1 + 2 + 1  # consumed + queued + one in hand
    it.close()  # abandoning the generator (what a `break` does) closes the reader
    assert not pf.alive
    assert src.reads < len(wins)


def test_prefetcher_can_be_closed_before_iterating_and_iterates_once():
    pf = Prefetcher(ArraySource(np.zeros((8, 8, 3), np.uint8)), grid_windows(8, 8, 4, 0))
    pf.close()
    pf2 = Prefetcher(ArraySource(np.zeros((8, 8, 3), np.uint8)), grid_windows(8, 8, 4, 0))
    assert len(list(pf2)) == 4
    with pytest.raises(RuntimeError):
        list(pf2)


class Collect:
    def __init__(self, h, w):
        self.out = np.full((h, w), -1.0, np.float32)
        self.calls = []

    def __call__(self, row0, band):
        self.calls.append((row0, band.shape[0]))
        self.out[row0:row0 + band.shape[0]] = band


def test_stitcher_constant_tiles_have_no_seams_and_flush_in_order():
    h, w, t, ov = 301, 257, 64, 16
    sink = Collect(h, w)
    st_ = Stitcher(h, w, sink)
    wt = blend_weights(t, t, ramp=ov)
    for win in grid_windows(h, w, t, ov):
        st_.add(win, np.full((t, t), 0.7, np.float32), wt[:win.height, :win.width])
    st_.finish()
    assert np.abs(sink.out - 0.7).max() < 1e-5
    rows = [r for r, _ in sink.calls]
    assert rows == sorted(rows) and sum(n for _, n in sink.calls) == h
    assert st_.peak_rows <= t  # only one tile height of rows is ever held


def test_stitcher_blends_a_smooth_field_exactly_and_marks_invalid_nan():
    h, w, t, ov = 200, 180, 48, 12
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.sin(yy / 17) + np.cos(xx / 23)
    valid = np.ones((h, w), bool)
    valid[50:70, 100:140] = False
    sink = Collect(h, w)
    st_ = Stitcher(h, w, sink)
    wt = blend_weights(t, t, ramp=ov)
    for win in grid_windows(h, w, t, ov):
        st_.add(win, field[win.toslices()], wt, valid[win.toslices()])
    st_.finish()
    assert np.isnan(sink.out[~valid]).all()
    assert np.abs(sink.out[valid] - field[valid]).max() < 1e-5


def test_stitcher_seams_vanish_when_tiles_disagree_at_their_edges():
    """Tiles whose borders are off (like a CNN's padding artefacts) blend to a result without a step at seams."""
    h, w, t, ov = 64, 400, 64, 32
    sink = Collect(h, w)
    st_ = Stitcher(h, w, sink)
    wt = blend_weights(t, t, ramp=ov)
    tile = np.ones((t, t), np.float32)
    tile[:, :4] = tile[:, -4:] = 3.0  # strong edge artefact in every tile
    for win in grid_windows(h, w, t, ov):
        st_.add(win, tile, wt)
    st_.finish()
    inner = sink.out[32, 8:-8]
    assert np.abs(inner - 1.0).max() < 0.02  # artefacts weighted out; no grid visible


def test_stitcher_rejects_out_of_order_and_bad_shapes():
    st_ = Stitcher(100, 100, lambda r, b: None)
    st_.add(Window(0, 50, 10, 10), np.zeros((10, 10)), np.ones((10, 10)))
    with pytest.raises(ValueError, match="row-major"):
        st_.add(Window(0, 0, 10, 10), np.zeros((10, 10)), np.ones((10, 10)))
    with pytest.raises(ValueError):
        st_.add(Window(0, 60, 10, 10), np.zeros((9, 10)), np.ones((10, 10)))
    with pytest.raises(ValueError):
        st_.add(Window(0, 95, 10, 10), np.zeros((10, 10)), np.ones((10, 10)))


def test_stitcher_memory_stays_bounded_on_a_tall_raster():
    """20000 rows stream through while only one tile height is held (the full raster never exists)."""
    h, w, t, ov = 20000, 64, 256, 32
    flushed = []
    st_ = Stitcher(h, w, lambda r, b: flushed.append((r, b.shape[0], float(np.nanmean(b)))))
    wt = blend_weights(t, t, ramp=ov)
    ones = np.ones((t, t), np.float32)
    for win in grid_windows(h, w, t, ov):
        st_.add(win, ones[:win.height, :win.width], wt[:win.height, :win.width])
    st_.finish()
    assert st_.peak_rows <= t
    assert sum(n for _, n, _ in flushed) == h
    assert all(abs(m - 1) < 1e-5 for _, _, m in flushed)


@pytest.mark.parametrize("src,dst", [((40, 30), (100, 75)), ((100, 75), (40, 30)), ((33, 33), (33, 33))])
def test_row_resampler_matches_whole_array_resize(src, dst):
    import cv2

    rng = np.random.default_rng(1)
    a = rng.random(src).astype(np.float32)
    sink = Collect(*dst)
    rs = RowResampler(*src, *dst, sink)
    r = 0
    for n in (7, 1, 13, 100):
        if r >= src[0]:
            break
        rs(r, a[r:r + n])
        r += a[r:r + n].shape[0]
    rs.finish()
    ref = cv2.resize(a, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR)
    if dst[0] >= src[0]:  # bilinear with aligned centres: identical to OpenCV when upsampling / same size
        assert np.abs(sink.out - ref).max() < 1e-4
    else:  # downsampling: same sampling positions, OpenCV's INTER_LINEAR too (no area averaging)
        assert np.abs(sink.out - ref).max() < 1e-4


def test_row_resampler_requires_every_row():
    rs = RowResampler(10, 10, 20, 20, lambda r, b: None)
    rs(0, np.zeros((5, 10), np.float32))
    with pytest.raises(ValueError):
        rs.finish()
    with pytest.raises(ValueError):
        rs(7, np.zeros((1, 10), np.float32))
