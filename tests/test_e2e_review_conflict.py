"""Two analysts review the same finding at once, in a real browser (Playwright + Debian chromium, network cut): two
browser contexts are two people logged in with their own accounts on one server (issue 12, finding 3: the second
decision used to be dropped with "Nothing to save" and neither analyst was told).

Both open the Report page's "Review one finding" form on the same finding. The first saves; the second's save is
refused and the page shows who changed what and when, and what was not saved; the second chooses. Round one: the
second analyst applies theirs on top. Round two (roles swapped, the other finding): the second keeps the first's.
Every decision stays in the finding's audit trail in the workspace, with its outcome, and the first analyst sees
the other's decision in the trail on their own page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.store import Workspace
from tests.support.browser import fast_model, login, nav, no_exception, offline_app, wait_drawn, wait_idle
from tests.support.store import make_result, new_analysis

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PW = "correct horse battery"


def _workspace(root: Path) -> tuple[str, str]:
    """Two analysts who share one case holding one analysis with two findings; returns the finding ids."""
    ws = Workspace(root)
    ws.add_user("kim", "analyst", PW)
    ws.add_user("lee", "analyst", PW)
    cid = ws.create_case("Shared")
    aid = new_analysis(ws, ["a.tif"], case=cid)
    ws.save_scene_result(aid, make_result("a.tif"))
    ws.finish_analysis(aid)
    for name in ("kim", "lee"):
        ws.grant_case(cid, name)
    first, second = (f.id for f in ws.scene_results(aid)[0].findings)
    ws.close()
    return first, second


def _open_form(page, url: str, user: str) -> None:
    """Log in as ``user``, open the Report page and its "Review one finding" form."""
    page.goto(url)
    page.get_by_role("button", name="Log in").wait_for(timeout=60_000)
    login(page, user, PW)
    page.get_by_role("heading", name="Analyze", level=1).wait_for(timeout=60_000)
    nav(page, "Report")
    page.get_by_role("heading", name="Report", level=1).wait_for(timeout=60_000)
    page.get_by_text("Review one finding").click()
    page.get_by_role("button", name="Save review").wait_for(timeout=30_000)
    wait_idle(page)


def _pick(page, fid: str) -> None:
    """Choose the finding the form reviews."""
    page.get_by_role("combobox", name="Finding to review").click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(fid)} ")).click()
    # the run that draws its form has ended: the form's trail line names it (the box shows the choice at once, and
    # until that run ends the previous finding's form is still in the page)
    page.get_by_text(re.compile(f"^(Review history of {re.escape(fid)} |{re.escape(fid)} has not been reviewed)")
                     ).wait_for(timeout=60_000)
    wait_drawn(page)
    expect(page.locator('[data-testid="stForm"]').get_by_label("Notes")).to_have_count(1, timeout=30_000)


def _submit(page, status: str, notes: str | None = None) -> None:
    """Set the review (and notes) in the open form and press "Save review"."""
    form = page.locator('[data-testid="stForm"]')
    form.get_by_role("radiogroup", name="Review").get_by_text(status, exact=True).click()
    if notes is not None:
        form.get_by_label("Notes").fill(notes)
    form.get_by_role("button", name="Save review").click()


def _trail(ws_root: Path, fid: str) -> list[tuple[str, str | None, str | None, str]]:
    with Workspace(ws_root) as ws:
        return [(r["analyst"], r["status_after"], r["notes_after"], r["outcome"]) for r in ws.review_history(fid)]


def _conflict_shown(page, fid: str, other: str, status: str, ws_root: Path) -> None:
    """The page says who changed the finding, what and when, and what of this analyst's was not saved."""
    warning = page.get_by_text(re.compile(f"^{re.escape(fid)} was reviewed by {other} at "))
    warning.wait_for(timeout=60_000)
    text = warning.inner_text()
    assert "nothing of yours was saved" in text, text
    with Workspace(ws_root) as ws:
        (theirs,) = ws.review_history(fid)
    when = str(theirs["at"])[:19].replace("T", " ")
    assert f"{other} at {when} UTC" in text, (text, when)  # when: the time the trail recorded
    # the conflict's table (a data grid: its cells' text is in the DOM, hidden) says what they changed
    page.get_by_text(f"status: unreviewed → {status}", exact=False).first.wait_for(state="attached", timeout=30_000)
    page.get_by_text("Your change (not saved):").wait_for(timeout=30_000)
    expect(page.get_by_role("button", name="Keep theirs")).to_have_count(1)
    expect(page.get_by_role("button", name="Apply mine")).to_have_count(1)
    # the form the analyst saved from stays open (the panel above it must not collapse its expander)
    expect(page.get_by_role("button", name="Save review")).to_be_visible()
    no_exception(page)


def test_a_conflicting_review_is_shown_and_kept(tmp_path: Path) -> None:
    model = fast_model()
    ws_root = tmp_path / "ws"
    first, second = _workspace(ws_root)
    with offline_app(ws_root, model, "review_conflict_failure.png") as app:
        kim, lee = app.page, app.another_session()
        _open_form(kim, app.url, "kim")
        _open_form(lee, app.url, "lee")  # both have the form open on the first finding, unreviewed

        # round one: kim confirms, lee rejects with a note, is shown kim's review and applies theirs on top
        _submit(kim, "confirmed")
        kim.get_by_text(f"Review history of {first} (1)").wait_for(timeout=60_000)  # (a toast may be gone)
        assert _trail(ws_root, first) == [("kim", "confirmed", None, "applied")]
        _submit(lee, "rejected", "shadow of the water tower, not damage")
        _conflict_shown(lee, first, "kim", "confirmed", ws_root)
        assert _trail(ws_root, first) == [("kim", "confirmed", None, "applied")], "nothing of lee's saved yet"
        lee.screenshot(path=str(app.art / "review_conflict_1_shown.png"), full_page=True)
        lee.get_by_role("button", name="Apply mine").click()
        lee.get_by_text(f"Review history of {first} (2)").wait_for(timeout=60_000)  # the form stayed open
        expect(lee.get_by_text(re.compile(" was reviewed by kim at "))).to_have_count(0, timeout=30_000)
        assert _trail(ws_root, first) == [("kim", "confirmed", None, "applied"),
                                          ("lee", "rejected", "shadow of the water tower, not damage", "applied")]
        with Workspace(ws_root) as ws:
            f = ws.get_finding(first)
        assert (f.review_status, f.analyst) == ("rejected", "lee")

        # kim's own page shows lee's decision in the finding's trail
        nav(kim, "Map")
        kim.get_by_role("heading", name="Map", level=1).wait_for(timeout=60_000)
        nav(kim, "Report")
        kim.get_by_role("heading", name="Report", level=1).wait_for(timeout=60_000)
        if not kim.get_by_role("button", name="Save review").is_visible():
            kim.get_by_text("Review one finding").click()
        kim.get_by_text(f"Review history of {first} (2)").wait_for(timeout=60_000)
        kim.get_by_text("status: confirmed → rejected", exact=False).first.wait_for(state="attached",
                                                                                     timeout=30_000)

        # round two, the other way round: both open the second finding, lee confirms, kim rejects and keeps lee's
        _pick(kim, second)
        _pick(lee, second)
        _submit(lee, "confirmed", "roof gone")
        lee.get_by_text(f"Review history of {second} (1)").wait_for(timeout=60_000)
        _submit(kim, "rejected", "cloud shadow")
        _conflict_shown(kim, second, "lee", "confirmed", ws_root)
        kim.get_by_role("button", name="Keep theirs").click()
        kim.get_by_text(f"Review history of {second} (2)").wait_for(timeout=60_000)
        expect(kim.get_by_text(re.compile(" was reviewed by lee at "))).to_have_count(0, timeout=30_000)
        assert _trail(ws_root, second) == [("lee", "confirmed", "roof gone", "applied"),
                                           ("kim", "rejected", "cloud shadow", "kept theirs")]
        with Workspace(ws_root) as ws:
            f = ws.get_finding(second)
        assert (f.review_status, f.notes, f.analyst) == ("confirmed", "roof gone", "lee")
        kim.screenshot(path=str(app.art / "review_conflict_2_kept.png"), full_page=True)
        for page in (kim, lee):
            no_exception(page)
