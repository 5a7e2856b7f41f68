"""The report of a real pre/post analysis: findings, maps, thresholds and package all speak of the change heatmap.

One Joplin xView2 pair goes through the user's route (``python -m core analyze POST --pre PRE`` with a tiny real
model, then ``python -m core report --analysis OUT``): the findings come from the change heatmap, so the PDF must
state the change threshold as the finding threshold, say how the pre image was co-registered, draw the change
raster, and pack the change GeoTIFF and overlay. The post image's own anomaly threshold is set to a value no
other number in the report takes (``--threshold 9.876``), so any place that states it can be found.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from pypdf import PdfReader

from core.change.texts import grid_method_text
from core.cli.analyze import load_analysis
from core.cli.main import main
from core.report import ReportContext, analysis_model_info, write_csv
from core.report.figures import scene_map
from core.report.rasters import SceneCache, read_scores
from core.report.summary import HEAT_PREVIEW_SIDE, summarise
from core.types import SceneResult
from tests.support.data import need
from tests.support.report import JOPLIN

pytestmark = pytest.mark.slow
torch.set_num_threads(1)

POST_ONLY = 9.88  #: the post image's anomaly threshold (9.876 given, stored to two decimals): never the pair's


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def pair(shared_data: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Analyse 0_post.tif against 0_pre.tif and report it, both through the CLI."""
    chips = shared_data / JOPLIN / "chips_aligned"
    post, pre = need(chips / "post" / "0_post.tif"), need(chips / "pre" / "0_pre.tif")
    tmp = tmp_path_factory.mktemp("prepost")
    run, rep = tmp / "run", tmp / "report"
    assert main(["analyze", str(post), "--pre", str(pre), "--model", str(tiny_model), "--threshold", str(POST_ONLY),
                 "--out", str(run), "--no-workspace", "--quiet"]) == 0
    assert main(["report", "--analysis", str(run), "--format", "pdf,zip", "--out", str(rep),
                 "--handling", "TLP:CLEAR"]) == 0
    analysis, (result,) = load_analysis(run)
    pages = [p.extract_text() or "" for p in PdfReader(rep / "report.pdf").pages]
    return {"analysis": analysis, "result": result, "pdf": rep / "report.pdf", "zip": rep / "report_package.zip",
            "pages": pages, "text": "\n".join(pages)}


def _change_threshold(r: SceneResult) -> float:
    return float(r.meta["change"]["threshold"])


def test_the_pair_is_what_the_tests_assume(pair: dict[str, Any]) -> None:
    r = pair["result"]
    t = _change_threshold(r)
    assert r.change_path is not None and r.change_path.is_file() and r.pre_scene_name == "0_pre.tif"
    assert r.findings, "the pair needs change findings"
    assert all(f.threshold == pytest.approx(t) for f in r.findings)
    assert r.meta["threshold"] == pytest.approx(POST_ONLY) and abs(t - POST_ONLY) > 1
    assert pair["analysis"]["threshold"] == pytest.approx(POST_ONLY)  # what the CLI hands the report as "threshold"


def test_cover_and_method_state_the_change_threshold(pair: dict[str, Any]) -> None:
    r, text, cover = pair["result"], pair["text"], pair["pages"][0]
    t = _change_threshold(r)
    stated = _squash(cover[cover.index("Finding threshold"):])
    assert stated.startswith(_squash(f"Finding threshold {t:.3f} calibrated change units")), stated[:120]
    assert "changecalibrationdefault" in stated  # how it was set: the change calibration's own default
    assert "9.876" not in cover and "9.88" not in cover and "anomaly units" not in cover
    assert "pre-event for S1" in cover and "0_pre.tif" in cover
    assert "Change detection (pre/post pairs)" in text
    assert _squash(f"Change threshold: {t:.3f} calibrated change units") in _squash(text)
    assert "Threshold: 9.876" not in text and "threshold (9.88" not in text
    assert _squash(f"above the change threshold ({t:.2f} calibrated change units)") in _squash(text)  # map caption
    assert _squash(f"(change threshold {t:.2f})") in _squash(text)  # finding blocks


def test_the_post_only_threshold_appears_only_labelled_as_such(pair: dict[str, Any]) -> None:
    flat = _squash(pair["text"])
    hits = [m.start() for m in re.finditer(r"9\.88?(?:76)?", flat)]
    assert hits, "the post-only threshold should be named once, as a reference"
    for at in hits:
        before = flat[max(0, at - 40):at].lower()
        assert "anomalythreshold" in before or "post-onlyanomalyheatmap" in before, flat[max(0, at - 80):at + 10]


def test_coregistration_is_reported(pair: dict[str, Any]) -> None:
    coreg = pair["result"].meta["coregistration"]
    (dx, dy), (mx, my) = coreg["shift_px"], coreg["shift_m"]
    state = "applied" if coreg["shift_applied"] else "not applied"
    line = f"residual shift dx {dx:+.2f} px, dy {dy:+.2f} px ({mx:+.2f} m, {my:+.2f} m), {state}"
    flat = _squash(pair["text"])
    assert _squash(line) in flat, line
    assert _squash(f"Co-registration: {grid_method_text(coreg)}") in flat
    assert _squash("against pre-event image 0_pre.tif") in flat
    n_post = pair["result"].meta["post_only_findings"]
    assert _squash(f"(anomaly threshold 9.880) gave {n_post} region(s); they are not counted") in flat


def _cli_context(pair: dict[str, Any]) -> ReportContext:
    """The context ``report --analysis DIR`` builds: model info with the post-only anomaly threshold."""
    model = dict(pair["analysis"]["model"])  # as core.cli.report._report_source reads an analysis folder
    model.setdefault("threshold", pair["analysis"]["threshold"])
    model.setdefault("threshold_method", pair["analysis"]["threshold_method"])
    return ReportContext(title="t", handling="TLP:CLEAR", scenes=[pair["result"]], model_info=model)


def test_map_figure_and_histogram_read_the_change_raster(pair: dict[str, Any]) -> None:
    r = pair["result"]
    ctx = _cli_context(pair)
    assert ctx.threshold() == pytest.approx(_change_threshold(r)) and ctx.kind() == "change"
    s = summarise(ctx)
    (st,) = s.scenes
    assert st.basis.kind == "change" and st.basis.path == r.change_path
    assert st.display_threshold == pytest.approx(_change_threshold(r)) and st.anomaly_threshold == POST_ONLY
    full = (r.width, r.height)
    change = read_scores(r.change_path, max_side=HEAT_PREVIEW_SIDE, full_size=full)
    anomaly = read_scores(r.heatmap_path, max_side=HEAT_PREVIEW_SIDE, full_size=full)
    assert np.array_equal(st.heat, change, equal_nan=True) and not np.array_equal(st.heat, anomaly, equal_nan=True)
    assert s.kinds == ["change"] and s.thresholds("change") == [pytest.approx(_change_threshold(r))]
    assert s.samples["anomaly"].size == 0 and s.samples["change"].size > 0
    with SceneCache() as cache:
        drawn = scene_map(st, cache.get(r.source_path), s)
        as_anomaly = scene_map(dataclasses.replace(st, heat=anomaly), cache.get(r.source_path), s)
    assert drawn != as_anomaly  # the figure shows what it was given: the change raster


def test_model_info_of_pairs_claims_no_finding_threshold(pair: dict[str, Any]) -> None:
    r = pair["result"]
    model = pair["analysis"]["model"]
    info = analysis_model_info(model, None, [r])
    assert "threshold" not in info and "threshold_method" not in info
    single = dataclasses.replace(r, change_path=None, pre_scene_name=None, meta={"threshold": 2.5}, findings=[])
    mixed = analysis_model_info(model, 2.5, [r, single])
    assert mixed["threshold"] == 2.5 and mixed["threshold_method"] == "set by the analyst"
    ctx = ReportContext(title="t", handling="TLP:CLEAR", scenes=[r, single], model_info=mixed)
    assert ctx.threshold() is None  # two kinds of heatmap: no single finding threshold
    assert ctx.basis(single).threshold == 2.5 and ctx.basis(r).threshold == pytest.approx(_change_threshold(r))


def test_csv_names_the_heatmap_of_each_finding(pair: dict[str, Any], tmp_path: Path) -> None:
    out = write_csv(_cli_context(pair), tmp_path / "f.csv")
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(",heatmap") and all(line.endswith(",change") for line in lines[1:])


def test_package_holds_change_raster_and_overlay(pair: dict[str, Any]) -> None:
    r = pair["result"]
    with zipfile.ZipFile(pair["zip"]) as zf:
        names = set(zf.namelist())
        readme = zf.read("README.txt").decode("utf-8")
        packed_change = zf.read("0_post_change.tif")
    assert {"0_post_heatmap.tif", "0_post_overlay.png", "0_post_change.tif", "0_post_change_overlay.png"} <= names
    assert packed_change == Path(r.change_path).read_bytes()
    assert re.search(r"0_post_change\.tif +change heatmap GeoTIFF \(findings' source\) of scene '0_post\.tif'",
                     readme)
    assert re.search(r"0_post_change_overlay\.png +change heatmap overlay PNG of scene '0_post\.tif'", readme)
    assert "*_change.tif (pre/post scenes only)" in readme and "no-change pixels" in readme
    assert (f"'0_post.tif': change heatmap against pre-event image '0_pre.tif', threshold "
            f"{_change_threshold(r):.3f} calibrated change units") in readme


def test_every_page_renders_to_a_non_blank_image(pair: dict[str, Any], tmp_path: Path) -> None:
    """The PDF as a reader sees it: every page rasterised by poppler shows something (not one flat colour)."""
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed: cannot rasterise the PDF's pages")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pair["pdf"]), str(tmp_path / "page")], check=True,
                   timeout=120, capture_output=True)
    pngs = sorted(tmp_path.glob("page-*.png"))
    assert len(pngs) == len(pair["pages"]) > 5
    coloured = 0
    for png in pngs:
        with Image.open(png) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
        assert rgb.std() > 3 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 8, png.name
        coloured += float((rgb.max(axis=2) - rgb.min(axis=2) > 60).mean()) > 0.05
    assert coloured >= 1  # the map figure is drawn in colour, not lost
