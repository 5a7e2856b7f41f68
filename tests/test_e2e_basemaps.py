"""Offline basemaps in a real browser (issue 16): an MBTiles file and a GeoTIFF orthophoto made in the test are
added on the Map page and drawn under the analysis, with every non-loopback request aborted; the legend and the
"zoom to scene" box are on the map. A screenshot is kept in artifacts/e2e/basemaps.png."""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import pytest

from core.detection.detector import Detector
from core.detection.pipeline import analyze_scene
from core.imagery.reader import open_scene
from core.mapping.basemaps import case_basemaps
from core.store import Workspace
from tests.support.basemaps import TILE_COLOUR, make_mbtiles, make_ortho
from tests.support.browser import folium_frame, model_for, nav, no_exception, offline_app
from tests.support.data import need

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TILE = Path("geotiff/joplin_tornado_xview2deploy/post/tile_31500-5137.tif")
ORTHO_COLOUR = (120, 40, 200)
#: RGB of a pixel of an <img> in the map frame (data: URIs are same-origin: the canvas is readable).
PIXEL = """img => { const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    const x = Math.floor(c.width * 0.3), y = Math.floor(c.height * 0.3);
    return Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3)); }"""


def _workspace(root: Path, tile: Path, model: Path) -> tuple[int, tuple[float, float]]:
    """A case with one analysed, georeferenced Joplin tile; returns (case id, (lat, lon) of its centre)."""
    ws = Workspace(root)
    case = ws.create_case("Joplin basemaps")
    det = Detector.load(model, device="cpu")
    aid = ws.create_analysis(case, [{"path": str(tile), "name": tile.name}], model=det.info(), threshold=None,
                             options={})
    scene = open_scene(tile)
    try:
        result = analyze_scene(scene, det, ws.analysis_dir(aid))
    finally:
        scene.close()
    ws.save_scene_result(aid, result, input_name=tile.name)
    ws.finish_analysis(aid)
    w, s, e, n = result.bounds_wgs84
    ws.close()
    return case, ((s + n) / 2, (w + e) / 2)


def _frame_with(page, selector: str, timeout_s: float = 240.0):
    """The frame in which ``selector`` matches (the map's frame is replaced when the map changes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for f in page.frames:
            with contextlib.suppress(Exception):  # a frame detached while we looked
                if f.locator(selector).count():
                    return f
        page.wait_for_timeout(500)
    raise AssertionError(f"nothing matches {selector!r} on the map")


def _add(page, path: Path, shown: int) -> None:
    """Add ``path`` in the "Offline basemaps" popover and wait until the page says ``shown`` basemaps are on."""
    box = page.get_by_role("textbox", name="Basemap path on the server")
    if not box.is_visible():
        page.get_by_role("button", name=re.compile(r"Offline basemaps")).first.click()
    box.wait_for(timeout=30_000)
    box.fill(str(path))
    box.press("Tab")
    page.get_by_role("button", name="Add basemap").click()
    label = page.get_by_role("button", name=re.compile(rf"Offline basemaps \({shown} shown\)"))
    try:
        label.first.wait_for(timeout=240_000)  # a loaded CI machine reruns the page slowly
    except Exception as exc:
        errors = page.locator('[data-testid="stAlert"]').all_inner_texts()
        raise AssertionError(f"{path.name} was not added; alerts on the page: {errors}") from exc
    page.wait_for_load_state("networkidle")
    no_exception(page)


def test_map_shows_mbtiles_and_geotiff_basemaps_offline(shared_data, tiny_model, tmp_path):
    tile = need(shared_data / TILE)
    case, (lat, lon) = _workspace(tmp_path / "ws", tile, model_for(tiny_model))
    mb = make_mbtiles(tmp_path / "joplin.mbtiles", lat, lon, zooms=range(10, 17), half_deg=0.01)
    # the orthophoto covers the scene's west half only, so the tiles still show east of it
    ortho = make_ortho(tmp_path / "ortho.tif", lat, lon - 0.004, size=80, colour=ORTHO_COLOUR)
    with offline_app(tmp_path / "ws", model_for(tiny_model), "basemaps_failure.png", full_page=False) as app:
        page, url, art = app.page, app.url, app.art
        page.goto(url)
        page.wait_for_load_state("networkidle")
        nav(page, "Map")
        folium_frame(page)
        _add(page, mb, 2)
        _add(page, ortho, 3)
        ws = Workspace(tmp_path / "ws")
        assert [d["kind"] for d in case_basemaps(ws, case)] == ["world", "mbtiles", "geotiff"]
        frame = _frame_with(page, ".bda-basemap-tiles img.leaflet-tile-loaded")  # the map remounted
        tiles = frame.locator(".bda-basemap-tiles img.leaflet-tile-loaded")
        assert tiles.count() >= 4
        srcs = tiles.evaluate_all("els => els.map(e => e.src.slice(0, 22))")
        assert all(s == "data:image/png;base64," for s in srcs), srcs[:3]
        assert tuple(tiles.first.evaluate(PIXEL)) == TILE_COLOUR  # the test's own tile, drawn
        raster = frame.locator(".leaflet-bda-raster-pane img.leaflet-image-layer")
        raster.first.wait_for(timeout=120_000)
        assert raster.first.evaluate("img => img.complete && img.naturalWidth > 0")
        rgb = raster.first.evaluate(PIXEL)  # the imagery overlay is lossy WebP: near the colour, not exact
        assert all(abs(a - b) <= 8 for a, b in zip(rgb, ORTHO_COLOUR, strict=True)), rgb
        assert frame.locator("[data-testid=bda-map-legend]").count() == 1
        zoom = frame.locator("select[data-testid=bda-zoom-to-scene]")
        assert tile.name in zoom.inner_text()
        zoom.select_option(label=tile.name)
        page.wait_for_timeout(500)  # the fitBounds animation; nothing is awaited from the network
        page.screenshot(path=str(art / "basemaps.png"), timeout=60_000)
        no_exception(page)
