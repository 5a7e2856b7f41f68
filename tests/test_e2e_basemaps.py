"""Offline basemaps in a real browser (issue 16): an MBTiles file and a GeoTIFF orthophoto made in the test are
added on the Map page and drawn under the analysis, with every non-loopback request aborted; the legend and the
"zoom to scene" box are on the map. A screenshot is kept in artifacts/e2e/basemaps.png."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.mapping.basemaps import case_basemaps
from core.store import Workspace
from tests.support.basemaps import TILE_COLOUR, analysed_case, fill_basemap_path, make_mbtiles, make_ortho
from tests.support.browser import folium_frame, model_for, nav, no_exception, offline_app, wait_drawn
from tests.support.data import need

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TILE = Path("geotiff/joplin_tornado_xview2deploy/post/tile_31500-5137.tif")
ORTHO_COLOUR = (120, 40, 200)
#: RGB of a pixel of an <img> in the map frame (data: URIs are same-origin: the canvas is readable).
PIXEL = """img => { const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    const x = Math.floor(c.width * 0.3), y = Math.floor(c.height * 0.3);
    return Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3)); }"""


MAP_IFRAME = "iframe[title='streamlit_folium.st_folium']"
#: The index of the first map iframe whose document matches the selector (-1: none yet). streamlit-folium replaces
#: the iframe when the map changes, and the old one lingers for a moment: the right one is the one showing it.
_FIND_FRAME = """([frames, sel]) => Array.from(document.querySelectorAll(frames)).findIndex(f => {
    try { return !!(f.contentDocument && f.contentDocument.querySelector(sel)); } catch (e) { return false; } })"""
#: The Leaflet map of the frame (streamlit-folium names it ``window.map``; a standalone folium page by its div's id),
#: and the map idle: no zoom or pan animation running.
_MAP = "(() => window.map || window[document.querySelector('.folium-map').id])()"
_IDLE = f"() => {{ const m = {_MAP}; return !m._animatingZoom && !(m._panAnim && m._panAnim._inProgress); }}"


def _frame_with(page, selector: str, timeout_ms: int = 120_000):
    """The map's frame once ``selector`` matches in it (the map's iframe is replaced when the map changes)."""
    page.wait_for_function(f"args => ({_FIND_FRAME})(args) >= 0", arg=[MAP_IFRAME, selector], timeout=timeout_ms)
    idx = page.evaluate(_FIND_FRAME, [MAP_IFRAME, selector])
    frame = page.locator(MAP_IFRAME).nth(idx).element_handle().content_frame()
    assert frame is not None, "the map's iframe has no document"
    return frame


def _add(page, path: Path, shown: int) -> None:
    """Add ``path`` in the "Offline basemaps" popover and wait until the page says ``shown`` basemaps are on."""
    fill_basemap_path(page, path)
    page.get_by_role("button", name="Add basemap").click()
    label = page.get_by_role("button", name=re.compile(rf"Offline basemaps \({shown} shown\)"))
    try:
        label.first.wait_for(timeout=240_000)  # a loaded CI machine reruns the page slowly
    except Exception as exc:
        errors = page.locator('[data-testid="stAlert"]').all_inner_texts()
        raise AssertionError(f"{path.name} was not added; alerts on the page: {errors}") from exc
    wait_drawn(page)
    no_exception(page)


def test_map_shows_mbtiles_and_geotiff_basemaps_offline(shared_data, tiny_model, tmp_path):
    tile = need(shared_data / TILE)
    case, _aid, (lat, lon) = analysed_case(tmp_path / "ws", tile, model_for(tiny_model))
    mb = make_mbtiles(tmp_path / "joplin.mbtiles", lat, lon, zooms=range(10, 17), half_deg=0.01)
    # the orthophoto covers the scene's west half only, so the tiles still show east of it
    ortho = make_ortho(tmp_path / "ortho.tif", lat, lon - 0.004, size=80, colour=ORTHO_COLOUR)
    with offline_app(tmp_path / "ws", model_for(tiny_model), "basemaps_failure.png", full_page=False) as app:
        page, url, art = app.page, app.url, app.art
        page.goto(url)
        wait_drawn(page)
        nav(page, "Map")
        folium_frame(page)
        _add(page, mb, 2)
        _add(page, ortho, 3)
        ws = Workspace(tmp_path / "ws")
        assert [d["kind"] for d in case_basemaps(ws, case)] == ["world", "mbtiles", "geotiff"]
        # the map remounted with both basemaps: the orthophoto's layer and the tiles drawn
        frame = _frame_with(page, ".leaflet-bda-raster-pane img.leaflet-image-layer")
        frame.locator(".bda-basemap-tiles img.leaflet-tile-loaded").first.wait_for(timeout=60_000)
        tiles = frame.locator(".bda-basemap-tiles img.leaflet-tile-loaded")
        assert tiles.count() >= 4
        srcs = tiles.evaluate_all("els => els.map(e => e.src.slice(0, 22))")
        assert all(s == "data:image/png;base64," for s in srcs), srcs[:3]
        assert tuple(tiles.first.evaluate(PIXEL)) == TILE_COLOUR  # the test's own tile, drawn
        raster = frame.locator(".leaflet-bda-raster-pane img.leaflet-image-layer")
        assert raster.first.evaluate("img => img.complete && img.naturalWidth > 0")
        rgb = raster.first.evaluate(PIXEL)  # the imagery overlay is lossy WebP: near the colour, not exact
        assert all(abs(a - b) <= 8 for a, b in zip(rgb, ORTHO_COLOUR, strict=True)), rgb
        assert frame.locator("[data-testid=bda-map-legend]").count() == 1
        zoom = frame.locator("select[data-testid=bda-zoom-to-scene]")
        assert tile.name in zoom.inner_text()
        frame.evaluate(f"() => {{ {_MAP}.setZoom(3, {{animate: false}}); }}")  # out to the continent
        frame.wait_for_function(_IDLE)
        assert frame.locator(".bda-basemap-tiles img").count() == 0  # 13 levels above them: not laid out
        zoom.select_option(label=tile.name)  # back to the scene (a fitBounds animation)
        frame.wait_for_function(f"() => ({_IDLE})() && {_MAP}.getZoom() >= 15")
        frame.locator(".bda-basemap-tiles img.leaflet-tile-loaded").first.wait_for(timeout=30_000)
        page.screenshot(path=str(art / "basemaps.png"), timeout=60_000)
        no_exception(page)


def test_deep_mbtiles_map_draws_at_once_at_every_zoom(tmp_path):
    """The map page itself (no server) with a basemap whose shallowest tiles are level 10, as in the test above: it
    loads in seconds and lays out no more tiles than it holds at any zoom. Leaflet used to make an <img> for every
    level-10 tile over the visible world at the map's first (world) zoom, and the page did not load in 10 minutes."""
    from core.mapping import webmap
    from core.mapping.basemaps import WORLD, basemap_layers, check_basemap
    from tests.support.browser import offline_browser
    from tests.test_basemaps import AREA, LAT, LON
    from tests.test_webmap import _result

    mb = check_basemap(make_mbtiles(tmp_path / "deep.mbtiles", LAT, LON, zooms=range(10, 17), half_deg=0.01))
    ortho = check_basemap(make_ortho(tmp_path / "ortho.tif", LAT, LON - 0.004, size=80, colour=ORTHO_COLOUR))
    base = basemap_layers([WORLD, mb, ortho], AREA)
    n_tiles = sum(len(getattr(layer, "tiles", {})) for g in base.layers for layer in g._children.values())
    scene = _result(tmp_path, name="scene.tif")
    html = webmap.map_html(webmap.build_map([scene], overlays={str(scene.heatmap_path): None},
                                            base_layers=base.layers))
    with offline_browser() as (page, blocked):
        page.set_content(html, timeout=60_000)
        page.wait_for_function(_IDLE, timeout=30_000)
        counts = {}
        for z in range(23):
            page.evaluate(f"() => {{ {_MAP}.setView([{LAT}, {LON}], {z}, {{animate: false}}); }}")
            assert page.evaluate(f"() => {_MAP}.getZoom()") == z  # no layer narrows the map's zoom range
            counts[z] = page.locator(".bda-basemap-tiles img").count()
        assert max(counts.values()) <= n_tiles, counts
        assert counts[4] == 0 and counts[5] >= 1 and counts[16] >= 4, counts  # hidden 6+ levels out, drawn nearer
        assert not blocked
