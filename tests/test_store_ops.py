"""The workspace: registered models and jobs, actionable errors, case archives, atomic writes, first-case races."""

from __future__ import annotations

import socket
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.errors import CoreError, InputError, WorkspaceError
from core.store import Workspace, atomic_write_bytes, atomic_write_text
from tests.support.store import HOSTILE, make_result, new_analysis


# -- models and jobs -------------------------------------------------------------------------------------------
def test_models_register_dedupe_and_copy(ws: Workspace, tmp_path: Path) -> None:
    ckpt = tmp_path / "my model.pt"
    ckpt.write_bytes(b"weights" * 100)
    mid = ws.register_model(ckpt, {"name": "FCDD VGG", "arch": "fcdd_vgg11", "auc": 0.91})
    assert ws.register_model(ckpt, {"name": "again"}) == mid
    other = tmp_path / "b.pt"
    other.write_bytes(b"other")
    mid2 = ws.register_model(other, {}, copy=True)
    models = ws.list_models()
    assert [m["id"] for m in models] == [mid2, mid]
    m = ws.get_model(mid)
    assert m["path"] == ckpt and m["info"]["auc"] == 0.91 and m["size_bytes"] == 700 and m["exists"]
    copied = ws.get_model(mid2)
    assert copied["path"].is_relative_to(ws.models_dir()) and copied["path"].read_bytes() == b"other"
    other.unlink()
    assert ws.get_model(mid2)["exists"]
    with pytest.raises(InputError, match="does not exist"):
        ws.register_model(tmp_path / "missing.pt", {})


def test_jobs_progress_log_and_cancel(ws: Workspace) -> None:
    jid = ws.create_job("train", {"epochs": 3, "data": "/data/aider"})
    assert ws.get_job(jid)["status"] == "queued"
    ws.update_job(jid, status="running", progress=0.0, message="starting")
    for epoch in range(3):
        ws.update_job(jid, progress=(epoch + 1) / 3, log_append={"epoch": epoch, "loss": 1.0 / (epoch + 1)})
    ws.request_cancel(jid)
    job = Workspace(ws.root).get_job(jid)  # another page / a restart sees it
    assert job["cancel_requested"] and job["progress"] == 1.0 and job["params"]["epochs"] == 3
    assert [e["epoch"] for e in job["log"]] == [0, 1, 2] and all("at" in e for e in job["log"])
    ws.update_job(jid, status="cancelled", result={"checkpoint": None})
    job = ws.get_job(jid)
    assert job["status"] == "cancelled" and job["finished_at"] and job["result"] == {"checkpoint": None}
    assert [j["id"] for j in ws.list_jobs(kind="train")] == [jid] and ws.list_jobs(status="running") == []
    with pytest.raises(InputError):
        ws.update_job(jid, progress=1.5)
    with pytest.raises(InputError):
        ws.update_job(jid, status="paused")
    with pytest.raises(InputError):
        ws.get_job(jid + 1)


def test_work_of_a_dead_process_is_marked_interrupted(ws: Workspace) -> None:
    aid = new_analysis(ws, ["a"])
    jid = ws.create_job("analyze", {"analysis_id": aid})
    ws.update_job(jid, status="running")
    dead = f"{socket.gethostname()}|999999999|dead"  # a process that no longer exists on this machine
    with ws._db.write() as conn:
        conn.execute("UPDATE analyses SET owner=? WHERE id=?", (dead, aid))
        conn.execute("UPDATE jobs SET owner=? WHERE id=?", (dead, jid))
    live = new_analysis(ws, ["b"])
    foreign_busy, foreign_quiet = new_analysis(ws, ["c"]), new_analysis(ws, ["d"])
    with ws._db.write() as conn:  # another host name (e.g. this machine before a container restart)
        conn.execute("UPDATE analyses SET owner='elsewhere|1|x' WHERE id IN (?, ?)", (foreign_busy, foreign_quiet))
        conn.execute("UPDATE analyses SET updated_at='2001-01-01T00:00:00+00:00' WHERE id=?", (foreign_quiet,))
    reopened = Workspace(ws.root)
    assert reopened.get_analysis(aid)["status"] == "interrupted"
    assert reopened.get_job(jid)["status"] == "interrupted"
    assert reopened.get_analysis(live)["status"] == "running"  # owned by this live process
    assert reopened.get_analysis(foreign_busy)["status"] == "running"  # updated moments ago
    assert reopened.get_analysis(foreign_quiet)["status"] == "interrupted"  # silent for years


# -- errors a person can act on --------------------------------------------------------------------------------
def test_unwritable_location_is_a_workspace_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(WorkspaceError, match="BDA_WORKSPACE"):
        Workspace(blocker / "ws")


def test_corrupt_database_says_what_to_do(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "workspace.sqlite3").write_bytes(b"this is not sqlite at all " * 200)
    with pytest.raises(WorkspaceError, match="damaged.*move that file"):
        Workspace(root)


def test_lock_held_too_long_is_a_workspace_error(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", busy_timeout_s=0.3)
    blocker = sqlite3.connect(ws.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(WorkspaceError, match="locked for more than"):
            ws.create_case("waits")
        assert ws.list_cases() == []  # readers are never blocked in WAL mode
    finally:
        blocker.execute("ROLLBACK")
    ws.create_case("now it works")


def test_errors_are_core_errors() -> None:
    assert issubclass(WorkspaceError, CoreError) and issubclass(InputError, CoreError)


# -- archives ----------------------------------------------------------------------------------------------------
def test_case_export_import_round_trip(ws: Workspace, tmp_path: Path) -> None:
    cid = ws.create_case("Joplin 토네이도", event="EF5", description=HOSTILE)
    aid = new_analysis(ws, ["a.tif", "b.tif", "c.tif"], cid)
    folder = ws.analysis_dir(aid)
    (folder / "a.tif.heat.tif").write_bytes(np.arange(5000, dtype=np.float32).tobytes())
    (folder / "a.tif.overlay.png").write_bytes(b"\x89PNG fake but bytes")
    (folder / "reports").mkdir()
    (folder / "reports" / "report.pdf").write_bytes(b"%PDF-1.7")
    ws.save_scene_result(aid, make_result("a.tif", 2, folder=folder))
    ws.save_scene_result(aid, make_result("b.tif", error="unreadable"))
    ws.review_finding(f"A{aid}-f1", analyst="kim", status="confirmed", notes=HOSTILE)
    ws.finish_analysis(aid, "interrupted")
    archive = ws.export_case(cid, tmp_path)
    assert archive.parent == tmp_path and archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as zf:
        assert {"manifest.json", "rows.json", f"files/analyses/{aid}/reports/report.pdf"} <= set(zf.namelist())

    dest = Workspace(tmp_path / "other")
    dest.create_analysis(dest.create_case("occupies ids"), [{"path": "x"}], model={}, threshold=None, options={})
    new_cid = dest.import_case(archive)
    case = dest.get_case(new_cid)
    assert (case["name"], case["description"]) == ("Joplin 토네이도", HOSTILE)
    (a,) = dest.list_analyses(new_cid)
    new_aid = a["id"]
    assert new_aid != aid and a["status"] == "interrupted" and a["model"]["name"] == "fcdd_vgg11"
    assert [p["name"] for p in dest.pending_inputs(new_aid)] == ["c.tif"]
    got = dest.scene_results(new_aid)
    assert [r.scene_name for r in got] == ["a.tif", "b.tif"] and got[1].error == "unreadable"
    assert got[0].heatmap_path == dest.analysis_dir(new_aid) / "a.tif.heat.tif"
    assert got[0].heatmap_path.read_bytes() == (folder / "a.tif.heat.tif").read_bytes()
    assert (dest.analysis_dir(new_aid) / "reports" / "report.pdf").read_bytes() == b"%PDF-1.7"
    assert [f.id for f in got[0].findings] == [f"A{new_aid}-f0", f"A{new_aid}-f1"]
    f1 = dest.get_finding(f"A{new_aid}-f1")
    assert (f1.review_status, f1.notes, f1.analyst) == ("confirmed", HOSTILE, "kim")
    (h,) = dest.review_history(f"A{new_aid}-f1")
    assert h["analyst"] == "kim" and h["at"] == ws.review_history(f"A{aid}-f1")[0]["at"]
    assert dest.check_integrity() == []
    assert not any((dest.root / "tmp").iterdir())


def test_import_refuses_tampered_or_foreign_archives(ws: Workspace, tmp_path: Path) -> None:
    cid = ws.create_case("c")
    aid = new_analysis(ws, ["a"], cid)
    (ws.analysis_dir(aid) / "heat.bin").write_bytes(b"original")
    archive = ws.export_case(cid, tmp_path / "c.zip")
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info.filename, b"evil!!!!" if info.filename.endswith("heat.bin") else data)
    n_cases = len(ws.list_cases())
    with pytest.raises(InputError, match="checksum"):
        ws.import_case(tampered)
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("manifest.json", '{"format": "something-else"}')
    with pytest.raises(InputError, match="not a case archive"):
        ws.import_case(foreign)
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
    with pytest.raises(InputError, match="unsafe"):
        ws.import_case(slip)
    assert not (ws.root / "escaped.txt").exists() and not (ws.root.parent / "escaped.txt").exists()
    assert len(ws.list_cases()) == n_cases and not any((ws.root / "tmp").iterdir())


# -- atomic writes ------------------------------------------------------------------------------------------------
def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    atomic_write_text(target, "first 서울")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]  # no temp files left behind
    assert target.stat().st_mode & 0o777 == 0o644
    target.chmod(0o640)
    atomic_write_text(target, "third")
    assert target.read_text() == "third" and target.stat().st_mode & 0o777 == 0o640  # permissions kept
    with pytest.raises(WorkspaceError, match="could not write"):
        atomic_write_bytes(target / "under-a-file", b"x")


def test_ensure_case_is_one_case_under_concurrency(tmp_path):
    import threading

    from core.store import Workspace

    ids: list[int] = []

    def open_and_ensure() -> None:
        ids.append(Workspace(tmp_path / "ws").ensure_case("Case 1"))

    threads = [threading.Thread(target=open_and_ensure) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ws = Workspace(tmp_path / "ws")
    assert len(ws.list_cases()) == 1 and set(ids) == {ws.list_cases()[0]["id"]}
    ws.create_case("second")
    assert ws.ensure_case("Case 1") == min(c["id"] for c in ws.list_cases())
