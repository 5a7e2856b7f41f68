"""Login and the case a session works in, in a real browser (Playwright + Debian chromium, network cut, bundled
model): the app shows nothing but the login form until a user logs in, refuses a wrong password, lists only the
analyst's cases, and keeps the case the analyst chose through an analysis and page changes (issue 12, finding 4:
the case label held a count that the analysis changed, and the browser fell back to the newest case)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.store import Workspace
from tests.support.browser import fast_model, nav, no_exception, offline_app, upload_and_analyse, wait_drawn
from tests.support.data import need
from tests.support.store import make_result, new_analysis

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PW = "correct horse battery"
POST = Path("geotiff/joplin_tornado_xview2deploy/chips_aligned/post/0_post.tif")


def test_login_and_the_case_stays_put_after_an_analysis(shared_data: Path, tmp_path: Path) -> None:
    model = fast_model()
    chip = need(shared_data / POST)
    ws_root = tmp_path / "ws"
    ws = Workspace(ws_root)
    ws.add_user("kim", "admin", PW)
    ws.add_user("lee", "analyst", PW)
    first, second = ws.create_case("Lee's first"), ws.create_case("Lee's second")
    ws.create_case("Another team's")
    for cid in (first, second):
        ws.grant_case(cid, "lee")
    ws.close()
    with offline_app(ws_root, model, "accounts_failure.png") as app:
        _flow(app.page, app.url, chip, app.art)


def _login(page, name: str, password: str) -> None:
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def _case_is(page, label: str) -> None:
    expect(page.get_by_role("combobox", name=re.compile("^Case"))).to_have_value(label, timeout=30_000)


def _flow(page, url: str, chip: Path, art: Path) -> None:
    page.goto(url)
    page.get_by_role("button", name="Log in").wait_for(timeout=60_000)
    assert "Analyze" not in page.inner_text("body")  # neither the page nor the menu before a login
    page.goto(f"{url}/report")
    page.get_by_role("button", name="Log in").wait_for(timeout=60_000)
    assert "Findings" not in page.inner_text("body")
    _login(page, "lee", "not the password")
    page.get_by_text(re.compile("wrong user name or password")).wait_for(timeout=30_000)
    _login(page, "lee", PW)
    page.get_by_role("heading", name="Report", level=1).wait_for(timeout=60_000)  # the page that was asked for
    wait_drawn(page)
    _case_is(page, "Lee's second (#2)")
    nav(page, "Analyze")
    page.get_by_role("heading", name="Analyze", level=1).wait_for(timeout=60_000)

    # only the analyst's cases are offered; choose the older one
    page.get_by_role("combobox", name=re.compile("^Case")).click()
    options = page.get_by_role("option").all_inner_texts()
    assert sorted(o.strip() for o in options) == ["Lee's first (#1)", "Lee's second (#2)"], options
    page.get_by_role("option", name="Lee's first (#1)").click()
    _case_is(page, "Lee's first (#1)")
    wait_drawn(page)

    upload_and_analyse(page, chip)
    _case_is(page, "Lee's first (#1)")
    page.screenshot(path=str(art / "accounts_1_analysed.png"), full_page=True)
    for title in ("Map", "Report", "Analyze"):
        nav(page, title)
        page.get_by_role("heading", name=title, level=1).wait_for(timeout=60_000)
        _case_is(page, "Lee's first (#1)")
        no_exception(page)

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for(timeout=30_000)
    page.get_by_text("You are logged out.").wait_for(timeout=30_000)


def test_a_viewer_reads_but_cannot_review(tmp_path: Path) -> None:
    model = fast_model()
    ws_root = tmp_path / "ws"
    ws = Workspace(ws_root)
    ws.add_user("park", "viewer", PW)
    cid = ws.create_case("Park's")
    aid = new_analysis(ws, ["a.tif"], case=cid)
    ws.save_scene_result(aid, make_result("a.tif"))
    ws.finish_analysis(aid)
    ws.grant_case(cid, "park")
    ws.close()
    with offline_app(ws_root, model, "accounts_viewer_failure.png") as app:
        page = app.page
        page.goto(app.url)
        page.get_by_role("button", name="Log in").wait_for(timeout=60_000)
        _login(page, "park", PW)  # the first click counts (the form keeps its identity from the first run)
        page.get_by_role("heading", name="Analyze", level=1).wait_for(timeout=60_000)
        nav(page, "Report")
        page.get_by_role("heading", name="Report", level=1).wait_for(timeout=60_000)
        page.get_by_text("You have a viewer account: the reviews are read-only for you.").wait_for(
            timeout=30_000)
        page.get_by_text("Review one finding").click()
        page.get_by_text("Viewers see the reviews; reviewing needs an analyst account.").wait_for(
            timeout=30_000)
        expect(page.get_by_role("button", name="Save review")).to_have_count(0)
        nav(page, "Analyze")
        page.get_by_role("heading", name="Analyze", level=1).wait_for(timeout=60_000)
        expect(page.locator("input[type=file]")).to_have_count(0)  # no uploader, no case import
        no_exception(page)
