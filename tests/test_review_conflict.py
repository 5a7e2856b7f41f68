"""Two analysts reviewing one finding (issue 12, finding 3): a review saved against an older state of the finding
is refused with who changed what and when; the analyst keeps the other review or applies theirs on top, and both
decisions stay in the audit trail. In the store, and on the Report page of two browser sessions (AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import ReviewConflictError
from core.store import Workspace
from tests.support.app import new_app, texts
from tests.support.store import make_result, new_analysis
from ui import state as S

torch.set_num_threads(1)


def _finding(ws: Workspace) -> tuple[int, str]:
    aid = new_analysis(ws, ["a.tif"])
    ws.save_scene_result(aid, make_result("a.tif"))
    ws.finish_analysis(aid)
    return aid, ws.scene_results(aid)[0].findings[0].id


def test_a_stale_review_is_refused_with_who_changed_what(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    aid, fid = _finding(ws)
    start = ws.review_version(fid)
    assert start == 0 and ws.review_versions(aid)[fid] == 0
    ws.review_finding(fid, analyst="kim", status="confirmed", expected_version=start)
    with pytest.raises(ReviewConflictError, match="reviewed by kim at .* UTC after you opened it") as info:
        ws.review_finding(fid, analyst="lee", status="rejected", notes="shadow", expected_version=start)
    conflict = info.value
    assert conflict.finding.review_status == "confirmed"
    assert [(r["analyst"], r["status_after"]) for r in conflict.since] == [("kim", "confirmed")]
    assert ws.get_finding(fid).review_status == "confirmed"  # nothing of lee's was saved
    ws.review_finding(fid, analyst="lee", status="rejected", notes="shadow", expected_version=conflict.version)
    trail = ws.review_history(fid)
    assert [(r["analyst"], r["status_after"], r["outcome"]) for r in trail] == [
        ("kim", "confirmed", "applied"), ("lee", "rejected", "applied")]
    assert ws.get_finding(fid).review_status == "rejected"


def test_keeping_their_review_is_recorded_too(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    aid, fid = _finding(ws)
    ws.review_finding(fid, analyst="kim", status="confirmed", expected_version=0)
    with pytest.raises(ReviewConflictError):
        ws.review_finding(fid, analyst="lee", status="rejected", notes="shadow", expected_version=0)
    ws.keep_their_review(fid, analyst="lee", status="rejected", notes="shadow")
    f = ws.get_finding(fid)
    assert (f.review_status, f.notes, f.analyst) == ("confirmed", "", "kim")
    trail = ws.review_history(fid)
    assert [(r["analyst"], r["status_after"], r["notes_after"], r["outcome"]) for r in trail] == [
        ("kim", "confirmed", None, "applied"), ("lee", "rejected", "shadow", "kept theirs")]
    # the trail travels with the case
    archive = ws.export_case(ws.get_analysis(aid)["case_id"], tmp_path / "case.zip")
    other = Workspace(tmp_path / "other")
    (a,) = other.list_analyses(other.import_case(archive))
    new_fid = other.scene_results(a["id"])[0].findings[0].id
    assert [r["outcome"] for r in other.review_history(new_fid)] == ["applied", "kept theirs"]


def _report(analyst: str):
    at = new_app().run()
    at.session_state[S.ANALYST] = analyst
    at.switch_page("pages/report.py").run()
    assert not at.exception, texts(at.exception)
    return at


def _form(at, status: str, notes: str | None = None) -> None:
    next(r for r in at.radio if r.label == "Review").set_value(status)
    if notes is not None:
        next(t for t in at.text_area if t.label == "Notes").set_value(notes)
    next(b for b in at.button if b.label == "Save review").click().run()
    assert not at.exception, texts(at.exception)


def test_two_analysts_in_the_form_see_the_conflict_and_apply_mine(app_env: Path) -> None:
    ws = Workspace(app_env)
    _, fid = _finding(ws)
    kim, lee = _report("Kim"), _report("Lee")  # both open the form on the same finding
    assert kim.selectbox(key="w_review_one").value == lee.selectbox(key="w_review_one").value == fid
    _form(kim, "confirmed")
    _form(lee, "rejected", "shadow, not damage")
    warning = " ".join(texts(lee.warning))
    assert f"{fid} was reviewed by Kim" in warning and "nothing of yours was saved" in warning, warning
    assert not any("Nothing to save" in t for t in texts(lee.info))
    assert ws.get_finding(fid).review_status == "confirmed"
    shown = next(d.value for d in lee.dataframe if "change" in d.value.columns)
    assert list(shown["analyst"]) == ["Kim"] and "→ confirmed" in shown.iloc[0]["change"]
    lee.button(key="w_conflict_apply").click().run()
    assert not lee.exception, texts(lee.exception)
    f = ws.get_finding(fid)
    assert (f.review_status, f.notes, f.analyst) == ("rejected", "shadow, not damage", "Lee")
    assert [(r["analyst"], r["status_after"], r["outcome"]) for r in ws.review_history(fid)] == [
        ("Kim", "confirmed", "applied"), ("Lee", "rejected", "applied")]
    assert not any("was reviewed by" in t for t in texts(lee.warning))  # resolved: the panel is gone


def test_a_conflicting_table_edit_can_keep_theirs(app_env: Path) -> None:
    ws = Workspace(app_env)
    aid, fid = _finding(ws)
    lee = _report("Lee")  # the table shows the finding unreviewed
    ws.review_finding(fid, analyst="Kim", status="confirmed", notes="roof gone")  # another analyst, meanwhile
    lee.session_state[S.review_key(aid)] = {"edited_rows": {0: {"review": "rejected"}}, "added_rows": [],
                                            "deleted_rows": []}
    lee.run()
    assert not lee.exception, texts(lee.exception)
    assert any(f"{fid} was reviewed by Kim" in t for t in texts(lee.warning)), texts(lee.warning)
    assert ws.get_finding(fid).review_status == "confirmed"
    lee.button(key="w_conflict_keep").click().run()
    assert not lee.exception, texts(lee.exception)
    f = ws.get_finding(fid)
    assert (f.review_status, f.notes, f.analyst) == ("confirmed", "roof gone", "Kim")
    assert [(r["analyst"], r["status_after"], r["outcome"]) for r in ws.review_history(fid)] == [
        ("Kim", "confirmed", "applied"), ("Lee", "rejected", "kept theirs")]
    lee.run()  # the table's stale edit is not tried again
    assert len(ws.review_history(fid)) == 2 and not any("was reviewed by" in t for t in texts(lee.warning))
