"""Kill the CLI mid-analysis, resume it: nothing finished is lost, nothing is done twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from core.cli.main import main
from core.store import Workspace
from tests.support.data import REPO


def test_kill_mid_analysis_then_resume(shared_data, tiny_model, tmp_path, capsys):
    post = sorted((shared_data / "geotiff/joplin_tornado_xview2deploy/post").glob("*.tif"))[:4]
    ws_root = tmp_path / "ws"
    env = {**os.environ, "BDA_WORKSPACE": str(ws_root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "core", "analyze", *map(str, post), "--model", str(tiny_model),
                             "--out", str(tmp_path / "out"), "--quiet"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ws = Workspace(ws_root)
    deadline = time.monotonic() + 300
    saved = []
    while time.monotonic() < deadline and proc.poll() is None:
        analyses = ws.list_analyses()
        if analyses:
            saved = ws.scene_results(analyses[0]["id"])
            if saved:
                break
        time.sleep(0.2)
    assert saved, f"no result was saved before the deadline: {proc.stdout.read().decode(errors='replace')[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    aid = ws.list_analyses()[0]["id"]
    before = {r.scene_name: [f.id for f in r.findings] for r in ws.scene_results(aid)}
    assert 1 <= len(before) < len(post), "the kill should land mid-batch"
    pending = ws.pending_inputs(aid)
    assert len(pending) == len(post) - len(before)

    rc = main(["analyze", "--resume", str(aid), "--workspace", str(ws_root), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    after = {r.scene_name: [f.id for f in r.findings] for r in ws.scene_results(aid)}
    assert sorted(after) == sorted(p.name for p in post), "every input analysed exactly once"
    for name, ids in before.items():
        assert after[name] == ids, "results finished before the kill are kept as they were"
    assert ws.get_analysis(aid)["status"] == "done" and not ws.pending_inputs(aid)
    assert (tmp_path / "out" / "summary.json").is_file()


def test_analyze_bad_inputs_keep_the_batch_going(shared_data, tiny_model, tmp_path, capsys):
    good = shared_data / "geotiff/joplin_tornado_xview2deploy/post/tile_31500-5137.tif"
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image")
    rc = main(["analyze", str(tmp_path / "empty.jpg"), str(good), str(tmp_path / "notes.png"),
               str(tmp_path / "missing.tif"), "--model", str(tiny_model), "--out", str(tmp_path / "o"),
               "--no-workspace", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "empty.jpg" in err and "notes.png" in err
    assert f"error: file not found: {tmp_path / 'missing.tif'}; check the path" in err
    import json

    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    by = {i["name"]: i for i in summary["inputs"]}
    assert by["tile_31500-5137.tif"]["error"] is None and by["tile_31500-5137.tif"]["crs"] == "EPSG:4326"
    assert by["empty.jpg"]["error"] and by["notes.png"]["error"]
    assert (tmp_path / "o" / "tile_31500-5137_heatmap.tif").is_file()
