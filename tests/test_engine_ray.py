"""The Ray engine on a real two-node Ray cluster on loopback (head + a second node, each started with `ray start`
and stopped afterwards, no process left): the same answer as the local engine, a worker killed mid-run is
restarted by Ray and the run completes, a driver killed mid-run resumes without recomputing finished scenes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from core.cli.main import main
from core.store import Workspace
from tests.support.data import REPO
from tests.support.ray_cluster import LoopbackCluster, marked_pids

pytestmark = pytest.mark.slow

JOPLIN = "geotiff/joplin_tornado_xview2deploy"
#: the fast bundled model these runs were written for (the app default, feature matching, is ~30x slower)
FAST = ["--model", str(REPO / "assets" / "models" / "fcdd-resnet18.pt")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LoopbackCluster(tmp_path_factory.mktemp("ray-cluster")).start()
    try:
        yield c
    finally:
        c.stop()
        assert not marked_pids(c.marker), "a process of the test cluster is still running"


@pytest.fixture(scope="module")
def area(shared_data) -> list[Path]:
    """The six adjacent Joplin post-event tiles (a 3 x 2 area of 1024 px tiles)."""
    return sorted((shared_data / JOPLIN / "post").glob("*.tif"))


@pytest.fixture(scope="module")
def local_run(area, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    assert main(["analyze", *FAST, *map(str, area), "--out", str(out), "--no-workspace", "--quiet"]) == 0
    return out


@pytest.fixture()
def ray_env(monkeypatch, cluster):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the test cluster runs without a token
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def _same_as_local(local: Path, out: Path, names: list[str]) -> None:
    """Heatmaps within 1e-4 and the same findings as the local engine's run, scene by scene."""
    lres = {r["scene_name"]: r for r in json.loads((local / "analysis.json").read_text())["results"]}
    rres = {r["scene_name"]: r for r in json.loads((out / "analysis.json").read_text())["results"]}
    for name in names:
        stem = Path(name).stem
        with rasterio.open(local / f"{stem}_heatmap.tif") as a, rasterio.open(out / f"{stem}_heatmap.tif") as b:
            x, y = a.read(1), b.read(1)
            assert a.crs == b.crs and a.transform == b.transform
        assert np.array_equal(np.isnan(x), np.isnan(y)), name
        assert float(np.nanmax(np.abs(x - y))) <= 1e-4, name
        # a workspace prefixes finding ids with its analysis ("A1-"); the rest of the id is the scene's
        key = lambda f: (re.sub(r"^A\d+-", "", f["id"]), tuple(f["bbox_px"]), f["grade"])  # noqa: E731
        assert [key(f) for f in rres[name]["findings"]] == [key(f) for f in lres[name]["findings"]], name
        assert rres[name]["image_score"] == pytest.approx(lres[name]["image_score"], abs=1e-4)


def test_cluster_run_equals_the_local_engine(cluster, ray_env, area, local_run, tmp_path, capsys):
    out = tmp_path / "ray"
    rc = main(["analyze", *FAST, *map(str, area), "--engine", "ray", "--address", cluster.address, "--workers", "2",
               "--out", str(out), "--no-workspace"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    _same_as_local(local_run, out, [p.name for p in area])
    results = json.loads((out / "analysis.json").read_text())["results"]
    workers = {w for r in results for w in [r["meta"]["engine"]["workers"]]}
    assert all(r["meta"]["engine"]["name"] == "ray" for r in results) and max(workers) >= 1
    # the area outputs agree too: same mosaic, same merged findings
    ra = json.loads((out / "area" / "area_summary.json").read_text())
    la = json.loads((local_run / "area" / "area_summary.json").read_text())
    assert ra["findings"] == la["findings"] and ra["mosaic"]["width"] == la["mosaic"]["width"]
    assert ra["findings"]["joined_across_seams"] >= 1, "Joplin's damage crosses the tile seams"
    with rasterio.open(out / "area" / "area_heatmap.tif") as a, rasterio.open(local_run / "area" /
                                                                                "area_heatmap.tif") as b:
        assert float(np.nanmax(np.abs(a.read(1, out_shape=(512, 768)) - b.read(1, out_shape=(512, 768))))) <= 1e-4
    assert "[6/6]" in captured.err and "overall" in captured.err  # progress per scene and overall


def test_scene_split_equals_the_local_engine(cluster, ray_env, area, local_run, tmp_path, capsys):
    """--split scenes: whole inputs analysed and written by the workers, the same outputs as the local engine."""
    out = tmp_path / "scenes"
    rc = main(["analyze", *FAST, *map(str, area), "--engine", "ray", "--address", cluster.address, "--workers", "2",
               "--split", "scenes", "--out", str(out), "--no-workspace", "--quiet"])
    assert rc == 0, capsys.readouterr().err[-3000:]
    _same_as_local(local_run, out, [p.name for p in area])
    results = json.loads((out / "analysis.json").read_text())["results"]
    assert {r["meta"]["engine"]["split"] for r in results} == {"scenes"}
    # which worker takes which scene is Ray's scheduling (a worker that starts first may take them all)
    assert all(len(r["meta"]["engine"]["per_worker"]) == 1 for r in results)


def _start_cli(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-m", "core", "analyze", *FAST, *args, "--quiet"], cwd=REPO, env=env,
                                stdout=f, stderr=subprocess.STDOUT)


def _wait_first_saved(ws: Workspace, proc: subprocess.Popen[bytes], log: Path, timeout: float = 400) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        analyses = ws.list_analyses()
        if analyses and ws.scene_results(analyses[0]["id"]):
            return int(analyses[0]["id"])
        time.sleep(0.2)
    raise AssertionError(f"no scene was saved before the deadline:\n{log.read_text(errors='replace')[-3000:]}")


def _wait_workers(cluster: LoopbackCluster, proc: subprocess.Popen[bytes], log: Path,
                  timeout: float = 400) -> list[int]:
    """The cluster's model workers (Ray Data actors), as soon as they run while ``proc`` does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if workers := cluster.worker_pids():
            return workers
        time.sleep(0.2)
    raise AssertionError("the model workers never ran as Ray actors on the cluster:\n"
                         f"{log.read_text(errors='replace')[-3000:]}")


def test_worker_killed_mid_run_is_restarted_and_the_run_completes(cluster, ray_env, area, shared_data, local_run,
                                                                   tmp_path):
    inputs = [*area, *sorted((shared_data / JOPLIN / "pre").glob("*.tif"))]
    env = {**ray_env, "BDA_WORKSPACE": str(tmp_path / "ws")}
    log = tmp_path / "cli.log"
    proc = _start_cli([*map(str, inputs), "--engine", "ray", "--address", cluster.address, "--workers", "2",
                       "--out", str(tmp_path / "out")], env, log)
    ws = Workspace(tmp_path / "ws")
    try:
        # kill a model worker while the cluster's part of the run goes on: the actors exist only then (waiting for
        # the first saved scene instead missed them on a busy machine: the driver saved it after the last batch)
        workers = _wait_workers(cluster, proc, log)
        os.kill(workers[0], signal.SIGKILL)
        assert proc.poll() is None, "the kill should land mid-run"
        assert proc.wait(600) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (analysis,) = ws.list_analyses()
    aid = int(analysis["id"])
    results = ws.scene_results(aid)
    assert sorted(r.scene_name for r in results) == sorted(p.name for p in inputs)
    assert all(r.error is None for r in results) and ws.get_analysis(aid)["status"] == "done"
    assert ws.get_analysis(aid)["options"]["engine"] == "ray"
    _same_as_local(local_run, tmp_path / "out", [p.name for p in area])


def test_driver_killed_mid_run_resumes_without_recomputing(cluster, ray_env, area, shared_data, tmp_path, capsys):
    inputs = [*area, *sorted((shared_data / JOPLIN / "pre").glob("*.tif"))]
    ws_root = tmp_path / "ws"
    env = {**ray_env, "BDA_WORKSPACE": str(ws_root)}
    log = tmp_path / "cli.log"
    proc = _start_cli([*map(str, inputs), "--engine", "ray", "--address", cluster.address, "--workers", "2",
                       "--out", str(tmp_path / "out")], env, log)
    ws = Workspace(ws_root)
    try:
        aid = _wait_first_saved(ws, proc, log)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {r.scene_name: r for r in ws.scene_results(aid)}
    assert 1 <= len(before) < len(inputs), "the kill should land mid-run"
    stamps = {n: Path(r.heatmap_path).stat().st_mtime_ns for n, r in before.items() if r.heatmap_path}
    rc = main(["analyze", *FAST, "--resume", str(aid), "--workspace", str(ws_root), "--quiet"])
    assert rc == 0, capsys.readouterr().err[-3000:]
    after = {r.scene_name: r for r in ws.scene_results(aid)}
    assert sorted(after) == sorted(p.name for p in inputs), "every input analysed exactly once"
    for name, r in before.items():
        assert [f.id for f in after[name].findings] == [f.id for f in r.findings]
        assert Path(r.heatmap_path).stat().st_mtime_ns == stamps[name], f"{name} was computed again"
    assert ws.get_analysis(aid)["status"] == "done" and ws.get_analysis(aid)["options"]["engine"] == "ray"
    assert (tmp_path / "out" / "area" / "area_summary.json").is_file()


def test_analyze_page_runs_on_the_cluster(cluster, ray_env, area, tmp_path, monkeypatch):
    """With BDA_RAY_ADDRESS set, the Analyze page offers the cluster; an analysis run there is recorded with it."""
    from streamlit.testing.v1 import AppTest

    from core.engine import ENV_RAY_ADDRESS
    from ui import state as S

    monkeypatch.setenv(ENV_RAY_ADDRESS, cluster.address)
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws"))
    ws = Workspace(tmp_path / "ws")
    case = ws.create_case("Cluster")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    at.session_state[S.CASE_ID] = case
    at.session_state[S.STAGED] = [{"path": str(p), "name": p.name, "origin": "server path"} for p in area[:2]]
    at.run()
    at.switch_page("pages/analyze.py").run()
    assert not at.exception, at.exception
    next(r for r in at.radio if r.label == "Run on").set_value("ray").run()
    at.button(key="run_analysis").click().run()
    assert not at.exception, at.exception
    analysis = ws.list_analyses(case)[0]
    full = ws.get_analysis(analysis["id"])
    assert full["status"] == "done" and full["options"]["engine"] == "ray"
    assert full["options"]["ray_address"] == cluster.address
    results = ws.scene_results(analysis["id"])
    assert len(results) == 2 and all(r.error is None and r.meta["engine"]["name"] == "ray" for r in results)
