"""Hostile strings in a real browser: an upload named like HTML/JavaScript, a hostile case name, and an analyst note
and report event TYPED into the app (HTML/JavaScript mixed with Hangul, Hebrew/Arabic and a right-to-left override)
are shown as text on every page (tables, review history, the map popup and the finding details beside the map, the
PDF), and no script of theirs ever runs: no injected element exists, no dialog fires, no global is set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.store import Workspace
from tests.support.browser import (
    OfflineApp,
    folium_frame,
    model_for,
    nav,
    no_exception,
    offline_app,
    open_popover,
    settled,
    wait_drawn,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
NAME = "<img src=x onerror=\"window.__pwned=1\">.tif"
CASE = "<script>window.__pwned=2</script>"
#: Typed key by key into the review form's Notes: markup that would raise a dialog if it ever became HTML.
NOTE = "<img src=x onerror=alert(1)> 붕괴 확인 — מבנה הרוס \u202eRLO<b>bold</b>"
#: Typed into the report's Event field.
EVENT = "<svg onload=alert(2)> 토네이도 조플린 — إعصار"
ANALYST = "김 분석관"
#: Counts, in a frame, the elements the hostile strings would create if they were ever parsed as HTML.
INJECTED = """() => document.querySelectorAll('img[src="x"], svg[onload]').length
    + [...document.querySelectorAll('b')].filter(b => b.textContent === 'bold').length"""


def test_hostile_text_renders_as_text(shared_data, tiny_model, tmp_path):
    tile = shared_data / "geotiff/joplin_tornado_xview2deploy/post/tile_31500-5137.tif"
    with offline_app(tmp_path, model_for(tiny_model), "hostile_failure.png") as app:
        page, art = app.page, app.art
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        _analyse(app, tile)
        fid = _review(page, tmp_path, art)
        _report(page, art)
        _map(page, fid, art)
        for f in page.frames:
            assert f.evaluate("() => window.__pwned === undefined"), "a hostile string ran as script"
            assert f.evaluate(INJECTED) == 0, f"a hostile string became HTML in {f.url[:80]}"
        assert not dialogs, f"a hostile string ran as script and opened dialogs: {dialogs}"


def _cells(page) -> list[str]:
    """Text of every data-grid cell on the page (st.dataframe / st.data_editor draw on a canvas and mirror the
    visible cells in an accessible table, which is what a screen reader and this test read)."""
    return page.locator('[data-testid="stDataFrame"] [role=gridcell]').evaluate_all(
        "cells => cells.map(c => c.textContent)")


def _analyse(app: OfflineApp, tile: Path) -> None:
    """Name the analyst, create the hostile case, upload the hostile-named tile and analyse it."""
    page, art = app.page, app.art
    app.home()
    analyst = page.get_by_label("Analyst")
    analyst.fill(ANALYST)
    analyst.press("Enter")
    open_popover(page, re.compile("New case"), page.get_by_label("Case name")).fill(CASE)
    page.get_by_role("button", name="Create case").click()
    wait_drawn(page)
    page.locator("input[type=file]").first.set_input_files(
        files=[{"name": NAME, "mimeType": "image/tiff", "buffer": tile.read_bytes()}])
    page.get_by_role("button", name=re.compile(r"Analyse 1 image")).click(timeout=60_000)
    page.locator('[data-testid="stMetricLabel"]', has_text="Verdict").first.wait_for(timeout=240_000)
    wait_drawn(page)
    no_exception(page)
    shown = page.locator("input[role=combobox]").evaluate_all("els => els.map(e => e.value)")
    assert any("<img src=x onerror=" in v for v in shown), f"hostile name not shown as text: {shown}"
    assert any(v.startswith("<script>") for v in shown), f"hostile case name not shown as text: {shown}"
    page.screenshot(path=str(art / "hostile_1_analyze.png"))


def _review(page, ws_root: Path, art: Path) -> str:
    """Type the hostile note into "Review one finding", save, and see it as text in the review history and the
    findings table; returns the reviewed finding's id."""
    nav(page, "Report")
    page.get_by_text("Review one finding").click()
    form = page.locator('[data-testid="stForm"]', has=page.get_by_role("button", name="Save review"))
    form.get_by_text("confirmed", exact=True).click()
    form.get_by_label("Notes").press_sequentially(NOTE)  # key by key, as a person types
    form.get_by_role("button", name="Save review").click()
    history = page.locator("p", has_text=re.compile(r"^Review history of "))
    history.wait_for(timeout=30_000)
    wait_drawn(page)
    no_exception(page)

    ws = Workspace(ws_root)
    try:
        reviewed = [f for a in ws.list_analyses() for r in ws.scene_results(a["id"]) for f in r.findings
                    if f.review_status == "confirmed"]
    finally:
        ws.close()
    assert len(reviewed) == 1, f"expected one confirmed finding, got {len(reviewed)}"
    f = reviewed[0]
    assert f.notes == NOTE and f.analyst == ANALYST, (f.notes, f.analyst)  # typed text stored exactly
    assert history.inner_text() == f"Review history of {f.id} (1)"

    expect(page.locator('[data-testid="stDataFrame"] [role=gridcell]').filter(has_text="notes: — → ")).to_have_count(
        1, timeout=15_000)
    cells = _cells(page)
    changes = [c for c in cells if c.startswith("status: unreviewed → confirmed")]
    assert changes and changes[0].endswith(f"notes: — → {NOTE}"), f"review history lacks the note: {changes}"
    assert ANALYST in cells, "the review history does not name the analyst"
    assert cells.count(NOTE) == 1, "the findings table does not show the note as text"  # its notes column
    assert page.evaluate(INJECTED) == 0, "the note became HTML on the Report page"
    history.scroll_into_view_if_needed()
    settled(page)
    page.screenshot(path=str(art / "hostile_2_review.png"))
    return f.id


def _report(page, art: Path) -> None:
    """Type the hostile event, build the report, and find the note and the event literally in the PDF."""
    event = page.get_by_label("Event / operation")
    event.press_sequentially(EVENT)
    event.press("Enter")
    expect(event).to_have_value(EVENT)
    handling = page.get_by_label("Handling / classification line (every page)")
    handling.fill("TLP:CLEAR")
    handling.press("Enter")
    page.get_by_role("button", name="Build report files").click()
    pdf_button = page.get_by_role("button", name="PDF report").and_(page.locator(":not([disabled])"))
    refused = page.locator('[data-testid="stAlert"]', has_text="Report: ")
    pdf_button.or_(refused).first.wait_for(timeout=180_000)
    assert not refused.count(), f"the report was not built: {refused.first.inner_text()}"
    wait_drawn(page)
    no_exception(page)
    expect(event).to_have_value(EVENT)  # shown back as text after the rerun
    page.screenshot(path=str(art / "hostile_3_report.png"))
    with page.expect_download(timeout=60_000) as dl:
        pdf_button.click()
    from pypdf import PdfReader

    text = "\n".join(p.extract_text() or "" for p in PdfReader(dl.value.path()).pages)
    flat = re.sub(r"\s+", " ", text)
    for part in ("<img src=x onerror=alert(1)>", "붕괴 확인", "<svg onload=alert(2)>", "토네이도 조플린"):
        assert part in flat, f"{part!r} not in the PDF's text"
    for rtl in ("מבנה הרוס", "إعصار"):  # fpdf2 lays right-to-left runs out in visual order, as pypdf reads them
        assert rtl in flat or rtl[::-1] in flat, f"{rtl!r} not in the PDF's text"


def _map(page, fid: str, art: Path) -> None:
    """Click the reviewed finding's polygon on the Leaflet map: its popup and the details beside the map show the
    hostile source name and the note as text."""
    nav(page, "Map")
    frame = folium_frame(page)
    # the confirmed finding is the one drawn with a 3 px outline and translucent fill (webmap._finding_style)
    target = frame.locator('path.leaflet-interactive[stroke-width="3"][fill-opacity="0.35"]')
    expect(target).to_have_count(1, timeout=60_000)
    target.scroll_into_view_if_needed()
    # a point of the polygon that nothing else covers (a concave outline's box centre may lie outside it)
    spot = target.evaluate("""el => {
        const r = el.getBoundingClientRect();
        for (let i = 1; i < 16; i++) for (let j = 1; j < 16; j++) {
            const x = r.left + r.width * ((i * 7) % 16) / 16, y = r.top + r.height * ((j * 5) % 16) / 16;
            if (document.elementFromPoint(x, y) === el) return {x: x - r.left, y: y - r.top};
        }
        return null; }""")
    assert spot is not None, "the reviewed finding is entirely covered on the map"
    target.click(position=spot)
    popup = frame.locator(".leaflet-popup-content")
    expect(popup).to_be_visible(timeout=10_000)
    text = popup.inner_text()
    assert fid in text, f"the popup is not the clicked finding's: {text!r}"
    assert "<img src=x onerror=" in text and ".tif" in text, f"hostile source name not shown as text: {text!r}"
    assert NOTE.replace("\u202e", "") in text.replace("\u202e", ""), f"note not shown as text: {text!r}"
    assert "confirmed by " + ANALYST in text

    # the click reaches the app: the finding is picked beside the map and its details listed
    expect(page.get_by_role("combobox", name="Finding")).to_have_value(re.compile(re.escape(fid)), timeout=30_000)
    page.get_by_role("heading", name=fid).wait_for(timeout=30_000)
    expect(page.locator('[data-testid="stDataFrame"] [role=gridcell]').filter(has_text="onerror")).to_have_count(
        2, timeout=30_000)  # Source and Notes
    cells = _cells(page)
    assert NOTE in cells, f"the details beside the map lack the note: {cells}"
    assert any(c.startswith("<img src=x onerror=") and c.endswith(".tif") for c in cells), cells
    expect(popup).to_be_visible()  # the app's rerun did not remount the map and close the popup
    no_exception(page)
    settled(page)
    page.screenshot(path=str(art / "hostile_4_map.png"))
