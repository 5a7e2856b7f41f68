"""The zip package: every file present, a README documenting them, safe names whatever the uploads were called."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import zipfile
from pathlib import Path

import pytest

from core.errors import ReportError
from core.report import FINDING_COLUMNS, FORMATS, ReportContext, write_package

HOSTILE = ["../../evil.tif", "<script>.png", "/etc/passwd", "C:\\Windows\\evil.tif", "..", "CON.tif",
           "건물.tif", "a/b.tif", "c\\b.tif", "B.tif"]


def _hostile_ctx(ctx: ReportContext) -> ReportContext:
    """The real scenes renamed after hostile uploads (findings keep pointing at their scene)."""
    scenes = []
    for k, name in enumerate(HOSTILE):
        base = ctx.scenes[k % 2]
        fs = [dataclasses.replace(f, scene_name=name, id=f"{f.id}-{k}") for f in base.findings]
        scenes.append(dataclasses.replace(base, scene_name=name, findings=fs))
    return dataclasses.replace(ctx, scenes=scenes, max_map_figures=1, top_n=2)


def test_package_names_are_safe_for_hostile_uploads(report_ctx: ReportContext, tmp_path: Path) -> None:
    out = write_package(_hostile_ctx(report_ctx), tmp_path / "pkg.zip", formats=("csv", "geojson", "heatmaps",
                                                                                   "overlays"))
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        readme = zf.read("README.txt").decode("utf-8")
    assert len(names) == len({n.lower() for n in names})
    for n in names:
        assert "/" not in n and "\\" not in n and ".." not in n and ":" not in n, n
        assert not n.startswith(".") and n.isascii() and n.strip() == n, n
        assert n.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL"}, n
    heatmaps = [n for n in names if n.endswith("_heatmap.tif")]
    overlays = [n for n in names if n.endswith("_overlay.png") and not n.endswith("_change_overlay.png")]
    changes = [n for n in names if n.endswith("_change.tif")]
    change_overlays = [n for n in names if n.endswith("_change_overlay.png")]
    assert len(heatmaps) == len(overlays) == len(HOSTILE)
    assert len(changes) == len(change_overlays) == len(HOSTILE) // 2
    for n in names:
        if n != "README.txt":
            assert n in readme, n
    assert "'<script>.png'" in readme  # the original name is told in the README, the file name is safe


def test_full_package_contents_and_readme(report_ctx: ReportContext, tmp_path: Path) -> None:
    out = write_package(report_ctx, tmp_path / "bda.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bda.zip"]  # no temporary leftovers
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert {"README.txt", "report.pdf", "findings.csv", "findings.geojson"} <= names
        assert zf.read("report.pdf").startswith(b"%PDF")
        raw = zf.read("findings.csv")
        fc = json.loads(zf.read("findings.geojson"))
        readme = zf.read("README.txt").decode("utf-8")
    assert raw.startswith(b"\xef\xbb\xbf")  # packages are for Excel users too
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == len(report_ctx.findings())
    for c in FINDING_COLUMNS:
        assert c.name in readme and c.description in readme
    no_georef = sum(1 for f in report_ctx.findings() if f.geometry is None)
    assert f"{len(fc['features'])} feature(s)" in readme
    assert f"no usable georeferencing: {no_georef}." in readme
    assert readme.startswith(report_ctx.handling) and readme.rstrip().endswith(report_ctx.handling)
    for sr in report_ctx.scenes:
        stem = Path(sr.heatmap_path).stem.removesuffix("_heatmap")
        assert f"{stem}_heatmap.tif" in names and f"{stem}_overlay.png" in names


def test_package_reuses_a_written_pdf(report_ctx: ReportContext, tmp_path: Path) -> None:
    pdf = tmp_path / "already.pdf"
    pdf.write_bytes(b"%PDF-1.4 stand-in bytes the package must copy verbatim")
    with zipfile.ZipFile(write_package(report_ctx, tmp_path / "p.zip", formats=("pdf",), pdf_path=pdf)) as zf:
        assert zf.read("report.pdf") == pdf.read_bytes()
    with pytest.raises(ReportError, match="does not exist"):
        write_package(report_ctx, tmp_path / "p.zip", pdf_path=tmp_path / "missing.pdf")


def test_missing_files_are_listed_not_fatal(report_ctx: ReportContext, tmp_path: Path) -> None:
    gone = dataclasses.replace(report_ctx.scenes[1], heatmap_path=tmp_path / "deleted_heatmap.tif")
    ctx = dataclasses.replace(report_ctx, scenes=[gone])
    with zipfile.ZipFile(write_package(ctx, tmp_path / "p.zip", formats=["heatmaps", "overlays"])) as zf:
        readme = zf.read("README.txt").decode("utf-8")
        assert not any(n.endswith("_heatmap.tif") for n in zf.namelist())
    assert "Not included (file missing" in readme and "heatmap GeoTIFF of scene 'tile_31500-5137.tif'" in readme


def test_bad_package_requests_raise_report_error(report_ctx: ReportContext, tmp_path: Path) -> None:
    assert "pdf" in FORMATS
    with pytest.raises(ReportError, match="unknown package format"):
        write_package(report_ctx, tmp_path / "p.zip", formats=("pdf", "docx"))
    with pytest.raises(ReportError, match="unknown package format"):
        write_package(report_ctx, tmp_path / "p.zip", formats=())
    with pytest.raises(ReportError, match="does not exist"):
        write_package(report_ctx, tmp_path / "no" / "p.zip", formats=("csv",))
    assert list(tmp_path.iterdir()) == []
