"""The engine layer without a Ray cluster: window tasks scored one by one and stitched on the driver give the local
engine's heatmap, area outputs (mosaic, seam-merged findings), CLI checks. That the local engine never imports Ray is
checked with the other lazy imports, in the same fresh interpreter (tests/test_lazy_imports.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from core.cli.main import main
from core.detection.pipeline import analyze_scene
from core.engine.area import merge_findings, write_area_outputs
from core.engine.assemble import SceneAssembler
from core.engine.scorer import TileScorer
from core.engine.tasks import plan_scene, window_tasks
from core.imagery.reader import open_scene
from core.types import Finding, GeoRef, SceneResult
from tests.support.area import write_area
from tests.support.data import REPO

MODEL = REPO / "assets" / "models" / "fcdd-resnet18.pt"


def _score_and_stitch(path: Path, out: Path, batch: int = 8) -> SceneResult:
    """What the Ray engine does, without Ray: tasks -> TileScorer batches -> SceneAssembler."""
    from core.detection.detector import Detector

    det = Detector.load(MODEL, device="cpu")
    scene = open_scene(path)
    sp = plan_scene(0, scene, det, str(path))
    tasks = window_tasks(sp)
    scorer = TileScorer(str(MODEL), precision_cpu="bf16" if det.amp else "fp32", batch_size=batch)
    with SceneAssembler(scene, det, sp, out) as asm:
        for i in range(0, len(tasks), batch):
            chunk = tasks[i:i + batch]
            cols = {k: np.asarray([t[k] for t in chunk]) for k in chunk[0]}
            scored = scorer(cols)
            for j in range(len(chunk)):
                asm.add({k: scored[k][j] for k in scored})
        res = asm.finish()
    scene.close()
    return res


@pytest.mark.slow
@pytest.mark.parametrize("size,gsd", [(1100, 0.5), (700, 0.25)])  # several windows; a resampled grid
def test_tasks_scored_apart_and_stitched_equal_the_local_engine(tmp_path, size, gsd):
    from affine import Affine

    from core.detection.detector import Detector

    path = write_area(tmp_path / "in", 1, 1, size, seed=3)[0]
    if gsd != 0.5:  # the same pixels at a finer GSD: the model (0.53 m) resamples them
        with rasterio.open(path, "r+") as ds:
            ds.transform = Affine(gsd, 0, ds.transform.c, 0, -gsd, ds.transform.f)
    ray_like = _score_and_stitch(path, tmp_path / "ray")
    det = Detector.load(MODEL, device="cpu")
    scene = open_scene(path)
    local = analyze_scene(scene, det, tmp_path / "local")
    scene.close()
    assert (ray_like.meta["resample"] is None) == (gsd == 0.5)
    a = rasterio.open(local.heatmap_path).read(1)
    b = rasterio.open(ray_like.heatmap_path).read(1)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.nanmax(np.abs(a - b)) <= 1e-4
    assert ray_like.image_score == pytest.approx(local.image_score, abs=1e-4)
    assert [(f.bbox_px, f.grade) for f in ray_like.findings] == [(f.bbox_px, f.grade) for f in local.findings]


def test_a_worker_read_error_names_the_scene(tmp_path):
    path = write_area(tmp_path / "in", 1, 1, 300)[0]
    scorer = TileScorer(str(MODEL), precision_cpu="fp32")
    scene = open_scene(path)
    from core.detection.detector import Detector

    tasks = window_tasks(plan_scene(0, scene, Detector.load(MODEL, device="cpu"), str(path)))
    scene.close()
    path.write_bytes(b"II*\0 truncated")  # the file is replaced under the run
    cols = {k: np.asarray([t[k] for t in tasks]) for k in tasks[0]}
    out = scorer(cols)
    assert all(out["error"]) and out["map"][0].size == 0


def test_engine_options_are_checked_and_recorded(tmp_path, capsys, monkeypatch):
    path = write_area(tmp_path / "in", 1, 1, 128)[0]
    rc = main(["analyze", str(path), "--engine", "local", "--workers", "2", "--no-workspace", "--quiet"])
    err = capsys.readouterr().err
    assert rc != 0 and "options of --engine ray" in err and "Traceback" not in err
    rc = main(["analyze", str(path), "--engine", "ray", "--workers", "-1", "--no-workspace", "--quiet"])
    err = capsys.readouterr().err
    assert rc != 0 and "--workers must be 0 or more" in err
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws"))
    rc = main(["analyze", str(path), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 0
    from core.store import Workspace

    with Workspace(tmp_path / "ws") as ws:
        options = ws.get_analysis(ws.list_analyses()[0]["id"])["options"]
    assert options["engine"] == "local" and options["workers"] == 0 and options["area"] is True


@pytest.mark.slow
def test_scattered_scenes_get_merged_findings_but_no_mostly_empty_mosaic(tmp_path, capsys):
    """Scenes far apart (here 20 km) would make a mosaic of mostly nothing, slow to warp and write and showing
    nothing the per-scene heatmaps do not: the area's findings and summary are written, the mosaic is not, and the
    CLI says why."""
    paths = write_area(tmp_path / "in", 1, 2, 256, seed=3)
    out = tmp_path / "o"
    args = ["analyze", *map(str, paths), "--model", str(MODEL), "--out", str(out), "--no-workspace", "--quiet"]
    assert main(args) == 0 and (out / "area" / "area_heatmap.tif").is_file()  # side by side: one mosaic
    capsys.readouterr()
    with rasterio.open(paths[1], "r+") as ds:
        t = ds.transform
        ds.transform = Affine(t.a, t.b, t.c + 20_000, t.d, t.e, t.f)
    assert main(args) == 0  # the same folder again, the second scene now 20 km away
    summary = json.loads((out / "area" / "area_summary.json").read_text())
    mosaic = summary["mosaic"]
    assert mosaic["skipped"] == "sparse" and mosaic["vrt"] is None and mosaic["cog"] is None
    assert 0 < mosaic["cover"] < 0.05 and mosaic["scenes"] == 2
    assert summary["findings"]["per_scene"] >= 1 and (out / "area" / "area_findings.geojson").is_file()
    # the first run's mosaic is gone, not left to be shown as this run's
    assert not (out / "area" / "area_heatmap.tif").exists() and not (out / "area" / "area_heatmap.vrt").exists()
    printed = capsys.readouterr().out
    assert "no area mosaic was made" in printed and "Traceback" not in printed
    assert main(["report", "--analysis", str(out), "--format", "pdf"]) == 0  # the report says why, not "moved"
    from pypdf import PdfReader

    text = " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(out / "report.pdf").pages)
    assert "The scenes lie far apart" in text and "analysed with --no-area" not in text


@pytest.mark.slow
def test_area_mosaic_and_findings_merged_across_the_seam(tmp_path):
    """Two adjacent scenes sharing a damaged block at their seam: the mosaic holds both heatmaps in one CRS,
    with overviews; the block's two halves are one area finding."""
    paths = write_area(tmp_path / "in", 1, 2, 512, seed=1)
    rc = main(["analyze", *map(str, paths), "--model", str(MODEL), "--out", str(tmp_path / "o"), "--no-workspace",
               "--quiet"])
    assert rc == 0
    out = tmp_path / "o"
    summary = json.loads((out / "area" / "area_summary.json").read_text())
    area = out / "area"
    with rasterio.open(area / "area_heatmap.tif") as cog, rasterio.open(area / "area_heatmap.vrt") as vrt:
        assert cog.crs == vrt.crs and cog.width == 1024 and cog.height == 512
        assert cog.overviews(1), "the COG has overviews"
        assert cog.profile.get("tiled") and cog.profile["blockxsize"] == 512
        mosaic = cog.read(1)
    for k, p in enumerate(paths):
        with rasterio.open(out / f"{p.stem}_heatmap.tif") as h:
            np.testing.assert_array_equal(mosaic[:, k * 512:(k + 1) * 512], h.read(1))
    # the debris patch across the seam: a finding touching the right edge of tile 0 and one touching the left
    # edge of tile 1, merged into one area finding naming both scenes
    res = json.loads((out / "analysis.json").read_text())["results"]
    rows = (512 // 3, 512 // 3 + 60)  # where write_area puts the seam patch

    def on_patch(f: dict) -> bool:
        return f["bbox_px"][1] < rows[1] and f["bbox_px"][3] > rows[0]

    left = [f for f in res[0]["findings"] if f["bbox_px"][2] >= 511 and on_patch(f)]
    right = [f for f in res[1]["findings"] if f["bbox_px"][0] <= 1 and on_patch(f)]
    assert left and right, "the seam patch is found on both sides"
    merged = json.loads((out / "area" / "area_findings.geojson").read_text())["features"]
    joined = [m["properties"] for m in merged if set(m["properties"]["parts"]) & {left[0]["id"], right[0]["id"]}]
    assert len(joined) == 1 and {left[0]["id"], right[0]["id"]} <= set(joined[0]["parts"])
    assert joined[0]["scenes"] == sorted(p.name for p in paths)
    assert summary["findings"]["joined_across_seams"] >= 1
    assert summary["findings"]["merged"] == summary["findings"]["per_scene"] - sum(
        len(m["properties"]["parts"]) - 1 for m in merged)


def _finding(fid: str, scene: str, ring: list[tuple[float, float]]) -> Finding:
    return Finding(id=fid, scene_name=scene, polygon_px=[], bbox_px=(0, 0, 1, 1), area_px=100.0, score_mean=2.0,
                   score_max=3.0, threshold=1.0, confidence=0.9, grade="damaged",
                   geometry={"type": "Polygon", "coordinates": [[list(p) for p in ring]]})


def test_merge_keeps_findings_apart_unless_they_touch_across_scenes():
    geo = GeoRef(crs="EPSG:4326", transform=Affine(1e-5, 0, 10.0, 0, -1e-5, 50.0))

    def res(name: str, fs: list[Finding]) -> SceneResult:
        return SceneResult(scene_name=name, width=100, height=100, image_score=1.0, verdict="anomalous", georef=geo,
                           bounds_wgs84=(10.0, 49.999, 10.001, 50.0), heatmap_path=None, overlay_path=None,
                           findings=fs, gsd_m=1.0, meta={"preview_scale": 1.0})

    sq = lambda x0, x1: [(x0, 49.9995), (x1, 49.9995), (x1, 49.9996), (x0, 49.9996), (x0, 49.9995)]  # noqa: E731
    a = _finding("a", "A", sq(10.0000, 10.0005))
    b = _finding("b", "B", sq(10.0005, 10.0008))  # touches a, other scene: merged
    c = _finding("c", "A", sq(10.00052, 10.0006))  # 1.4 m from a, same scene: kept apart from a
    d = _finding("d", "B", sq(10.0009, 10.00095))  # 7 m from b: apart
    merged = merge_findings([res("A", [a, c]), res("B", [b, d])])
    parts = sorted(sorted(m["parts"]) for m in merged)
    assert ["a", "b", "c"] in parts and ["d"] in parts
    assert write_area_outputs([res("A", [a])], "/nonexistent") is None  # one georeferenced scene: no area
