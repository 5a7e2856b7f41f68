"""Hostile strings in a real browser: an upload named like HTML/JavaScript and a hostile case name are shown as
text on every page (tables, map popups and tooltips, finding details), and no script of theirs ever runs."""

from __future__ import annotations

import re

import pytest

from tests.browser import folium_frame, offline_browser, streamlit_server
from tests.test_e2e_browser import _artifacts, _model, _nav, _no_exception

pytestmark = [pytest.mark.browser, pytest.mark.slow]
NAME = "<img src=x onerror=\"window.__pwned=1\">.tif"
CASE = "<script>window.__pwned=2</script>"


def test_hostile_names_render_as_text(shared_data, tiny_model, tmp_path):
    tile = shared_data / "geotiff/joplin_tornado_xview2deploy/post/tile_31500-5137.tif"
    art = _artifacts()
    env = {"BDA_WORKSPACE": str(tmp_path), "BDA_MODEL": str(_model(tiny_model)), "OMP_NUM_THREADS": "2"}
    with streamlit_server(env) as url, offline_browser() as (page, blocked):
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        try:
            page.goto(url, wait_until="networkidle")
            page.get_by_text("Images", exact=True).first.wait_for(timeout=60_000)
            page.get_by_role("button", name=re.compile("New case")).click()
            page.get_by_label("Case name").fill(CASE)
            page.get_by_role("button", name="Create case").click()
            page.wait_for_load_state("networkidle")
            page.locator("input[type=file]").first.set_input_files(
                files=[{"name": NAME, "mimeType": "image/tiff", "buffer": tile.read_bytes()}])
            page.get_by_role("button", name=re.compile(r"Analyse 1 image")).click(timeout=60_000)
            page.locator('[data-testid="stMetricLabel"]', has_text="Verdict").first.wait_for(timeout=240_000)
            page.wait_for_load_state("networkidle")
            _no_exception(page)
            shown = [page.locator("input[role=combobox]").nth(i).input_value()
                     for i in range(page.locator("input[role=combobox]").count())]
            assert any("<img src=x onerror=" in v for v in shown), f"hostile name not shown as text: {shown}"
            assert any(v.startswith("<script>") for v in shown), "hostile case name not shown as text"
            page.screenshot(path=str(art / "hostile_1_analyze.png"))

            _nav(page, "Map")
            frame = folium_frame(page)
            polygons = frame.locator("path.leaflet-interactive")
            polygons.first.wait_for(state="attached", timeout=60_000)
            polygons.first.click(force=True)  # opens the popup with the source (hostile) name
            page.wait_for_timeout(1500)
            popup = frame.locator(".leaflet-popup-content")
            if popup.count():
                assert "onerror" in popup.first.inner_text()
            page.screenshot(path=str(art / "hostile_2_map.png"))
            _nav(page, "Report")
            page.wait_for_timeout(1500)
            _no_exception(page)
            page.screenshot(path=str(art / "hostile_3_report.png"))
            for f in [page.main_frame, *page.frames]:
                assert f.evaluate("() => window.__pwned === undefined"), "a hostile string ran as script"
        except Exception:
            page.screenshot(path=str(art / "hostile_failure.png"))
            raise
        assert not dialogs, f"unexpected dialogs: {dialogs}"
        assert not blocked, f"the app reached outside the machine: {blocked[:5]}"
