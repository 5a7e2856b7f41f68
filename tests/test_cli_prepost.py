"""`python -m core analyze POST --pre PRE`: pairing across CRSs, change GeoTIFF on the post grid, findings with both
sources, and the report's pre/post chips."""

from __future__ import annotations

import csv
import io
import json

import rasterio
from pypdf import PdfReader

from core.cli.main import main


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


def test_change_threshold_shift_report_reviews_and_bom(shared_data, tiny_model, tmp_path, capsys):
    """--change-threshold cuts the pair's findings; stderr and summary.json say the pairing and the co-registration;
    `report --analysis DIR` of a run recorded in a workspace takes the analysts' reviews from it; --bom for Excel."""
    from core.store import Workspace

    j = shared_data / "geotiff/joplin_tornado_xview2deploy/chips_aligned"
    post, pre = j / "post/0_post.tif", j / "pre/0_pre.tif"
    out, ws_root = tmp_path / "out", tmp_path / "ws"
    args = ["analyze", str(post), "--pre", str(pre), "--model", str(tiny_model), "--workspace", str(ws_root),
            "--quiet"]
    assert main(args + ["--out", str(out), "--change-threshold", "0.5"]) == 0
    err = capsys.readouterr().err
    assert "compared with 0_pre.tif:" in err and "change findings at 0.50" in err and "Co-registration:" in err
    row = json.loads((out / "summary.json").read_text())["inputs"][0]
    assert row["pre"] == "0_pre.tif" and row["change_threshold"] == 0.5 and "shift_px" in row["coregistration"]
    low = json.loads((out / "analysis.json").read_text())["results"][0]["findings"]
    assert low and all(f["threshold"] == 0.5 for f in low)
    assert main(args + ["--out", str(tmp_path / "high"), "--change-threshold", "3"]) == 0
    high = json.loads((tmp_path / "high" / "analysis.json").read_text())["results"][0]["findings"]
    assert sum(f["area_px"] for f in high) < sum(f["area_px"] for f in low)
    assert all(f["threshold"] == 3 and f["score_max"] >= 3 for f in high)

    ws = Workspace(ws_root)
    first = min(a["id"] for a in ws.list_analyses())
    fid = ws.scene_results(first)[0].findings[0].id
    ws.review_finding(fid, analyst="kim", status="rejected", notes="쓰레기 더미 아님")
    ws.close()
    capsys.readouterr()
    assert main(["report", "--analysis", str(out), "--format", "csv", "--bom"]) == 0
    assert f"reporting analysis {first} of the workspace" in capsys.readouterr().err
    raw = (out / "findings.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = {r["finding_id"]: r for r in csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))}
    assert (rows[fid]["review_status"], rows[fid]["notes"]) == ("rejected", "쓰레기 더미 아님")
