"""Fit a normal model to an area's pre-event imagery from the Analyze page in a real browser (Playwright + Debian
chromium, network cut), use it from the sidebar, and analyse a post-event image with it. Screenshots go to
artifacts/e2e/area_fit_*.png (or $BDA_ARTIFACTS) for a person to look at."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import no_exception, offline_app, upload, upload_and_analyse
from tests.support.data import need

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHIPS = Path("geotiff/joplin_tornado_xview2deploy/chips_aligned")
#: a pre-event tile whose held-out bottom strip is imagery (the aligned chips' is a black nodata border)
JOPLIN_PRE = Path("geotiff/joplin_tornado_xview2deploy/pre/tile_337-9136.tif")


def test_fit_an_area_model_in_the_browser_and_analyse_with_it(shared_data: Path, tmp_path: Path) -> None:
    pre = need(shared_data / JOPLIN_PRE)
    post = need(shared_data / CHIPS / "post" / "1_post.tif")
    with offline_app(tmp_path / "ws", "", "area_fit_failure.png") as app:
        page, art = app.page, app.art
        app.home()
        upload(page, 1, pre)
        fit = page.get_by_role("button", name="Fit a normal model to this pre-event image")
        fit.wait_for(timeout=60_000)
        fit.click()
        page.get_by_text(re.compile(r"is fitted to this area and registered")).first.wait_for(timeout=600_000)
        no_exception(page)
        page.screenshot(path=str(art / "area_fit_1_fitted.png"), full_page=True)
        page.get_by_role("button", name="Use it").click()
        # the rerun that switches the model has drawn the page (an upload sent during it can be lost)
        expect(page.get_by_role("button", name="Use it")).to_have_count(0, timeout=300_000)
        sidebar = page.locator('[data-testid="stSidebar"]')
        # the model in use (its first load converts nothing but reads a VGG16 trunk: allow a busy machine)
        sidebar.get_by_text("Feature matching (PatchCore)").first.wait_for(timeout=300_000)
        # paired with the pre tile or not, a heatmap (post-only or change) is shown
        upload_and_analyse(page, post, timeout_ms=600_000, shown=r"heatmap: grey below")
        page.screenshot(path=str(art / "area_fit_2_analysed.png"), full_page=True)
