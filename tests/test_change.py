"""Pre/post change detection on real imagery: pairing, co-registration, the change heatmap and its findings."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from core.change.features import GENERIC_CALIBRATION, early_levels, fill_invalid, level_specs, trunk_levels
from core.change.pairing import name_key, names_match
from core.change.scene import (
    ChangeScorer,
    PreOnGrid,
    analyze_pair,
    change_scene,
    check_pair,
    coregister,
    fit_change_calibration,
    pair_inputs,
    pair_report,
)
from core.change.texts import coregistration_text
from core.detection.calibration import Calibration
from core.detection.detector import Detector
from core.errors import InputError
from core.imagery.nodata import black_nodata
from core.imagery.reader import open_scene
from core.imagery.sources import FrameSource
from core.learn.evaluation import auroc, building_scores
from core.models import build_model
from core.types import Scene
from tests.support.data import REPO, need

torch.set_num_threads(1)
JOPLIN = "geotiff/joplin_tornado_xview2deploy"
HARVEY = "xbd/harvey/images"


@pytest.fixture(scope="module")
def joplin(shared_data: Path) -> Path:
    return need(shared_data / JOPLIN)


@pytest.fixture(scope="module")
def detector(shared_data: Path) -> Detector:
    """An untrained fcdd-resnet18 (seeded), FCDD-calibrated on a real pre-event Joplin tile."""
    torch.manual_seed(0)
    det = Detector.from_model(build_model("fcdd-resnet18"), meta={"name": "seeded", "tile_size": 512},
                               precision="fp32")  # the pipeline's own arithmetic, not bf16 noise
    pre = open_scene(need(shared_data / JOPLIN / "pre" / "tile_337-9136.tif"))
    rgb, _ = pre.read(Window(0, 0, 1024, 1024))
    pre.close()
    maps, scores = det.predict(np.stack([rgb[r:r + 512, c:c + 512] for r in (0, 512) for c in (0, 512)]))
    det.calibration = Calibration.fit(maps, scores)
    return det


def _names(d: dict[str, str]) -> dict[str, str]:
    return {Path(k).name: Path(v).name for k, v in d.items()}


# ------------------------------------------------------------------------------------------------------ pairing


def test_name_rules() -> None:
    assert name_key("hurricane-harvey_00000221_post_disaster.png") == ("hurricane_harvey_00000221", "post")
    assert name_key("0_pre.tif") == ("0", "pre")
    assert name_key("site3-before.JPG") == ("site3", "pre")
    assert name_key("postal_office.png") == ("postal_office", None)  # "post" inside a word is not a token
    assert names_match("a/0_post.tif", "b/0_pre.tif")
    assert names_match("site3-after.jpg", "site3-before.jpg")
    assert not names_match("0_post.tif", "1_pre.tif")
    assert not names_match("0_pre.tif", "0_post.tif")  # a pre is never the post of a pair


def test_joplin_pre_tiles_pair_with_post_tiles_and_chips_across_crs(joplin: Path) -> None:
    pres = sorted(str(p) for p in (joplin / "pre").glob("*.tif"))  # EPSG:26915
    posts = sorted(str(p) for p in (joplin / "post").glob("*.tif"))  # EPSG:4326
    chips = sorted(str(p) for p in (joplin / "chips_aligned" / "post").glob("*.tif"))  # EPSG:32615
    got = _names(pair_inputs(posts + chips, pres))
    assert got == {"tile_31500-5137.tif": "tile_337-9136.tif", "tile_31500-6161.tif": "tile_337-10160.tif",
                   "tile_32524-5137.tif": "tile_1361-9136.tif", "tile_32524-6161.tif": "tile_1361-10160.tif",
                   "0_post.tif": "tile_337-9136.tif", "1_post.tif": "tile_337-10160.tif",
                   "2_post.tif": "tile_1361-9136.tif", "3_post.tif": "tile_1361-10160.tif"}
    rep = {Path(r.post).name: r for r in pair_report(posts + chips, pres)}
    assert rep["tile_31500-5137.tif"].rule == "overlap"
    assert 0.45 < rep["tile_31500-5137.tif"].overlap < 0.6
    east = rep["tile_33548-5137.tif"]  # the eastern post tiles reach past the pre tiles: < 30 % covered
    assert east.pre is None and east.rule is None and "30%" in east.note
    assert max(c["overlap"] for c in east.candidates) < 0.3
    json.dumps([r.to_dict() for r in rep.values()])  # the UI stores and shows it


def test_aligned_chips_prefer_their_own_pre_chip(joplin: Path) -> None:
    pres = sorted(str(p) for p in (joplin / "pre").glob("*.tif")) + \
        sorted(str(p) for p in (joplin / "chips_aligned" / "pre").glob("*.tif"))
    chips = sorted(str(p) for p in (joplin / "chips_aligned" / "post").glob("*.tif"))
    rep = pair_report(chips, pres)
    assert [(Path(r.post).name, Path(r.pre).name) for r in rep] == [(f"{i}_post.tif", f"{i}_pre.tif")
                                                                    for i in range(4)]
    assert all(r.rule == "overlap" and r.overlap > 0.99 and "names agree" in r.note for r in rep)


def test_xbd_pairs_by_name_without_georeference(shared_data: Path, tmp_path: Path) -> None:
    src = need(shared_data / HARVEY)
    for stem in ("hurricane-harvey_00000221", "hurricane-harvey_00000224"):
        for phase in ("pre", "post"):  # copied without their labels: no georeference, only the names
            shutil.copy(src / f"{stem}_{phase}_disaster.png", tmp_path / f"{stem}_{phase}_disaster.png")
    posts = sorted(str(p) for p in tmp_path.glob("*_post_*.png"))
    pres = sorted(str(p) for p in tmp_path.glob("*_pre_*.png"))
    rep = pair_report(posts, pres)
    assert all(r.rule == "name" and r.overlap is None for r in rep)
    assert _names(pair_inputs(posts, pres)) == {
        "hurricane-harvey_00000221_post_disaster.png": "hurricane-harvey_00000221_pre_disaster.png",
        "hurricane-harvey_00000224_post_disaster.png": "hurricane-harvey_00000224_pre_disaster.png"}


def test_all_xbd_harvey_pairs_are_found(shared_data: Path) -> None:
    src = need(shared_data / HARVEY)
    posts = sorted(str(p) for p in src.glob("*_post_disaster.png"))
    pairs = pair_inputs(posts, sorted(str(p) for p in src.glob("*_pre_disaster.png")))
    assert len(pairs) == 12 and all(v == k.replace("_post_", "_pre_") for k, v in pairs.items())


def test_manual_pair_reports_overlap(joplin: Path) -> None:
    info = check_pair(str(joplin / "post" / "tile_33548-5137.tif"), str(joplin / "pre" / "tile_1361-9136.tif"))
    assert info.rule == "manual" and 0.0 < info.overlap < 0.3
    with pytest.raises(InputError):
        check_pair(str(joplin / "post" / "tile_33548-5137.tif"), str(joplin / "missing.tif"))


# ------------------------------------------------------------------------------------------------ coregistration


def test_rolled_chip_shift_is_recovered(joplin: Path) -> None:
    chip = open_scene(joplin / "chips_aligned" / "pre" / "0_pre.tif")
    rgb, _ = chip.read()
    rolled = np.roll(rgb, shift=(-3, 5), axis=(0, 1))  # content moved 5 px right and 3 px up
    inner = np.zeros(rgb.shape[:2], bool)
    inner[8:-8, 8:-8] = True
    # frames without georeference (paired by name): the shift is measured and corrected
    post = Scene(name="p", width=chip.width, height=chip.height, source=FrameSource(rgb))
    pre = Scene(name="rolled", width=chip.width, height=chip.height, source=FrameSource(rolled))
    out, valid, info = coregister(post, pre)
    assert info["method"] == "identity" and info["shift_applied"]
    assert np.hypot(info["shift_px"][0] - 5, info["shift_px"][1] + 3) < 1.0
    assert np.abs(out[inner & valid].astype(int) - rgb[inner & valid].astype(int)).mean() < 1.0
    # one georeferenced grid: measured and reported (px and m) but, by default, trusted over the measurement
    geo_pre = dataclasses.replace(pre, georef=chip.georef)
    out, valid, info = coregister(chip, geo_pre)
    assert info["shift_confident"] and not info["shift_applied"] and info["shift_note"]["code"] == "agreed"
    assert "parallax" in coregistration_text(info)  # said in words when shown, not stored in one language
    assert np.hypot(info["shift_px"][0] - 5, info["shift_px"][1] + 3) < 1.0
    assert 2.5 < info["shift_m"][0] < 3.5 and -2.4 < info["shift_m"][1] < -1.6  # 0.6 x 0.674 m pixels
    assert np.array_equal(out, rolled)
    out, valid, info = coregister(chip, geo_pre, residual="apply")
    assert info["shift_applied"]
    assert np.abs(out[inner & valid].astype(int) - rgb[inner & valid].astype(int)).mean() < 1.0
    _, _, info = coregister(chip, geo_pre, residual="off")
    assert info["shift_px"] == [0.0, 0.0] and not info["shift_applied"]
    with pytest.raises(InputError):
        coregister(chip, geo_pre, residual="sometimes")


def test_pre_tile_in_another_crs_lands_on_the_chip_and_a_known_offset_is_recovered(joplin: Path) -> None:
    chip = open_scene(joplin / "chips_aligned" / "pre" / "0_pre.tif")  # EPSG:32615, 0.6 x 0.674 m pixels
    tile = open_scene(joplin / "pre" / "tile_337-9136.tif")  # EPSG:26915, 0.6 m: the chip was cut from it
    ref, _ = chip.read()
    out, valid, info = coregister(chip, tile)
    assert info["method"] == "georef" and info["pre_crs"] == "EPSG:26915"
    assert 0.4 < valid.mean() < 0.6  # the tile covers the chip's northern half
    assert np.hypot(*info["shift_px"]) < 1.0
    assert np.abs(out[valid].astype(int) - ref[valid].astype(int)).mean() < 3.0
    t = tile.georef.transform
    moved = dataclasses.replace(tile, georef=dataclasses.replace(tile.georef, transform=Affine(t.a, t.b, t.c + 2.4, t.d,
                                                                                               t.e, t.f - 1.2)))
    _, _, info = coregister(chip, moved)  # georef 2.4 m too far east, 1.2 m too far south
    assert info["shift_applied"]
    assert np.hypot(info["shift_px"][0] - 2.4 / 0.6, info["shift_px"][1] - 1.2 / 0.674) < 1.0


def test_windowed_reads_match_the_whole_image(joplin: Path) -> None:
    chip = open_scene(joplin / "chips_aligned" / "post" / "0_post.tif")
    tile = open_scene(joplin / "pre" / "tile_337-9136.tif")
    grid = PreOnGrid(chip, tile, shift=(1.5, -0.5))
    whole, wvalid = grid.read(Window(0, 0, chip.width, chip.height))
    part, pvalid = grid.read(Window(200, 300, 320, 256))
    assert np.array_equal(pvalid, wvalid[300:556, 200:520])
    diff = np.abs(part.astype(int) - whole[300:556, 200:520].astype(int))[pvalid]
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 2  # GDAL's warper chunks differently, nothing more


# ------------------------------------------------------------------------------------------------ change score


def test_trunk_stages_and_calibration(detector: Detector, joplin: Path) -> None:
    specs = level_specs(detector)
    assert [s["stride"] for s in specs] == [2, 4, 8] and early_levels(detector) == [0, 1]
    tile = open_scene(joplin / "pre" / "tile_337-9136.tif")
    rgb, _ = tile.read(Window(0, 0, 256, 256))
    last = trunk_levels(detector, rgb[None], [2])[0]
    assert np.allclose(last, detector.features(rgb[None]), atol=1e-4)  # the unrolled chain is the trunk
    patches = [rgb[:128, :128], rgb[128:, 128:], rgb[:128, 128:]]
    cal = fit_change_calibration(detector, patches)
    json.dumps(cal)
    assert cal["levels"] == [0, 1] and 0 < cal["q50"] < cal["q99"] < cal["q999"] and cal["threshold"] >= 1
    scorer = ChangeScorer(detector, cal)
    scorer.fit_scene(rgb[None])
    same = scorer.heat(rgb[None], rgb[None])[0]
    assert np.allclose(same, -cal["q50"] / (cal["q99"] - cal["q50"]), atol=1e-4)  # no change at all
    flood = rgb.copy()
    flood[64:192, 64:192] = (120, 95, 60)  # a muddy water surface
    heat = scorer.heat(flood[None], rgb[None])[0]
    assert heat[100:156, 100:156].mean() > cal["threshold"] > heat[:16, 240:].mean()
    assert ChangeScorer(detector, None).calibration_source.startswith("generic")
    assert ChangeScorer(detector, None).calibration["q99"] == GENERIC_CALIBRATION["q99"]


def _harvey_model(tiny_model_path: Path) -> Detector:
    for p in (os.environ.get("BDA_CHANGE_MODEL"), REPO / "assets" / "models" / "fcdd-resnet18.pt"):
        if p and Path(p).is_file():
            return Detector.load(p, device="cpu")
    return Detector.load(tiny_model_path, device="cpu")


def test_change_beats_naive_difference_on_xbd_harvey(shared_data: Path, tiny_model: Path) -> None:
    """Building-level AUROC over the 12 pairs (39 damaged / 395 intact): the change score vs the blurred RGB
    difference (sigma 8 px); benchmarks/bench_change.py prints the full figures."""
    src = need(shared_data / HARVEY)
    det = _harvey_model(tiny_model)
    change, naive = [], []
    for post_path in sorted(src.glob("*_post_disaster.png")):
        post, pre = open_scene(post_path), open_scene(str(post_path).replace("_post_", "_pre_"))
        a, va = post.read()
        b, vb, _ = coregister(post, pre, residual="off")  # one grid: "auto" would not apply it either
        va, vb = va & ~black_nodata(a), vb & ~black_nodata(b)
        both = va & vb
        buildings = post.meta["xbd"]["buildings"]
        af, bf = fill_invalid(a, va, b, vb)
        scorer = ChangeScorer(det)
        scorer.fit_scene(bf[None], both[None])
        heat = np.where(both, scorer.heat(af[None], bf[None])[0], np.nan)
        diff = np.sqrt(((cv2.GaussianBlur(a.astype(np.float32), (0, 0), 8)
                         - cv2.GaussianBlur(b.astype(np.float32), (0, 0), 8)) ** 2).sum(2))
        change += building_scores(heat, buildings)
        naive += building_scores(np.where(both, diff, np.nan), buildings)
    y = [x[1] for x in change]
    assert sum(y) == 39 and len(y) == 434
    a_change, a_naive = auroc([x[0] for x in change], y), auroc([x[0] for x in naive], [x[1] for x in naive])
    print(f"building AUROC: change {a_change:.3f}, naive {a_naive:.3f} ({det.name})")
    assert a_change >= 0.90, (a_change, a_naive)
    assert a_change >= a_naive + 0.03, (a_change, a_naive)


# ------------------------------------------------------------------------------------------------ analyze_pair


def _check_outputs(res, post_path: Path, pre_name: str) -> None:
    with rasterio.open(post_path) as src:
        crs, transform, shape = src.crs, src.transform, src.shape
    assert res.change_path.name == f"{post_path.stem}_change.tif" and res.change_path.is_file()
    with rasterio.open(res.change_path) as ds:
        assert ds.dtypes[0] == "float32" and ds.shape == shape
        if crs is not None:
            assert ds.crs == crs and ds.transform.almost_equals(transform)
        assert ds.descriptions[0].startswith("change score") and ds.tags()["pre_source"] == pre_name
    assert res.pre_scene_name == pre_name and Path(res.meta["pre_source"]).name == pre_name
    assert res.heatmap_path.is_file() and Path(res.meta["change"]["overlay_path"]).is_file()
    assert {"shift_px", "shift_m", "method", "shift_applied"} <= set(res.meta["coregistration"])
    for f in res.findings:
        assert f.source_name == post_path.name and f.pre_source_name == pre_name
    json.dumps(res.to_dict(), default=str)


def test_analyze_pair_xbd(detector: Detector, shared_data: Path, tmp_path: Path) -> None:
    post_path = need(shared_data / HARVEY / "hurricane-harvey_00000224_post_disaster.png")
    pre_path = post_path.with_name("hurricane-harvey_00000224_pre_disaster.png")
    post = open_scene(post_path)
    calls: list[tuple[int, int]] = []
    try:
        res = analyze_pair(post, pre_path, detector, tmp_path, progress=lambda d, t: calls.append((d, t)))
    finally:
        post.close()
    with rasterio.open(post_path) as src:  # xBD PNG: the change raster gets the fitted georef instead
        assert src.shape == (1024, 1024)
    _check_outputs(res, post_path, pre_path.name)
    with rasterio.open(res.change_path) as ds:
        assert ds.crs.to_string() == post.georef.crs
        assert np.allclose(tuple(ds.transform), tuple(post.georef.transform))
        change = ds.read(1)
    assert res.findings and res.verdict == "anomalous"  # a flooded scene
    f = res.findings[0]
    assert f.pre_source_date and f.source_date and f.pre_source_date < f.source_date
    assert f.geometry is not None and f.area_m2 > 0
    assert np.isnan(change[:40]).all()  # the black nodata border at the top is not "change"
    assert calls[-1][0] == calls[-1][1] >= 2  # both passes (change, then post-only) count their tiles


def test_analyze_pair_joplin_chips(detector: Detector, joplin: Path, tmp_path: Path) -> None:
    post_path = joplin / "chips_aligned" / "post" / "1_post.tif"
    post = open_scene(post_path)
    try:
        res = analyze_pair(post, joplin / "chips_aligned" / "pre" / "1_pre.tif", detector, tmp_path)
        same = analyze_pair(post, joplin / "chips_aligned" / "post" / "1_post.tif", detector, tmp_path / "same")
    finally:
        post.close()
    _check_outputs(res, post_path, "1_pre.tif")
    co = res.meta["coregistration"]  # the aligned chips' grids differ by a fraction of a pixel
    assert co["method"] == "georef" and co["pre_crs"] == co["post_crs"] == "EPSG:32615"
    assert res.findings  # tornado debris
    assert not same.findings  # an image compared with itself has no change
    assert same.meta["change"]["stats"]["max"] < 0


class _Recording:
    """A pixel source that remembers the size of every window read from it."""

    def __init__(self, inner) -> None:
        self.inner, self.sizes = inner, []

    def read(self, window: Window):
        self.sizes.append((window.height, window.width))
        return self.inner.read(window)

    def close(self) -> None:
        self.inner.close()


def test_change_of_a_raster_in_another_crs_reads_the_pre_window_by_window(detector: Detector, joplin: Path,
                                                                          tmp_path: Path) -> None:
    post = open_scene(joplin / "post" / "tile_31500-5137.tif")  # EPSG:4326
    pre = open_scene(joplin / "pre" / "tile_337-9136.tif")  # EPSG:26915, covers about half of it
    rec = _Recording(pre.source)
    pre.source = rec
    try:
        writer, scorer, tiles = change_scene(post, pre, detector, tmp_path / "c.tif", shift=(0.0, 0.0),
                                             tile_size=256)
    finally:
        post.close()
        pre.close()
    assert tiles > 16 and len(rec.sizes) > 10  # windows the pre does not reach are not read at all
    assert max(h * w for h, w in rec.sizes) < 0.15 * pre.width * pre.height  # never the whole pre raster
    with rasterio.open(tmp_path / "c.tif") as ds, rasterio.open(joplin / "post" / "tile_31500-5137.tif") as src:
        assert ds.crs == src.crs and ds.transform.almost_equals(src.transform) and ds.shape == src.shape
        change = ds.read(1)
    covered = np.isfinite(change).mean()
    assert 0.35 < covered < 0.65  # NaN where the pre tile does not reach
    assert writer.stats["max"] > scorer.calibration["threshold"]  # tornado debris on the covered half


def test_analyze_pair_rejects_a_pre_image_elsewhere(detector: Detector, joplin: Path, tmp_path: Path) -> None:
    post = open_scene(joplin / "chips_aligned" / "post" / "1_post.tif")
    try:
        with pytest.raises(InputError, match="does not overlap"):
            analyze_pair(post, joplin / "pre" / "tile_337-9136.tif", detector, tmp_path)
    finally:
        post.close()
    assert not list(tmp_path.glob("*_change.tif"))
