"""The workspace keeps everything: round trips, reviews with their audit trail, concurrency, archives, errors."""

from __future__ import annotations

import math
import socket
import sqlite3
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from core.errors import CoreError, InputError, WorkspaceError
from core.store import SCHEMA_VERSION, Workspace, atomic_write_bytes, atomic_write_text, default_root
from core.types import Finding, GeoRef, SceneResult

HOSTILE = "<script>alert(1)</script> '; DROP TABLE findings; -- \u202e\ufeff 서울 ☢ \"quoted\" \\ \t\n"


def make_finding(fid: str, scene: str, *, geo: bool = True, x0: float = 0.0, width: float = 10.5, **kw) -> Finding:
    """A finding over the pixel box [x0, x0 + width] x [0, 8]."""
    base = dict(
        id=fid, scene_name=scene, polygon_px=[(x0, 0.0), (x0 + width, 0.0), (x0 + width, 8.0), (x0, 8.0)],
        bbox_px=(int(x0), 0, int(x0 + width) + 1, 8), area_px=width * 8, score_mean=1.5, score_max=3.25,
        threshold=1.0, confidence=0.8, grade="damaged",
        geometry={"type": "Polygon", "coordinates": [[[-94.5, 37.05], [-94.49, 37.05], [-94.49, 37.06],
                                                      [-94.5, 37.05]]]} if geo else None,
        centroid_lat=37.055 if geo else None, centroid_lon=-94.495 if geo else None,
        mgrs="15SUA6012345678" if geo else None, area_m2=1234.5 if geo else None, source_name=scene,
        model_name="fcdd_vgg11", model_version="1", model_sha256="ab" * 32, processed_at="2024-05-01T00:00:00Z")
    base.update(kw)
    return Finding(**base)


def make_result(name: str, n_findings: int = 2, *, error: str | None = None, folder: Path | None = None,
                geo: bool = True) -> SceneResult:
    georef = GeoRef("EPSG:32615", (0.5, 0.0, 360000.0, 0.0, -0.5, 4100000.0), method="raster") if geo else None
    return SceneResult(
        scene_name=name, width=640, height=480, image_score=2.5, verdict="anomalous", georef=georef,
        bounds_wgs84=(-94.5, 37.05, -94.49, 37.06) if geo else None,
        heatmap_path=folder / f"{name}.heat.tif" if folder else None,
        overlay_path=folder / f"{name}.overlay.png" if folder else None,
        findings=[] if error else [make_finding(f"f{i}", name, geo=geo, x0=20.0 * i) for i in range(n_findings)],
        source_path=Path("/data/in") / name, capture_time="2011-05-24T16:00:00Z" if geo else None,
        gsd_m=0.5 if geo else None, meta={"bands": 3, "warnings": [HOSTILE]}, error=error)


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "ws")
    yield w
    w.close()


def new_analysis(ws: Workspace, names: list[str], case: int | None = None) -> int:
    case = case or ws.create_case("case")
    return ws.create_analysis(case, [{"path": f"/data/in/{n}", "name": n} for n in names],
                              model={"name": "fcdd_vgg11", "sha256": "ab" * 32}, threshold=1.0, options={"tile": 224})


# -- location and schema ---------------------------------------------------------------------------------------
def test_root_resolution_argument_env_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "from-env"))
    assert Workspace().root == (tmp_path / "from-env").absolute()
    assert Workspace(tmp_path / "arg").root == (tmp_path / "arg").absolute()
    monkeypatch.delenv("BDA_WORKSPACE")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".local" / "share" / "bda-workbench"


def test_schema_version_wal_and_foreign_keys(ws: Workspace) -> None:
    assert ws.schema_version() == SCHEMA_VERSION
    con = sqlite3.connect(ws.db_path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in con.execute("SELECT version FROM schema_version")] == list(range(1, SCHEMA_VERSION + 1))
    con.close()
    ws2 = Workspace(ws.root)  # reopening migrates nothing and keeps the data
    assert ws2.schema_version() == SCHEMA_VERSION
    assert ws2._db.connection().execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_newer_schema_is_refused_with_advice(ws: Workspace) -> None:
    con = sqlite3.connect(ws.db_path)
    con.execute("INSERT INTO schema_version VALUES (?, 'x')", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    with pytest.raises(WorkspaceError, match="newer version"):
        Workspace(ws.root)


# -- round trips ---------------------------------------------------------------------------------------------
def test_case_round_trip_and_unknown_ids(ws: Workspace) -> None:
    cid = ws.create_case(HOSTILE.strip(), event="EF5 <b>", description=HOSTILE)
    case = ws.get_case(cid)
    assert (case["name"], case["event"], case["description"]) == (HOSTILE.strip(), "EF5 <b>", HOSTILE)
    assert [c["id"] for c in ws.list_cases()] == [cid]
    with pytest.raises(InputError, match="no case with id 999"):
        ws.get_case(999)
    for bad in (0, -1, "1", 1.5, None, True):
        with pytest.raises(InputError):
            ws.get_case(bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="empty"):
        ws.create_case("   ")


def test_analysis_and_scene_results_round_trip(ws: Workspace) -> None:
    aid = new_analysis(ws, ["a.tif", "b.jpg", "c.jpg"])
    folder = ws.analysis_dir(aid)
    assert folder.is_dir() and folder.is_relative_to(ws.root)
    a = ws.get_analysis(aid)
    assert a["status"] == "running" and a["model"]["name"] == "fcdd_vgg11" and a["threshold"] == 1.0
    assert a["options"] == {"tile": 224} and a["n_inputs"] == 3 and a["finished_at"] is None

    r_geo = make_result("a.tif", 3, folder=folder)
    r_geo.findings[0].notes = HOSTILE
    r_geo.findings[0].score_mean = np.float32(1.5)  # numpy scalars from the detector are stored as plain floats
    r_plain = make_result("b.jpg", 1, geo=False)
    r_plain.image_score = float("nan")
    ws.save_scene_result(aid, r_geo)
    ws.save_scene_result(aid, r_plain)
    ws.save_scene_result(aid, make_result("c.jpg", error="cannot decode c.jpg: " + HOSTILE))
    ws.finish_analysis(aid, "done")

    got = ws.scene_results(aid)
    assert [r.scene_name for r in got] == ["a.tif", "b.jpg", "c.jpg"]
    g = got[0]
    assert g.georef == r_geo.georef and g.bounds_wgs84 == r_geo.bounds_wgs84
    assert g.heatmap_path == folder / "a.tif.heat.tif" and g.source_path == Path("/data/in/a.tif")
    assert g.meta == r_geo.meta and g.capture_time == r_geo.capture_time and g.error is None
    assert [f.id for f in g.findings] == [f"A{aid}-f0", f"A{aid}-f1", f"A{aid}-f2"]
    for want, have in zip(r_geo.findings, g.findings, strict=True):
        assert have.to_dict() == {**want.to_dict(), "id": f"A{aid}-{want.id}"}
    assert g.findings[0].notes == HOSTILE
    assert got[1].georef is None and got[1].bounds_wgs84 is None and math.isnan(got[1].image_score)
    assert got[1].findings[0].geometry is None and got[1].findings[0].mgrs is None
    assert got[2].error.endswith(HOSTILE) and got[2].findings == []
    a = ws.get_analysis(aid)
    assert (a["status"], a["n_done"], a["n_failed"], a["n_findings"]) == ("done", 2, 1, 4)
    assert a["finished_at"] >= a["created_at"]
    assert ws.get_finding(f"A{aid}-f1").to_dict() == g.findings[1].to_dict()


def test_saving_again_is_idempotent_and_keeps_reviews(ws: Workspace) -> None:
    aid = new_analysis(ws, ["a.tif", "b.tif"])
    ws.save_scene_result(aid, make_result("a.tif", 3))
    ws.review_finding(f"A{aid}-f1", analyst="kim", status="confirmed", notes="roof gone")
    ws.save_scene_result(aid, make_result("a.tif", 3))  # a resumed run repeating the same input
    ws.save_scene_result(aid, ws.scene_results(aid)[0])  # re-saving what was read back keeps the same ids
    (res,) = ws.scene_results(aid)
    assert [f.id for f in res.findings] == [f"A{aid}-f0", f"A{aid}-f1", f"A{aid}-f2"]
    assert res.findings[1].review_status == "confirmed" and res.findings[1].notes == "roof gone"
    assert ws.get_analysis(aid)["n_findings"] == 3 and len(ws.review_history(f"A{aid}-f1")) == 1
    ws.save_scene_result(aid, make_result("b.tif", 2))  # same raw ids in another scene: still unique
    ids = [f.id for r in ws.scene_results(aid) for f in r.findings]
    assert len(ids) == len(set(ids)) == 5 and all(i.startswith(f"A{aid}-") for i in ids)
    with pytest.raises(InputError, match="not an input"):
        ws.save_scene_result(aid, make_result("zzz.tif"))
    ws.save_scene_result(aid, make_result("renamed-by-reader"), input_name="b.tif")


def test_reviews_follow_their_region_when_findings_are_extracted_again(ws: Workspace) -> None:
    aid = new_analysis(ws, ["a.tif"])
    ws.save_scene_result(aid, make_result("a.tif", 4))  # regions at x = 0, 20, 40, 60
    ws.review_finding(f"A{aid}-f1", analyst="kim", status="confirmed", notes="roof gone")
    ws.review_finding(f"A{aid}-f2", analyst="lee", status="rejected", grade="possibly damaged")
    ws.review_finding(f"A{aid}-f3", analyst="park", notes="check tomorrow")
    # a new threshold: ids are re-ranked, x=40 grows, x=20 vanishes, x=60 moves a little, x=0 vanishes, one new region
    again = make_result("a.tif", 0)
    again.findings = [make_finding("f0", "a.tif", x0=38.0, width=14.0, grade="destroyed"),
                      make_finding("f1", "a.tif", x0=100.0),
                      make_finding("f2", "a.tif", x0=61.0, grade="damaged")]
    ws.save_scene_result(aid, again)
    got = {f.id: f for f in ws.scene_results(aid)[0].findings}
    assert set(got) == {f"A{aid}-f2", f"A{aid}-f1-2", f"A{aid}-f3", f"A{aid}-f1"}
    cont = got[f"A{aid}-f2"]  # continues as the grown x=40 region, with lee's rejection and grade
    assert (cont.review_status, cont.grade, cont.polygon_px[0]) == ("rejected", "possibly damaged", (38.0, 0.0))
    moved = got[f"A{aid}-f3"]  # x=60 -> 61: notes kept; nobody set its grade, so the new extraction's grade counts
    assert (moved.notes, moved.grade, moved.review_status) == ("check tomorrow", "damaged", "unreviewed")
    kept = got[f"A{aid}-f1"]  # the confirmed x=20 region is gone from the new extraction: kept as it was
    assert (kept.review_status, kept.notes, kept.polygon_px[0]) == ("confirmed", "roof gone", (20.0, 0.0))
    fresh = got[f"A{aid}-f1-2"]  # the new region's own id f1 was taken by the kept review
    assert fresh.review_status == "unreviewed" and fresh.polygon_px[0] == (100.0, 0.0)
    assert [h["analyst"] for h in ws.review_history(f"A{aid}-f2")] == ["lee"]
    assert ws.get_analysis(aid)["n_findings"] == 4  # x=0 (never reviewed) is gone
    with pytest.raises(InputError):
        ws.get_finding(f"A{aid}-f0")


def test_pending_inputs_resume_and_status_checks(ws: Workspace) -> None:
    names = ["a", "b", "c", "d"]
    aid = new_analysis(ws, names)
    assert [p["name"] for p in ws.pending_inputs(aid)] == names
    assert ws.pending_inputs(aid)[0] == {"path": "/data/in/a", "name": "a", "pre_path": None}
    ws.save_scene_result(aid, make_result("b"))
    ws.save_scene_result(aid, make_result("d", error="boom"))
    assert [p["name"] for p in ws.pending_inputs(aid)] == ["a", "c"]
    assert [p["name"] for p in ws.pending_inputs(aid, include_failed=True)] == ["a", "c", "d"]
    ws.finish_analysis(aid, "interrupted")
    assert [p["name"] for p in ws.resume_analysis(aid)] == ["a", "c"]
    assert ws.get_analysis(aid)["status"] == "running"
    with pytest.raises(InputError, match="done, failed, interrupted"):
        ws.finish_analysis(aid, "finished")
    with pytest.raises(InputError, match="no analysis with id"):
        ws.pending_inputs(aid + 100)
    with pytest.raises(InputError, match="distinct"):
        ws.create_analysis(ws.create_case("x"), [{"path": "/a/x.tif"}, {"path": "/b/x.tif"}], model={},
                           threshold=None, options={})
    with pytest.raises(InputError):
        ws.create_analysis(ws.create_case("x"), [], model={}, threshold=None, options={})
    with pytest.raises(InputError, match="cannot be stored"):
        ws.create_analysis(ws.create_case("x"), [{"path": "a"}], model={"f": object()}, threshold=None, options={})


def test_inputs_keep_pre_path_and_extras(ws: Workspace) -> None:
    cid = ws.create_case("pairs")
    aid = ws.create_analysis(cid, [{"path": "/post/t1.tif", "pre_path": "/pre/t1.tif", "kind": "geotiff"}],
                             model={}, threshold=None, options={})
    assert ws.pending_inputs(aid) == [{"path": "/post/t1.tif", "name": "t1.tif", "pre_path": "/pre/t1.tif",
                                       "kind": "geotiff"}]
    assert ws.get_analysis(aid)["threshold"] is None


def test_list_and_delete_analyses(ws: Workspace) -> None:
    c1, c2 = ws.create_case("one"), ws.create_case("two")
    a1, a2, a3 = new_analysis(ws, ["x"], c1), new_analysis(ws, ["x"], c1), new_analysis(ws, ["x"], c2)
    ws.save_scene_result(a1, make_result("x"))
    ws.review_finding(f"A{a1}-f0", analyst="kim", status="rejected")
    (ws.analysis_dir(a1) / "heat.tif").write_bytes(b"x")
    with pytest.raises(InputError, match="still running"):
        ws.delete_analysis(a1)  # this process is running it
    ws.finish_analysis(a1, "done")
    assert [a["id"] for a in ws.list_analyses(c1)] == [a2, a1]
    assert [a["id"] for a in ws.list_analyses()] == [a3, a2, a1]
    assert ws.get_case(c1)["n_analyses"] == 2
    ws.delete_analysis(a1)
    assert not (ws.root / "files" / "analyses" / str(a1)).exists()
    assert [a["id"] for a in ws.list_analyses(c1)] == [a2]
    with pytest.raises(InputError):
        ws.get_finding(f"A{a1}-f0")
    assert ws._db.query("SELECT COUNT(*) FROM reviews")[0][0] == 0
    assert ws.check_integrity() == []
    a4 = new_analysis(ws, ["x"], c1)
    assert a4 > a3  # ids are never reused, so "A<id>-..." finding ids stay unique


# -- review ---------------------------------------------------------------------------------------------------
def test_review_persists_with_audit_history(ws: Workspace) -> None:
    aid = new_analysis(ws, ["a"])
    ws.save_scene_result(aid, make_result("a", 2))
    fid = f"A{aid}-f0"
    before = datetime.now(timezone.utc)
    f = ws.review_finding(fid, analyst="Kim 민수", status="confirmed", grade="destroyed")
    assert (f.review_status, f.grade, f.analyst, f.det_method) == ("confirmed", "destroyed", "Kim 민수",
                                                                  "semi-automatic extraction")
    ws.review_finding(fid, analyst="lee", notes=HOSTILE)
    ws.review_finding(fid, analyst="park", status="rejected")
    # a fresh workspace object (a restarted server) sees the current state and the whole history
    other = Workspace(ws.root)
    cur = other.get_finding(fid)
    assert (cur.review_status, cur.grade, cur.notes, cur.analyst) == ("rejected", "destroyed", HOSTILE, "park")
    assert cur.det_method == "automatic extraction"
    hist = other.review_history(fid)
    assert [h["analyst"] for h in hist] == ["Kim 민수", "lee", "park"]
    assert (hist[0]["status_before"], hist[0]["status_after"]) == ("unreviewed", "confirmed")
    assert (hist[0]["grade_before"], hist[0]["grade_after"]) == ("damaged", "destroyed")
    assert hist[0]["notes_before"] is None and hist[0]["notes_after"] is None
    assert (hist[1]["notes_before"], hist[1]["notes_after"]) == ("", HOSTILE) and hist[1]["status_after"] is None
    assert (hist[2]["status_before"], hist[2]["status_after"]) == ("confirmed", "rejected")
    times = [datetime.fromisoformat(h["at"]) for h in hist]
    assert all(t.utcoffset().total_seconds() == 0 for t in times)
    assert before <= times[0] <= times[1] <= times[2] <= datetime.now(timezone.utc)
    assert other.scene_results(aid)[0].findings[0].review_status == "rejected"
    assert other.review_history(f"A{aid}-f1") == []
    assert other.finding_analysis(fid)["input_name"] == "a"


def test_review_refuses_bad_arguments(ws: Workspace) -> None:
    aid = new_analysis(ws, ["a"])
    ws.save_scene_result(aid, make_result("a", 1))
    fid = f"A{aid}-f0"
    with pytest.raises(InputError, match="unreviewed, confirmed, rejected"):
        ws.review_finding(fid, analyst="kim", status="approved")
    with pytest.raises(InputError, match="analyst"):
        ws.review_finding(fid, analyst="", status="confirmed")
    with pytest.raises(InputError, match="nothing to record"):
        ws.review_finding(fid, analyst="kim")
    with pytest.raises(InputError, match="no finding"):
        ws.review_finding("A999-f0", analyst="kim", status="confirmed")
    with pytest.raises(InputError):
        ws.review_finding(fid, analyst="kim", notes="bad \ud800 surrogate")
    assert ws.review_history(fid) == [] and ws.get_finding(fid).review_status == "unreviewed"


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
