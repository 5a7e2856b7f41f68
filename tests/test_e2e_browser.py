"""End to end in a real browser: Playwright drives Debian's chromium against `streamlit run` on a loopback port,
with every non-loopback request blocked. Upload a real Joplin post-event tile, analyse it, see the heatmap, see the
map render its overlay and findings, review a finding, build and download the CSV and PDF, and check them.
Screenshots of every page go to artifacts/e2e/ (or $BDA_ARTIFACTS) for a person to look at."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from core.store import Workspace
from tests.support.browser import (
    OfflineApp,
    folium_frame,
    model_for,
    nav,
    no_exception,
    offline_app,
    settled,
    until,
    upload,
    wait_drawn,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
HOSTILE = "<script>window.__pwned=1</script>"
NOTE = f"건물 붕괴 확인 — Разрушено {HOSTILE}"


def test_upload_analyse_map_review_report(shared_data, tiny_model, tmp_path):
    tile = shared_data / "geotiff/joplin_tornado_xview2deploy/post/tile_31500-5137.tif"
    with offline_app(tmp_path / "ws", model_for(tiny_model), "failure.png") as app:
        _flow(app, tile)


def _flow(app: OfflineApp, tile: Path) -> None:
    page, art = app.page, app.art
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    app.home()

    analyst = page.get_by_label("Analyst")
    analyst.fill("Kim Analyst")
    analyst.press("Enter")

    upload(page, 0, tile)
    page.get_by_role("button", name=re.compile(r"Analyse 1 image")).click(timeout=60_000)
    page.locator('[data-testid="stMetricLabel"]', has_text="Verdict").first.wait_for(timeout=240_000)
    page.get_by_text(re.compile("^heatmap: grey below")).first.wait_for(timeout=60_000)
    wait_drawn(page)
    no_exception(page)
    page.screenshot(path=str(art / "1_analyze.png"))
    third = page.locator('[data-testid="stImage"] img').nth(2)  # original, heatmap, overlay
    third.wait_for(timeout=60_000)
    third.scroll_into_view_if_needed()
    settled(page)
    page.screenshot(path=str(art / "1_analyze_heatmap.png"))

    nav(page, "Map")
    frame = folium_frame(page)
    frame.locator("img.leaflet-image-layer").first.wait_for(state="attached", timeout=60_000)
    assert frame.locator("path.leaflet-interactive").count() > 0, "no finding polygons on the map"
    settled(page)
    no_exception(page)
    frame.locator(".leaflet-container").scroll_into_view_if_needed()
    page.screenshot(path=str(art / "2_map.png"))

    nav(page, "Report")
    page.get_by_text("Review one finding").click()
    form = page.locator('[data-testid="stForm"]', has=page.get_by_role("button", name="Save review"))
    form.get_by_text("confirmed", exact=True).click()
    form.get_by_label("Notes").fill(NOTE)
    form.get_by_role("button", name="Save review").click()
    ws = Workspace(app.workspace)
    aid = ws.list_analyses()[0]["id"]

    def confirmed() -> list:
        return [f for r in ws.scene_results(aid) for f in r.findings if f.review_status == "confirmed"]

    until(page, confirmed, "the review saved in the workspace")
    reviewed = confirmed()
    assert len(reviewed) == 1 and reviewed[0].notes == NOTE and reviewed[0].analyst == "Kim Analyst"
    fid, mgrs = reviewed[0].id, reviewed[0].mgrs

    handling = page.get_by_label("Handling / classification line (every page)")
    handling.fill("TLP:CLEAR")
    handling.press("Enter")
    page.get_by_role("button", name="Build report files").click()
    page.get_by_role("button", name="Findings CSV").and_(page.locator(":not([disabled])")).wait_for(
        timeout=180_000)
    wait_drawn(page)
    no_exception(page)
    page.screenshot(path=str(art / "3_report.png"))

    with page.expect_download(timeout=60_000) as dl:
        page.get_by_role("button", name="Findings CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text(encoding="utf-8-sig"))))
    mine = [r for r in rows if r["finding_id"] == fid]
    assert mine and mine[0]["review_status"] == "confirmed"
    assert mine[0]["notes"].lstrip("'").startswith("건물 붕괴 확인")
    with page.expect_download(timeout=60_000) as dl:
        page.get_by_role("button", name="PDF report").click()
    from pypdf import PdfReader

    text = "\n".join(p.extract_text() or "" for p in PdfReader(dl.value.path()).pages)
    assert fid.split("-", 1)[-1] in text or fid in text
    assert mgrs and mgrs.replace(" ", "")[:5] in text.replace(" ", "")
    assert "건물 붕괴 확인" in text and "Разрушено" in text and "TLP:CLEAR" in text

    nav(page, "Models")
    page.get_by_role("heading", name="Models").first.wait_for(timeout=60_000)
    settled(page)
    no_exception(page)
    page.screenshot(path=str(art / "4_models.png"))
    assert page.evaluate("() => window.__pwned === undefined"), "a hostile note ran as script"
    assert not dialogs, f"unexpected dialogs: {dialogs}"
