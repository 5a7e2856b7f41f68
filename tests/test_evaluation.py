"""AUROC against hand-computed values."""

import math

import numpy as np
import pytest

from core.learn.evaluation import auroc, roc_curve


def test_auroc_hand_values():
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    # one inversion out of 4 pairs
    assert auroc([0.1, 0.6, 0.5, 0.9], [0, 0, 1, 1]) == 0.75
    # ties count one half
    assert auroc([0.5, 0.5], [0, 1]) == 0.5
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 60).astype(float)
    y = rng.integers(0, 2, 60)
    pos, neg = s[y == 1], s[y == 0]
    ref = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert abs(auroc(s, y) - ref) < 1e-12


def test_roc_curve_endpoints():
    fpr, tpr = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def _rank_auroc(s, y):
    """The hand-written Mann–Whitney AUROC this module had before it used scikit-learn: the reference."""
    s, y = np.asarray(s, np.float64), np.asarray(y).astype(bool)
    order = np.argsort(s, kind="mergesort")
    ranks, ordered, i = np.empty(len(s)), s[order], 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and ordered[j + 1] == ordered[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return (ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def test_auroc_agrees_with_average_ranks_including_ties_and_non_finite_scores():
    rng = np.random.default_rng(1)
    for k in range(200):
        n = int(rng.integers(2, 80))
        s = rng.integers(0, 6, n).astype(float) if k % 2 else rng.normal(size=n)
        for v in (np.nan, np.inf, -np.inf):  # unscored buildings reach the benchmarks as NaN: ranked on top as before
            s[rng.random(n) < 0.1] = v
        y = rng.integers(0, 2, n)
        if 0 < y.sum() < n:
            assert auroc(s, y) == pytest.approx(_rank_auroc(s, y), abs=1e-12)
    assert auroc([np.nan, 0.1, 0.2], [1, 0, 0]) == 1.0 and auroc([0.3, np.nan], [1, 0]) == 0.0


def test_roc_curve_is_one_point_per_score_and_its_area_is_the_auroc():
    rng = np.random.default_rng(2)
    s, y = rng.normal(size=300), rng.integers(0, 2, 300)
    fpr, tpr = roc_curve(s, y)
    order = np.argsort(-s, kind="mergesort")  # distinct scores: the walk down the sorted scores, point by point
    assert np.array_equal(fpr, np.concatenate([[0], np.cumsum(y[order] == 0)]) / (y == 0).sum())
    assert np.array_equal(tpr, np.concatenate([[0], np.cumsum(y[order] == 1)]) / (y == 1).sum())
    s = np.round(s)  # ties: one point per distinct score, the curve crosses a tie on the diagonal
    fpr, tpr = roc_curve(s, y)
    assert len(fpr) == len(np.unique(s)) + 1 and np.trapezoid(tpr, fpr) == pytest.approx(auroc(s, y), abs=1e-12)
    fpr, tpr = roc_curve([0.2, 0.9], [1, 1])  # one class empty: its rate stays 0
    assert np.array_equal(fpr, [0, 0, 0]) and np.array_equal(tpr, [0, 0.5, 1])


def test_patch_means_skip_mostly_invalid_blocks_and_leave_out_nodata():
    from core.learn.evaluation import patch_means

    heat = np.arange(16, dtype=np.float32).reshape(4, 4)
    valid = np.ones((4, 4), bool)
    valid[0, 2] = False  # 3 of 4 valid (< 90 %): the top-right block is not scored
    heat[3, 0] = np.nan  # a NaN in a valid block is left out of its mean
    assert patch_means(heat, valid, 2) == [pytest.approx((0 + 1 + 4 + 5) / 4),
                                           pytest.approx((8 + 9 + 13) / 3), pytest.approx((10 + 11 + 14 + 15) / 4)]
    assert patch_means(heat, valid, 5) == []  # no whole block fits


def test_patches_are_scored_in_the_heatmap_the_product_computes(tiny_model, shared_data, tmp_path):
    """A raster's patches are blocks of analyze_scene's heatmap of the whole raster (working scale, tiles with their
    surroundings), not crops scored alone; a photo is one unit."""
    import rasterio

    from core.detection.detector import Detector
    from core.detection.pipeline import analyze_scene
    from core.imagery.nodata import read_valid
    from core.imagery.reader import open_scene
    from core.learn.evaluation import evaluate_images, patch_means, patch_scores

    chip = shared_data / "geotiff/joplin_tornado_xview2deploy/chips_aligned/post/0_post.tif"
    photo = sorted((shared_data / "aider/fire").glob("*.jpg"))[0]
    det = Detector.load(tiny_model, device="cpu")
    scene = open_scene(chip)
    try:
        _rgb, valid = read_valid(scene)
        with rasterio.open(analyze_scene(scene, det, tmp_path).heatmap_path) as ds:
            expected = patch_means(ds.read(1), valid, 256)
    finally:
        scene.close()
    got = patch_scores(det, chip, 256)
    assert 0 < len(got) < 16  # the chip's nodata border leaves some blocks out
    assert got == pytest.approx(expected, rel=1e-6)
    assert len(patch_scores(det, photo, 256)) == 1
    r = evaluate_images(det, [str(chip)], [str(photo)], patch=256)
    assert (r["n_normal"], r["n_anomalous"]) == (len(got), 1) and r["unit"] == "patch 256px"
