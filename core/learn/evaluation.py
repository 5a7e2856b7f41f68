"""Measure a detector: image/patch-level AUROC and xBD building- and tile-level AUROC.

Image scores and xBD heatmaps are computed on whole images at native resolution (the FCN is fully convolutional);
frames without georeferencing (photos) are resized so their short side is the model's input size, as in training.
Patch-level figures score blocks of the heatmap the product computes for the whole raster (:func:`patch_scores`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.detection.detector import Detector
from core.errors import CoreError, InputError
from core.i18n import _
from core.learn.samples import collect_images

DAMAGED = {"minor-damage", "major-damage", "destroyed"}
Progress = Callable[[int, int, str], None] | None


def _score_keys(s: np.ndarray) -> np.ndarray:
    """``s`` as finite numbers in the same order, for scikit-learn (which takes finite scores only): equal scores share
    a key, ±inf keep their ends and each NaN is its own key above everything, in input order (the order this module's
    AUROC has always given non-finite scores)."""
    order = np.argsort(s, kind="mergesort")  # NaN last, in input order
    ordered = s[order]
    keys = np.empty(len(s), np.float64)
    keys[order] = np.cumsum(np.concatenate([[0], ordered[1:] != ordered[:-1]]))  # NaN != NaN: a key each
    return keys


def _scores_labels(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if len(s) != len(y):
        raise ValueError(f"{len(s)} scores but {len(y)} labels")
    return (s if np.isfinite(s).all() else _score_keys(s)), y


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``: tied scores count one half, as average ranks do in
    the Mann–Whitney U); NaN if one class is empty. Labels: non-zero = positive."""
    s, y = _scores_labels(scores, labels)
    if y.all() or not y.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score  # ~2 s to import: only when a figure is computed

    return float(roc_auc_score(y, s))


def roc_curve(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) arrays for plotting, from (0, 0) to (1, 1): one point per distinct
    score (scikit-learn's ``roc_curve``, every threshold kept), so the area under it is :func:`auroc`. A rate whose
    class is empty stays 0."""
    s, y = _scores_labels(scores, labels)
    if len(s) == 0:
        return np.zeros(1), np.zeros(1)
    import warnings

    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import roc_curve as _roc_curve

    with warnings.catch_warnings():  # one class empty: scikit-learn warns and gives NaN rates
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, _thresholds = _roc_curve(y, s, pos_label=True, drop_intermediate=False)
    return np.nan_to_num(fpr, nan=0.0), np.nan_to_num(tpr, nan=0.0)


def heatmap_of(det: Detector, rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Calibrated full-resolution heatmap and calibrated image score of one RGB image."""
    maps, scores = det.predict(rgb[None])
    return np.asarray(det.calibration.pixel(maps[0])), det.calibration.image(float(scores[0]))


def _frame_input(det: Detector, rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = det.input_size / min(h, w)
    return cv2.resize(rgb, (max(32, round(w * s)), max(32, round(h * s))), interpolation=cv2.INTER_AREA)


def valid_blocks(valid: np.ndarray, patch: int) -> Iterator[tuple[slice, slice]]:
    """(rows, cols) of each whole ``patch``×``patch`` block of ``valid`` (row-major) that is at least 90 % valid:
    the patches a patch-level evaluation scores."""
    for r in range(0, valid.shape[0] - patch + 1, patch):
        for c in range(0, valid.shape[1] - patch + 1, patch):
            block = (slice(r, r + patch), slice(c, c + patch))
            if valid[block].mean() >= 0.9:
                yield block


def patch_means(heat: np.ndarray, valid: np.ndarray, patch: int) -> list[float]:
    """Mean of ``heat`` over the valid, finite pixels of each of :func:`valid_blocks`: a patch's score, by the rule
    of a building's score (the mean inside its polygon)."""
    out = []
    for block in valid_blocks(valid, patch):
        h = heat[block][valid[block]]
        h = h[np.isfinite(h)]
        if h.size:
            out.append(float(h.mean()))
    return out


def patch_scores(det: Detector, path: Path, patch: int) -> list[float]:
    """Patch scores of a georeferenced raster *in context*; a photo is one unit, its frame's mean calibrated heat.

    The raster is analysed as the product analyses it (:func:`core.detection.pipeline.analyze_scene`: working scale,
    tiles with their surroundings, calibration) and each patch gets the mean of that heatmap over its valid pixels.
    Cropping patches and scoring each alone measured their zero-padded edges instead: a pretrained trunk's
    receptive field (196 px for VGG16 conv4_3) is wider than a 128-px patch, so a model banked on whole scenes found
    every crop unusual at its edges (the default model on the Joplin chips: 0.907 cropped, 0.957 in context).
    Exact-black nodata borders are not imagery: never scored (training leaves them out too).
    """
    import tempfile

    import rasterio
    from rasterio.windows import Window

    from core.detection.pipeline import analyze_scene
    from core.imagery.nodata import read_valid
    from core.imagery.reader import open_scene

    scene = open_scene(path)
    try:
        if scene.georef is None:  # a photo: the same rule over its whole frame, at the size it is scored
            rgb, _valid = read_valid(scene)
            return [float(np.nanmean(heatmap_of(det, _frame_input(det, rgb))[0]))]
        out: list[float] = []
        with tempfile.TemporaryDirectory() as tmp:
            res = analyze_scene(scene, det, tmp)
            if res.heatmap_path is None:
                raise InputError(_("{name}: the analysis wrote no heatmap; analyse the file on the Analyze page to "
                                   "see why").format(name=path.name))
            with rasterio.open(res.heatmap_path) as ds:
                for r in range(0, scene.height - patch + 1, patch):  # one band of patches at a time: bounded memory
                    win = Window(0, r, scene.width, patch)
                    _rgb, valid = read_valid(scene, win)
                    out += patch_means(ds.read(1, window=win), valid, patch)
        return out
    finally:
        scene.close()


def _units(det: Detector, path: Path) -> list[np.ndarray]:
    """What gets one image score without patches: the whole raster, or the whole frame resized to the input size."""
    from core.imagery.nodata import read_valid
    from core.imagery.reader import open_scene

    scene = open_scene(path)
    try:
        rgb, _valid = read_valid(scene)
    finally:
        scene.close()
    return [_frame_input(det, rgb)] if scene.georef is None else [rgb]


def evaluate_images(det: Detector, normal: Sequence[str], anomalous: Sequence[str], *, patch: int | None = None,
                    progress: Progress = None) -> dict[str, Any]:
    """Image-level AUROC of normal vs anomalous inputs (calibrated image scores); with ``patch``, patch-level: every
    ``patch``-px block of each raster's heatmap in context, and each photo whole, scored by mean calibrated heat
    (:func:`patch_scores`)."""
    files = [(p, 0) for p in collect_images(normal, "normal")]
    files += [(p, 1) for p in collect_images(anomalous, "anomalous")]
    scores, labels, skipped = [], [], []
    for k, (path, y) in enumerate(files):
        if progress:
            progress(k, len(files), path.name)
        try:
            got = patch_scores(det, path, patch) if patch else [
                det.calibration.image(float(det.predict(u[None])[1][0])) for u in _units(det, path)]
        except CoreError as exc:
            skipped.append(f"{path.name}: {exc}")
            continue
        scores += got
        labels += [y] * len(got)
    if not scores:
        if skipped:
            raise InputError(_("nothing could be scored: {reasons}; give readable images (PNG, JPEG, GeoTIFF)").format(
                reasons="; ".join(skipped[:3])))
        raise InputError(_("nothing could be scored: no raster has a {patch} px patch of valid pixels; give a smaller "
                           "--patch").format(patch=patch))
    return {"auroc": auroc(scores, labels), "n_normal": labels.count(0), "n_anomalous": labels.count(1),
            "unit": f"patch {patch}px" if patch else "image", "scores": scores, "labels": labels,
            "skipped": skipped}


def building_scores(heat: np.ndarray, buildings: list[dict[str, Any]]) -> list[tuple[float, int, tuple]]:
    """(mean heat inside the polygon, 1 if damaged else 0, polygon centre) per graded xBD building; un-classified
    buildings and polygons with no finite heat are skipped."""
    out = []
    for b in buildings:
        sub = b.get("subtype")
        if sub not in DAMAGED and sub != "no-damage":
            continue
        poly = np.round(np.asarray(b["polygon_px"], np.float64)).astype(np.int32)
        mask = np.zeros(heat.shape, np.uint8)
        cv2.fillPoly(mask, [poly], 1)
        vals = heat[mask.astype(bool)]
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            continue
        out.append((float(vals.mean()), int(sub in DAMAGED), tuple(poly.mean(axis=0))))
    return out


def evaluate_xbd(det: Detector, root: str | Path, *, tile: int = 256, progress: Progress = None) -> dict[str, Any]:
    """xBD layout (images/, labels/): building-level AUROC (damaged vs no-damage, mean heatmap inside each post
    building polygon) and tile-level AUROC (``tile``-px cells of post images holding buildings: any damaged vs none).

    Where damaged and undamaged buildings rarely share an image, the building figure mostly ranks whole scenes; to
    show how much, it also gives the AUROC of each building's image median alone (``building_auroc_scene_median``),
    of each building scored relative to its image (mean minus the image median, over the median-to-90th-percentile
    spread: ``building_auroc_within_scene``), and how many images hold both classes.
    """
    from core.imagery.reader import open_scene

    root = Path(root)
    posts = sorted((root / "images").glob("*_post_disaster.png"))
    if not posts:
        raise InputError(_("no xBD post-event images (*_post_disaster.png) under {value}").format(
                             value=root / 'images'))
    b_scores, b_labels, t_scores, t_labels, img_scores = [], [], [], [], []
    b_scene, b_relative, mixed = [], [], 0  # how much of the building figure is a ranking of whole scenes
    for k, path in enumerate(posts):
        if progress:
            progress(k, len(posts), path.name)
        scene = open_scene(path)
        try:
            rgb, _valid = scene.read()
        finally:
            scene.close()
        buildings = scene.meta.get("xbd", {}).get("buildings", [])
        heat, img_score = heatmap_of(det, rgb)
        img_scores.append(img_score)
        bs = building_scores(heat, buildings)
        b_scores += [b[0] for b in bs]
        b_labels += [b[1] for b in bs]
        med, q90 = float(np.nanmedian(heat)), float(np.nanpercentile(heat, 90))
        b_scene += [med] * len(bs)
        b_relative += [(b[0] - med) / max(q90 - med, 1e-6) for b in bs]
        mixed += len({b[1] for b in bs}) == 2
        for r in range(0, heat.shape[0] - tile + 1, tile):
            for c in range(0, heat.shape[1] - tile + 1, tile):
                inside = [b for b in bs if r <= b[2][1] < r + tile and c <= b[2][0] < c + tile]
                if inside:
                    t_scores.append(float(np.nanmean(heat[r:r + tile, c:c + tile])))
                    t_labels.append(int(any(b[1] for b in inside)))
    return {"building_auroc": auroc(b_scores, b_labels), "n_damaged": int(sum(b_labels)),
            "n_undamaged": len(b_labels) - int(sum(b_labels)), "tile_auroc": auroc(t_scores, t_labels),
            "n_tiles": len(t_labels), "n_damaged_tiles": int(sum(t_labels)), "images": len(posts),
            "images_with_both_classes": mixed, "building_auroc_scene_median": auroc(b_scene, b_labels),
            "building_auroc_within_scene": auroc(b_relative, b_labels),
            "building_scores": b_scores, "building_labels": b_labels}
