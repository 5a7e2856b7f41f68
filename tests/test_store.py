"""The workspace keeps everything: round trips, reviews with their audit trail, concurrency, archives, errors."""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError, WorkspaceError
from core.file_names import clean_name
from core.store import SCHEMA_VERSION, Workspace, default_root
from tests.support.store import HOSTILE, make_finding, make_result, new_analysis


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
    # names lose control and bidi-override characters (issue 12); descriptions are kept verbatim
    assert (case["name"], case["event"], case["description"]) == (clean_name(HOSTILE), "EF5 <b>", HOSTILE)
    assert "\u202e" not in case["name"] and "<script>" in case["name"]
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


