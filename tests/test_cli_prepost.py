"""`python -m core analyze POST --pre PRE`: pairing across CRSs, change GeoTIFF on the post grid, findings with both
sources, and the report's pre/post chips."""

from __future__ import annotations

import json

import rasterio
from pypdf import PdfReader

from core.cli import main


def test_analyze_with_pre_writes_change_and_report(shared_data, tmp_path, capsys):
    j = shared_data / "geotiff/joplin_tornado_xview2deploy/chips_aligned"
    post, pre = j / "post/0_post.tif", j / "pre/0_pre.tif"
    out = tmp_path / "out"
    rc = main(["analyze", str(post), "--pre", str(pre), "--out", str(out), "--no-workspace", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    change = out / "0_post_change.tif"
    assert change.is_file()
    with rasterio.open(change) as c, rasterio.open(post) as p:
        assert c.crs == p.crs and c.transform == p.transform and (c.width, c.height) == (p.width, p.height)
        assert c.dtypes[0] == "float32"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"][0]["outputs"]["change"] == "0_post_change.tif"
    analysis = json.loads((out / "analysis.json").read_text())
    res = analysis["results"][0]
    assert res["pre_scene_name"] == "0_pre.tif"
    assert all(f["pre_source_name"] == "0_pre.tif" and f["source_name"] == "0_post.tif" for f in res["findings"])
    assert main(["report", "--analysis", str(out), "--format", "pdf"]) == 0
    text = "\n".join(p.extract_text() or "" for p in PdfReader(out / "report.pdf").pages)
    assert "0_pre.tif" in text and "0_post.tif" in text
