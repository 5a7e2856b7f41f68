"""The report of a multi-tile analysis: one area section (mosaic overview, extent, km², findings merged across
scene seams counted once, by grade) in the PDF, area_findings.csv / .geojson beside the per-scene exports, from the
CLI and from the Report page, in English and Korean; analysts' reviews count in the area figures."""

from __future__ import annotations

import csv
import json
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from pypdf import PdfReader

from core.cli.main import main
from core.report import ReportContext, write_pdf
from core.report.area import AREA_COLUMNS, area_of
from core.report.area_pdf import AREA_TITLE
from core.report.columns import FINDING_COLUMNS
from core.store import Workspace
from tests.support.app import new_app, server_like_reruns, texts
from tests.support.area import GSD, write_area
from tests.support.data import REPO
from ui import state as S

torch.set_num_threads(1)
MODEL = REPO / "assets" / "models" / "fcdd-resnet18.pt"
SIZE = 256
SEAM_ROWS = (SIZE // 3, SIZE // 3 + 60)  # where write_area puts the debris patch across the seam of the two tiles


@pytest.fixture(scope="module")
def area_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two adjacent 256² UTM tiles with a debris patch across their seam, analysed into a workspace."""
    tmp = tmp_path_factory.mktemp("area_report")
    paths = write_area(tmp / "in", 1, 2, SIZE, seed=1)
    root, out = tmp / "ws", tmp / "out"
    rc = main(["analyze", *map(str, paths), "--model", str(MODEL), "--out", str(out), "--workspace", str(root),
               "--quiet"])
    assert rc == 0
    with Workspace(root) as ws:
        aid = ws.list_analyses()[0]["id"]
    summary = json.loads((out / "area" / "area_summary.json").read_text())
    return {"paths": paths, "root": root, "out": out, "aid": aid, "summary": summary}


def _seam_parts(results) -> tuple[str, str]:
    """Ids of the two halves of the seam patch: one touching tile 0's right edge, one tile 1's left edge."""
    def on_patch(f) -> bool:
        return f.bbox_px[1] < SEAM_ROWS[1] and f.bbox_px[3] > SEAM_ROWS[0]

    left = [f.id for f in results[0].findings if f.bbox_px[2] >= SIZE - 1 and on_patch(f)]
    right = [f.id for f in results[1].findings if f.bbox_px[0] <= 1 and on_patch(f)]
    assert left and right, "the seam patch is found on both sides of the seam"
    return left[0], right[0]


def _pdf_text(path: Path) -> str:
    return "\n".join(p.extract_text() or "" for p in PdfReader(path).pages)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow  # writes whole PDF reports (keeps the fast lane under a minute)
def test_cli_report_has_the_area_section_and_exports(area_run, tmp_path) -> None:
    rep = tmp_path / "rep"
    rc = main(["report", "--analysis", str(area_run["aid"]), "--workspace", str(area_run["root"]), "--handling",
               "TLP:CLEAR", "--format", "pdf,csv,geojson,zip", "--out", str(rep)])
    assert rc == 0
    with Workspace(area_run["root"]) as ws:
        results = ws.scene_results(area_run["aid"])
    per_scene = sum(len(r.findings) for r in results)
    left, right = _seam_parts(results)

    # the exported area findings: the seam patch is one row naming both scenes and both halves
    rows = _csv_rows(rep / "area_findings.csv")
    assert list(rows[0]) == list(AREA_COLUMNS)
    seam = [r for r in rows if left in r["parts"].split(";") or right in r["parts"].split(";")]
    assert len(seam) == 1 and {left, right} <= set(seam[0]["parts"].split(";"))
    assert seam[0]["n_scenes"] == "2" and seam[0]["scenes"] == ";".join(sorted(p.name for p in area_run["paths"]))
    assert len(rows) == per_scene - sum(int(r["n_parts"]) - 1 for r in rows) < per_scene
    assert len(rows) == area_run["summary"]["findings"]["merged"]  # as the analysis' own area summary counted
    assert [r["obj_id"] for r in rows] == [str(k) for k in range(1, len(rows) + 1)]
    geo = json.loads((rep / "area_findings.geojson").read_text(encoding="utf-8"))
    assert [f["properties"]["area_finding_id"] for f in geo["features"]] == [r["area_finding_id"] for r in rows]
    # the per-scene exports keep their columns and rows
    scene_rows = _csv_rows(rep / "findings.csv")
    assert list(scene_rows[0]) == [c.name for c in FINDING_COLUMNS] and len(scene_rows) == per_scene

    text = _pdf_text(rep / "report.pdf")
    assert AREA_TITLE in text
    area = text[text.find(AREA_TITLE):]
    joined = sum(1 for r in rows if int(r["n_scenes"]) > 1)
    assert f"{len(rows)} ({joined} joined across scene seams, from {per_scene} per-scene findings)" in area
    assert "EPSG:32615" in area
    km2 = 2 * SIZE * SIZE * GSD * GSD / 1e6  # two tiles side by side, no overlap
    assert f"{km2:,.3f} km²" in area
    by_grade = Counter(r["grade"] for r in rows)
    for grade, label in (("destroyed", "Destroyed"), ("damaged", "Damaged"), ("possibly-damaged", "Possibly damaged")):
        if by_grade[grade]:
            assert f"{label} {by_grade[grade]} " in area, (grade, by_grade[grade])
    assert f"Total {len(rows)} " in area
    assert "Area mosaic of the scenes' heatmaps" in area  # the overview figure was drawn from the mosaic
    assert "1. Executive summary" in text and "Appendix A. Per-image scores" in text  # per-scene sections stay
    with zipfile.ZipFile(rep / "report_package.zip") as zf:
        names = set(zf.namelist())
        readme = zf.read("README.txt").decode()
        packed = zf.read("area_findings.csv").decode("utf-8-sig").splitlines()
    assert {"area_findings.csv", "area_findings.geojson", "findings.csv", "report.pdf"} <= names
    assert "AREA FINDINGS" in readme and len(packed) == len(rows) + 1


@pytest.mark.slow  # writes whole PDF reports (keeps the fast lane under a minute)
def test_reviews_count_and_the_section_reads_in_korean(area_run, tmp_path) -> None:
    """A rejected half of the seam patch is not counted: the other half stays one area finding of one scene."""
    with Workspace(area_run["root"]) as ws:
        results = ws.scene_results(area_run["aid"])
    before = area_of(results, area_run["out"])
    assert before is not None and before.mosaic is not None and before.joined >= 1
    left, right = _seam_parts(results)
    for f in results[0].findings:
        if f.id == left:
            f.review_status = "rejected"
    after = area_of(results, area_run["out"])
    assert after is not None and after.rejected == 1 and after.per_scene == before.per_scene - 1
    seam = [m for m in after.findings if right in m["parts"]]
    assert len(seam) == 1 and seam[0]["parts"] == [right] and len(after.findings) == len(before.findings)
    assert area_of(results[:1], area_run["out"]) is None  # one scene: no area section
    ctx = ReportContext(title="Area", handling="TLP:CLEAR", scenes=results, area=after)
    text = _pdf_text(write_pdf(ctx, tmp_path / "ko.pdf", lang="ko"))
    assert "1b. 지역 요약" in text and "지역 탐지" in text and "합계" in text


@pytest.mark.slow  # the whole report and package built from the page; the fast lane builds the same from the CLI
def test_report_page_builds_the_area_report(area_run, monkeypatch) -> None:
    server_like_reruns(monkeypatch)
    monkeypatch.setenv("BDA_WORKSPACE", str(area_run["root"]))
    at = new_app().run()
    at.session_state[S.ANALYST] = "Kim Analyst"
    at.switch_page("pages/report.py").run()
    assert not at.exception, texts(at.exception)
    at.text_input(key="w_report_handling").input("TLP:CLEAR").run()
    at.button(key="build_report").click().run()
    assert not at.exception and not at.error, texts(at.error)
    merged = area_run["summary"]["findings"]["merged"]
    assert any(f"Area report: {merged} area findings of 2 scenes" in c for c in texts(at.caption)), texts(at.caption)
    with Workspace(area_run["root"]) as ws:
        folder = ws.analysis_dir(area_run["aid"]) / "report"
    assert AREA_TITLE in _pdf_text(folder / "report.pdf")
    with zipfile.ZipFile(folder / "report_package.zip") as zf:
        rows = list(csv.DictReader(zf.read("area_findings.csv").decode("utf-8-sig").splitlines()))
    assert len(rows) == merged
    assert len(_csv_rows(folder / "area_findings.csv")) == merged
