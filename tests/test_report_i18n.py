"""The damage report in Korean: the PDF's headings, tables, method and limitation text in Korean with the Hangul font
embedded, rendered by poppler (pdftoppm) to non-blank pages; the CSV and GeoJSON field names stay English; the
CLI's ``report --lang``."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from core.cli.main import main
from core.i18n import use
from core.report import ReportContext, write_csv, write_geojson, write_pdf
from core.report.texts import TITLES

HANGUL = ("\uac00", "\ud7a3")


def _hangul(text: str) -> int:
    return sum(HANGUL[0] <= c <= HANGUL[1] for c in text)


def _fonts(reader: PdfReader) -> set[str]:
    names = set()
    for page in reader.pages:
        fonts = (page.get("/Resources") or {}).get("/Font") or {}
        for ref in fonts.values():
            names.add(str(ref.get_object().get("/BaseFont")))
    return names


@pytest.fixture(scope="module")
def korean_pdf(report_ctx: ReportContext, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pdf(report_ctx, tmp_path_factory.mktemp("ko") / "report-ko.pdf", lang="ko")


def test_korean_pdf_has_korean_sections_and_the_hangul_font(korean_pdf: Path) -> None:
    reader = PdfReader(korean_pdf)
    text = "\n".join(p.extract_text() or "" for p in reader.pages)
    assert _hangul(text) > 2000, "the report's own text should be Korean"
    with use("ko"):
        from core.i18n import _

        korean_titles = [_(t) for t in TITLES.values()]
    positions = [text.find(t) for t in korean_titles]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), dict(zip(korean_titles, positions,
                                                                                        strict=True))
    for word in ("영상 출처", "탐지기", "한계", "2단계 — 기능적 피해 평가", "3단계 — 표적 체계 평가",
                 "변화 탐지(사전/사후 쌍)"):
        assert word in text, word
    for english in ("Executive summary", "Method and limitations", "Imagery sources", "Limitations",
                    "Findings not confirmed by an analyst", "Page 1 of"):
        assert english not in text, english
    assert any("Nanum" in f for f in _fonts(reader)), _fonts(reader)


def test_korean_pdf_pages_render_with_poppler(korean_pdf: Path, tmp_path: Path) -> None:
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    subprocess.run([pdftoppm, "-r", "60", "-f", "1", "-l", "3", "-png", str(korean_pdf), str(tmp_path / "p")],
                   check=True, capture_output=True, timeout=120)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == 3
    for png in pages:
        grey = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
        ink = float((grey < 128).mean())
        assert 0.005 < ink < 0.6, f"{png.name}: {ink:.4f} of the page is ink (blank or black page)"
        assert grey.std() > 10


def test_csv_and_geojson_fields_stay_english_in_a_korean_report(report_ctx: ReportContext, tmp_path: Path) -> None:
    with use("en"):
        en_header = write_csv(report_ctx, tmp_path / "en.csv").read_text(encoding="utf-8").splitlines()[0]
        en_props = json.loads(write_geojson(report_ctx, tmp_path / "en.geojson").read_text())["features"][0]
    with use("ko"):
        ko_header = write_csv(report_ctx, tmp_path / "ko.csv").read_text(encoding="utf-8").splitlines()[0]
        ko_props = json.loads(write_geojson(report_ctx, tmp_path / "ko.geojson").read_text())["features"][0]
    assert ko_header == en_header and _hangul(ko_header) == 0
    assert sorted(ko_props["properties"]) == sorted(en_props["properties"])


def test_cli_report_lang_ko_and_en(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chip = shared_data / "geotiff/joplin_tornado_xview2deploy/chips_aligned/post/0_post.tif"
    out = tmp_path / "out"
    assert main(["analyze", str(chip), "--out", str(out), "--no-workspace", "--quiet"]) == 0, capsys.readouterr().err
    for lang in ("ko", "en"):
        dest = tmp_path / lang
        assert main(["report", "--analysis", str(out), "--format", "pdf,csv", "--out", str(dest), "--lang", lang]) == 0
        text = "\n".join(p.extract_text() or "" for p in PdfReader(dest / "report.pdf").pages)
        header = next(csv.reader(io.StringIO((dest / "findings.csv").read_text(encoding="utf-8"))))
        assert "finding_id" in header and not any(_hangul(h) for h in header)
        if lang == "ko":
            assert "피해 평가 보고서" in text and "1. 요약" in text
        else:
            assert _hangul(text) == 0 and "Damage assessment report" in text and "1. Executive summary" in text
    with pytest.raises(SystemExit):
        main(["report", "--analysis", str(out), "--lang", "fr"])
