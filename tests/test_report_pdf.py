"""The PDF damage report on real Joplin imagery: sections, findings, scripts, hostile text, missing data."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from core.errors import ReportError
from core.report import ReportContext, write_pdf
from core.report.sections import TITLES
from core.types import Finding, SceneResult
from tests.support.report import NOTES


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def pdf_pages(report_ctx: ReportContext, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    path = write_pdf(report_ctx, tmp_path_factory.mktemp("pdf") / "report.pdf")
    assert path.read_bytes().startswith(b"%PDF")
    return [p.extract_text() or "" for p in PdfReader(path).pages]


def test_every_section_is_present_in_order(pdf_pages: list[str]) -> None:
    text = "\n".join(pdf_pages)
    positions = [text.find(t) for t in TITLES.values()]
    assert all(p >= 0 for p in positions), dict(zip(TITLES.values(), positions, strict=True))
    assert positions == sorted(positions)
    for word in ("Imagery sources", "Detector", "Phase 2", "Phase 3", "Limitations", "2026-03-01 09:30 UTC"):
        assert word in text


def test_handling_line_on_every_page(pdf_pages: list[str], report_ctx: ReportContext) -> None:
    assert len(pdf_pages) > 5
    for page in pdf_pages:
        assert page.count(report_ctx.handling) >= 2  # header and footer


def test_confirmed_findings_with_mgrs_and_cover_metadata(pdf_pages: list[str],
                                                         report_ctx: ReportContext) -> None:
    text = "\n".join(pdf_pages)
    flat = _squash(text)
    confirmed = [f for f in report_ctx.findings() if f.review_status == "confirmed"]
    assert len(confirmed) == 4
    for f in confirmed:
        assert f.id in text
        if f.mgrs:
            assert f.mgrs in text
    for f in report_ctx.findings():
        if f.review_status != "rejected":
            assert _squash(f.id) in flat
    cover = pdf_pages[0]
    assert report_ctx.model_info["sha256"] in cover and report_ctx.model_info["name"] in cover
    assert "0_post.tif" in cover and "0_pre.tif" in cover and "0.64 m" in cover and "2011-05-25" in cover
    assert "김민준" in cover
    # the reviewing analysts, from the findings' review records (issue 12)
    assert "Reviewed by" in cover and all(_squash(n) in _squash(cover) for n in ("Иван Петров", "Νίκος", "J. Smith"))


def test_hangul_cyrillic_greek_and_hostile_text_are_literal(pdf_pages: list[str]) -> None:
    text = "\n".join(pdf_pages)
    flat = _squash(text)
    for key in ("ko", "ru", "el"):
        assert NOTES[key] in text, key
    assert _squash(NOTES["html"]) in flat
    assert _squash(NOTES["formula"]) in flat
    assert "Дороги проходимы" in text and "피해 집중 지역" in text


def test_rejected_findings_are_listed_but_not_counted(pdf_pages: list[str],
                                                      report_ctx: ReportContext) -> None:
    text = "\n".join(pdf_pages)
    everything = report_ctx.findings()
    rejected = [f for f in everything if f.review_status == "rejected"]
    counted = len(everything) - len(rejected)
    assert f"{counted} counted" in pdf_pages[0] and f"{len(rejected)} rejected and not counted" in pdf_pages[0]
    assert re.search(rf"Total counted\s+{counted}\s", text)
    rej_id = rejected[0].id
    start = text.find("Rejected by analyst (not counted)")
    assert start > 0 and text.find(rej_id) > start  # the rejected id first appears in the rejected list
    details = text[text.find(TITLES["details"]):text.find(TITLES["method"])]
    assert rej_id not in details and "false alarm: parking lot" in text


@pytest.mark.slow  # writes a whole PDF with fonts and figures (seconds)
def test_missing_data_is_explained_not_fatal(tmp_path: Path) -> None:
    lost = Finding(id="lost-F001", scene_name="../lost <b>.tif", polygon_px=[(10, 10), (60, 10), (60, 50)],
                   bbox_px=(10, 10, 60, 50), area_px=1000.0, score_mean=2.2, score_max=2.9, threshold=2.0,
                   confidence=0.6, grade="possibly-damaged")
    scenes = [SceneResult(scene_name="../lost <b>.tif", width=400, height=300, image_score=float("nan"),
                          verdict="anomalous", georef=None, bounds_wgs84=None, heatmap_path=tmp_path / "gone.tif",
                          overlay_path=None, findings=[lost], source_path=tmp_path / "gone.jpg",
                          pre_scene_name="pre.jpg"),
              SceneResult(scene_name="broken.tif", width=100, height=100, image_score=float("nan"),
                          verdict="normal", georef=None, bounds_wgs84=None, heatmap_path=None, overlay_path=None,
                          error="the file is truncated")]
    ctx = ReportContext(title="Missing data", handling="TLP:CLEAR", scenes=scenes)
    text = "\n".join(p.extract_text() for p in PdfReader(write_pdf(ctx, tmp_path / "r.pdf")).pages)
    for words in ("source image unreadable", "file not found", "heatmap not available",
                  "pre-event image file not available", "not georeferenced", "no coordinates",
                  "the file is truncated", "not recorded", "lost-F001", "No scene is georeferenced"):
        assert words in text, words
    assert "../lost <b>.tif" in text  # a hostile scene name is printed as typed


def test_no_findings_report(report_ctx: ReportContext, tmp_path: Path) -> None:
    quiet = [dataclasses.replace(s, findings=[], verdict="normal") for s in report_ctx.scenes[1:]]
    ctx = dataclasses.replace(report_ctx, scenes=quiet, pre_sources={}, max_map_figures=1)
    text = "\n".join(p.extract_text() for p in PdfReader(write_pdf(ctx, tmp_path / "q.pdf")).pages)
    assert "No anomalous region above the threshold was found" in text
    assert "No damage findings to list." in text and "No counted findings." in text


def test_unusable_context_raises_report_error(report_ctx: ReportContext, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="handling"):
        write_pdf(dataclasses.replace(report_ctx, handling="  "), tmp_path / "r.pdf")
    with pytest.raises(ReportError, match="title"):
        write_pdf(dataclasses.replace(report_ctx, title=""), tmp_path / "r.pdf")
    with pytest.raises(ReportError, match="ReportContext"):
        write_pdf(report_ctx.scenes, tmp_path / "r.pdf")  # type: ignore[arg-type]
    with pytest.raises(ReportError, match="does not exist"):
        write_pdf(report_ctx, tmp_path / "nope" / "r.pdf")
    assert list(tmp_path.iterdir()) == []


def test_truncated_source_image_is_reported_in_words(report_ctx: ReportContext, tmp_path: Path,
                                                     shared_data: Path) -> None:
    sr = report_ctx.scenes[1]
    broken = tmp_path / "truncated.tif"
    raw = Path(sr.source_path).read_bytes()
    broken.write_bytes(raw[: len(raw) // 2])
    ctx = dataclasses.replace(report_ctx, scenes=[dataclasses.replace(sr, source_path=broken)], top_n=2,
                              max_map_figures=1)
    text = "\n".join(p.extract_text() for p in PdfReader(write_pdf(ctx, tmp_path / "r.pdf")).pages)
    assert "source image unreadable" in text or "could not be" in text
    assert sr.findings[0].id in text


def test_mixed_report_states_each_kind_of_threshold(pdf_pages: list[str],
                                                   report_ctx: ReportContext) -> None:
    """Single images and a pre/post pair in one report: the cover states both finding thresholds with their units,
    the appendix the one of each scene, and there is no single 'the threshold'."""
    assert report_ctx.threshold() is None
    cover = _squash(pdf_pages[0])
    assert _squash("Finding threshold, single images 2.000 calibrated anomaly units") in cover
    assert _squash("Finding threshold, pre/post pairs 1.300 calibrated change units") in cover
    text = "\n".join(pdf_pages)
    appendix = text[text.find(TITLES["appendix"]):]
    assert re.search(r"S1 0_post\.tif .*change vs 0_pre\.tif 1\.300", appendix)
    assert re.search(r"S2 tile_31500-5137\.tif .*anomaly 2\.000", appendix)
    assert "Change detection (pre/post pairs)" in text and "Single images (no pre-event image)" in text


def test_area_column_never_wraps_a_number(report_ctx: ReportContext, tmp_path: Path) -> None:
    """Six- and seven-digit areas stay on one line in the damage table (a wrapped '111,14 6' reads as two numbers)."""
    sr = report_ctx.scenes[1]
    big = [dataclasses.replace(f, area_m2=a) for f, a in zip(sr.findings, (111146.0, 1234567.0, 98765.4),
                                                                strict=False)]
    ctx = dataclasses.replace(report_ctx, scenes=[dataclasses.replace(sr, findings=big)], top_n=0,
                              max_map_figures=0)
    text = "\n".join(p.extract_text() for p in PdfReader(write_pdf(ctx, tmp_path / "r.pdf")).pages)
    table = text[text.find(TITLES["table"]):text.find(TITLES["details"])]
    for area in ("111,146", "1,234,567", "98,765"):
        assert re.search(rf"\s{area}\s", table), area
