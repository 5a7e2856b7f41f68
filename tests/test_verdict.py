"""One rule for a scene's verdict, threshold and finding counts (detection.verdict): the pipeline, the live count of
the Analyze page, the Report summary and the PDF's per-image table state the same numbers at the same threshold."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from core.detection.detector import Detector
from core.detection.findings import extract_findings
from core.detection.heatmap import PREVIEW_MAX, read_heatmap
from core.detection.pipeline import MAX_FINDINGS, analyze_scene, refind_findings
from core.detection.verdict import (
    ANOMALOUS,
    NORMAL,
    canonical_threshold,
    judge,
    same_threshold,
    verdict_summary,
)
from core.i18n import say
from core.imagery.reader import open_scene
from core.models import build_model
from core.report import ReportContext, write_pdf
from core.report.summary import summarise
from core.types import Finding, SceneResult

torch.set_num_threads(1)


def _finding(i: int, score: float, thr: float, status: str = "unreviewed") -> Finding:
    return Finding(id=f"s-F{i:03d}", scene_name="s", polygon_px=[(0, 0), (1, 0), (1, 1)], bbox_px=(0, 0, 1, 1),
                   area_px=1.0, score_mean=score, score_max=score, threshold=thr, confidence=0.5, grade="damaged",
                   review_status=status)


def _result(findings: list[Finding], **meta) -> SceneResult:
    return SceneResult(scene_name="s", width=10, height=10, image_score=3.12, verdict="?", georef=None,
                       bounds_wgs84=None, heatmap_path=None, overlay_path=None, findings=findings, meta=meta)


def test_canonical_threshold_is_what_the_sidebar_shows() -> None:
    assert canonical_threshold(5.30749) == 5.31 and canonical_threshold(0.001) == 0.01
    assert same_threshold(5.3074, 5.31) and not same_threshold(5.3, 5.31) and not same_threshold(None, 1.0)
    with pytest.raises(ValueError, match="threshold"):
        canonical_threshold(-1)


def test_the_rule_states_verdict_threshold_count_and_peak() -> None:
    v = judge(_result([_finding(1, 9.84, 5.31), _finding(2, 6.0, 5.31)]))
    assert (v.verdict, v.threshold, v.n_counted, v.peak) == (ANOMALOUS, 5.31, 2, 9.84)
    assert v.rule == "anomalous: 2 anomaly findings reach threshold 5.31 (peak 9.84 ≥ 5.31)"
    # a score below the threshold shown can never come with "anomalous": an image score of 3.12 < 5.31 does not
    # decide the verdict, the findings do; without findings the verdict is normal and the peak shown is below t
    quiet = judge(_result([], threshold=5.31, heatmap_stats={"max": 4.2}))
    assert quiet.verdict == NORMAL
    assert quiet.rule == "normal: no anomaly region reaches threshold 5.31 (peak 4.20 < 5.31)"
    # rejected findings are listed, not counted: the verdict follows the analyst
    rej = judge(_result([_finding(1, 9.0, 5.31, "rejected")]))
    assert (rej.verdict, rej.n_counted, rej.n_rejected) == (NORMAL, 0, 1) and "rejected" in rej.rule
    assert verdict_summary([_result([_finding(1, 9.0, 5.31)]), _result([_finding(1, 9.0, 5.31, "rejected")])]) == {
        "scenes": 2, "anomalous": 1, "normal": 1, "failed": 0, "findings": 1, "rejected": 1}


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory) -> Path:
    """A small georeferenced RGB GeoTIFF: smooth texture with a few bright blobs (something to find)."""
    rng = np.random.default_rng(3)
    h = w = 320
    yy, xx = np.mgrid[0:h, 0:w]
    img = 100 + 20 * np.sin(xx / 9.0) + 20 * np.cos(yy / 13.0) + rng.normal(0, 4, (h, w))
    rgb = np.repeat(img[None], 3, axis=0)
    for cy, cx, r in ((60, 80, 14), (200, 220, 20), (250, 60, 9)):
        m = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        rgb[0][m], rgb[1][m], rgb[2][m] = 250, 30, 200
    p = tmp_path_factory.mktemp("verdict") / "blobs.tif"
    with rasterio.open(p, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs="EPSG:32615",
                       transform=from_origin(360000, 4100000, 0.5, 0.5)) as ds:
        ds.write(np.clip(rgb, 0, 255).astype(np.uint8))
    return p


@pytest.fixture(scope="module")
def detector(scene_path) -> Detector:
    """An untrained seeded network whose calibrated threshold has many decimals (as a real model's has)."""
    torch.manual_seed(0)
    det = Detector.from_model(build_model("fcdd-resnet18"), precision="fp32")
    scene = open_scene(scene_path)
    try:
        probe = analyze_scene(scene, det, scene_path.parent / "probe", threshold=1e6)
    finally:
        scene.close()
    hm = read_heatmap(probe.heatmap_path)
    t = float(np.nanquantile(hm.scores, 0.97)) + 0.004567  # between two displayed values
    det.calibration = dataclasses.replace(det.calibration, threshold=t)
    assert not same_threshold(t, t + 0.01) and round(t, 2) != t
    return det


def test_saved_and_live_counts_agree_at_the_shown_threshold(detector, scene_path, tmp_path) -> None:
    scene = open_scene(scene_path)
    try:
        res = analyze_scene(scene, detector, tmp_path)
    finally:
        scene.close()
    shown = round(detector.calibration.threshold, 2)  # what the sidebar slider shows (ui.shell.seed_threshold)
    assert res.findings and {f.threshold for f in res.findings} == {shown} and res.meta["threshold"] == shown
    # the Analyze page's live count: the same extraction from the stored heatmap at the slider's threshold
    hm = read_heatmap(res.heatmap_path, preview_max=PREVIEW_MAX)
    live = extract_findings(hm.preview, hm.preview_scale, shown, georef=None, scene_name=res.scene_name,
                            full_size=(res.width, res.height), max_findings=MAX_FINDINGS)
    v = judge(res)
    assert len(live) == len(res.findings) == v.n_counted
    assert res.verdict == v.verdict == ANOMALOUS and v.threshold == shown and f"threshold {shown:.2f}" in v.rule
    # moving the threshold above every score: no finding, and the stored verdict follows the same rule
    top = float(np.nanmax(read_heatmap(res.heatmap_path).scores))
    high = refind_findings(dataclasses.replace(res, findings=list(res.findings), meta=dict(res.meta)), top + 1,
                           {"name": "m"})
    assert high.findings == [] and high.verdict == judge(high).verdict == NORMAL


def test_report_summary_and_pdf_state_the_pages_counts(detector, scene_path, tmp_path) -> None:
    scene = open_scene(scene_path)
    try:
        res = analyze_scene(scene, detector, tmp_path)
    finally:
        scene.close()
    res.findings[0].review_status = "rejected"
    v = judge(res)
    ctx = ReportContext(title="Verdicts", handling="TLP:CLEAR", scenes=[res], model_info=detector.info())
    s = summarise(ctx)
    assert len(s.counted) == s.scenes[0].counted == v.n_counted == len(res.findings) - 1
    assert len(s.rejected) == v.n_rejected == 1
    pdf = write_pdf(ctx, tmp_path / "r.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in text.splitlines() if line.strip().startswith("S1 ") and "blobs.tif" in line]
    cells = next(c for c in rows if "anomaly" in c)  # the appendix's per-image table
    assert f"{v.threshold:.3f}" in cells and v.verdict in cells and str(v.n_counted) in cells
    assert "Confidence is the finding's margin over the threshold" in " ".join(text.split())
    assert "it ranks images and does not decide the verdict" in " ".join(text.split())


def test_the_sidebar_counts_findings_as_the_pages_do(ws) -> None:
    """The case's counts in the sidebar leave rejected findings out, as the verdict, the pages and the PDF do."""
    from tests.support.store import make_result, new_analysis
    from ui.sidebar import case_counts

    aid = new_analysis(ws, ["a.tif"])
    ws.save_scene_result(aid, make_result("a.tif", n_findings=3), input_name="a.tif")
    ws.finish_analysis(aid)
    (r,) = ws.scene_results(aid)
    ws.review_finding(r.findings[0].id, analyst="kim", status="rejected")
    (r,) = ws.scene_results(aid)
    case = ws.list_cases()[0]["id"]
    assert ws.case_finding_counts(case) == (judge(r).n_counted, judge(r).n_rejected) == (2, 1)
    assert case_counts(ws, case) == "1 analysis · 1 image · 2 findings (1 rejected)"


def test_a_map_mostly_above_the_threshold_says_it_cannot_tell_damage_from_unfamiliar_imagery(
        detector, scene_path, tmp_path) -> None:
    """The share of the image above the threshold is stored with the result; from BROAD_SHARE on, the pages and the
    CLI show a note written in the language in use (not stored, so a switch of language translates it)."""
    from core import i18n
    from core.detection.verdict import BROAD_SHARE, broad_anomaly_note, share_above

    heat = np.zeros((100, 100), np.float32)
    heat[:, :10] = 2.0
    heat[0, 0] = np.nan  # nodata does not count
    assert share_above(heat, 1.0) == pytest.approx(999 / 9999)
    assert broad_anomaly_note(share_above(heat, 1.0)) is None and broad_anomaly_note(None) is None
    heat[:, :30] = 2.0
    share = share_above(heat, 1.0)
    note = broad_anomaly_note(share)
    assert share >= BROAD_SHARE and note is not None and "30 %" in note and "pre-event" in note
    with i18n.use("ko"):
        ko = broad_anomaly_note(share)
    assert ko and "30 %" in ko and "사전 영상" in ko
    scene = open_scene(scene_path)
    try:  # the threshold at the map's 5th percentile: ~95 % of the scene above it
        low = float(np.nanquantile(read_heatmap(analyze_scene(scene, detector, tmp_path / "a").heatmap_path).scores,
                                   0.05))
        res = analyze_scene(scene, detector, tmp_path / "b", threshold=low)
    finally:
        scene.close()
    assert res.meta["share_above_threshold"] > 0.9 and broad_anomaly_note(res.meta["share_above_threshold"])
    assert not any("above the threshold" in w for w in map(say, res.meta["warnings"]))  # not stored in one language
