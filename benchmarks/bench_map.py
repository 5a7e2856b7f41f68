"""The Map page with offline basemaps: map HTML size and seconds from "basemap added" to the map drawn, old vs new.

    python -m benchmarks.bench_map [--runs 1] [--cap 60] [--scale 3] [--no-app]

The scenario of tests/test_e2e_basemaps.py: one Joplin post tile (../shared/data) analysed with the bundled
FCDD ResNet-18, the bundled world layer, an MBTiles file with levels 10-16 around the scene and the test's small
GeoTIFF orthophoto; plus a large orthophoto made from real imagery (the six Joplin post tiles mosaicked and
enlarged ``--scale`` times: 9216 x 6144 px at 3) in place of the small one.

1. **Map page in the browser** (old and new interleaved, ``--runs`` each): the map is built as the Map page builds
   it (basemaps read uncached: the first visit), its HTML size printed, then it is loaded in headless chromium
   (every non-loopback request aborted) until the basemap tiles and the orthophoto are drawn. A run that is not drawn
   within ``--cap`` seconds is stopped and printed as "> cap".
2. **The app** (unless ``--no-app``; new, then old): ``streamlit run app.py`` on a loopback port; on the Map page the
   MBTiles file and then the orthophoto are added in the "Offline basemaps" popover as an analyst does; each step is
   timed from the "Add basemap" click to the label "(N shown)" and to the map drawn with that basemap.

"Old" is the code before this benchmark's fix, reproduced here (:func:`legacy`): the tile layer that let Leaflet
lay out every tile of the shallowest level over the visible world at the map's first (world) zoom, and the
orthophoto read at full resolution in strips.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BDA_SHARED_DATA", REPO.parent / "shared" / "data"))
JOPLIN_POST = DATA / "geotiff/joplin_tornado_xview2deploy/post"
TILE = JOPLIN_POST / "tile_31500-5137.tif"
MODEL = REPO / "assets/models/fcdd-resnet18.pt"
ORTHO_COLOUR = (120, 40, 200)
MAP_IFRAME = "iframe[title='streamlit_folium.st_folium']"
TILES_SEL = ".bda-basemap-tiles img.leaflet-tile-loaded"
RASTER_SEL = ".leaflet-bda-raster-pane img.leaflet-image-layer"
#: True once some map frame of the page (or the page itself) has ``sels`` drawn (images decoded).
_DRAWN = """([frames, sels]) => {
    const docs = [document, ...Array.from(document.querySelectorAll(frames)).map(f => {
        try { return f.contentDocument; } catch (e) { return null; } })];
    return docs.some(d => d && sels.every(s => { const el = d.querySelector(s);
        return el && (el.tagName !== 'IMG' || (el.complete && el.naturalWidth > 0)); }));
}"""

_OLD_TILE_JS = """
        {% macro script(this, kwargs) %}
        (function () {
            var tiles = {{ this.tiles|tojson }};
            var Embedded = L.TileLayer.extend({
                getTileUrl: function (c) { return tiles[c.z + '/' + c.x + '/' + c.y] || {{ this.blank|tojson }}; }
            });
            new Embedded('', {{ this.options|tojson }}).addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
"""


@contextlib.contextmanager
def legacy() -> Iterator[None]:
    """The map code as it was before the fix, for the "old" runs: the embedded tile layer without its tile filter
    and with ``minZoom`` 0, and the orthophoto / imagery read at full resolution in strips and warped band by band."""
    install_legacy()
    try:
        yield
    finally:
        uninstall_legacy()


_SAVED: dict[str, Any] = {}


def install_legacy() -> None:
    """Swap the old map code in (see :func:`legacy`); also used by the old app server at its start."""
    import numpy as np
    from folium.template import Template

    from core.mapping import overlays
    from core.mapping.basemaps import layers
    from core.report.rasters import read_overview

    new_layer = layers.EmbeddedTileLayer

    class OldTileLayer(new_layer):  # type: ignore[misc, valid-type]
        _template = Template(_OLD_TILE_JS)

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.options["minZoom"] = 0

    new_warp = overlays.warp_to_mercator

    def old_warp(scores: Any, georef: Any, *, max_px: int = overlays.OVERLAY_MAX_PX) -> Any:
        scores = np.asarray(scores)
        if scores.ndim == 2:
            return new_warp(scores, georef, max_px=max_px)
        bands = [new_warp(b, georef, max_px=max_px) for b in scores]  # one warp per band, as before
        return np.stack([b for b, _ in bands]), bands[0][1]

    _SAVED.update(layer=new_layer, preview=overlays.read_preview, warp=new_warp)
    layers.EmbeddedTileLayer = OldTileLayer  # type: ignore[misc]
    overlays.read_preview = lambda scene, side: read_overview(scene, max_side=side)  # type: ignore[assignment]
    overlays.warp_to_mercator = old_warp  # type: ignore[assignment]


def uninstall_legacy() -> None:
    """Put the current map code back."""
    from core.mapping import overlays
    from core.mapping.basemaps import layers

    layers.EmbeddedTileLayer = _SAVED["layer"]  # type: ignore[misc]
    overlays.read_preview = _SAVED["preview"]  # type: ignore[assignment]
    overlays.warp_to_mercator = _SAVED["warp"]  # type: ignore[assignment]


# -- the scenario ----------------------------------------------------------------------------------------------
def make_scenario(root: Path, scale: int) -> dict[str, Any]:
    """The test's workspace (an analysed Joplin tile) and basemap files, plus the large real orthophoto."""
    from tests.support.basemaps import analysed_case, make_mbtiles, make_ortho, make_real_ortho

    case, aid, (lat, lon) = analysed_case(root / "ws", TILE, MODEL)
    t = time.perf_counter()
    big = make_real_ortho(root / "joplin_ortho.tif", sorted(JOPLIN_POST.glob("*.tif")), scale=scale)
    print(f"large orthophoto: {big.name}, {scale}x the six Joplin post tiles, made in {time.perf_counter() - t:.1f} s")
    return {"ws": root / "ws", "case": case, "aid": aid,
            "mbtiles": make_mbtiles(root / "joplin.mbtiles", lat, lon, zooms=range(10, 17), half_deg=0.01),
            "ortho": make_ortho(root / "ortho.tif", lat, lon - 0.004, size=80, colour=ORTHO_COLOUR), "big": big}


def build_html(sc: dict[str, Any], ortho: Path) -> tuple[str, float]:
    """The map HTML as the Map page builds it on a first visit (overlays and basemaps read, nothing cached), and
    the seconds it took."""
    from core.mapping import webmap
    from core.mapping.basemaps import WORLD, basemap_layers, check_basemap, scenes_area
    from core.store import Workspace

    ws = Workspace(sc["ws"])
    results = ws.scene_results(sc["aid"])
    ws.close()
    t = time.perf_counter()
    imagery = {str(r.source_path): webmap.imagery_overlay(r.source_path, r.georef, r.width, r.height, max_px=1024)
               for r in results}
    base = basemap_layers([WORLD, check_basemap(sc["mbtiles"]), check_basemap(ortho)], scenes_area(results))
    html = webmap.map_html(webmap.build_map(results, imagery=imagery, base_layers=base.layers, height=620))
    return html, time.perf_counter() - t


def draw_standalone(page: Any, html: str, cap_s: float) -> float:
    """Seconds from handing ``html`` to the browser to the basemap tiles and the orthophoto drawn (inf past cap)."""
    t = time.perf_counter()
    try:
        page.set_content(html, wait_until="load", timeout=cap_s * 1000)
        page.wait_for_function(_DRAWN, arg=[MAP_IFRAME, [TILES_SEL, RASTER_SEL]],
                               timeout=max(1.0, cap_s - (time.perf_counter() - t)) * 1000)
    except Exception:  # playwright's TimeoutError: not drawn within the cap
        return float("inf")
    return time.perf_counter() - t


def fmt(s: float, cap: float) -> str:
    """Seconds, or "> cap" for a run stopped at the cap."""
    return f"> {cap:.0f}" if s == float("inf") else f"{s:.2f}"


def standalone(sc: dict[str, Any], runs: int, cap: float) -> None:
    """Part 1: the map HTML, old and new interleaved, for the test's orthophoto and the large one."""
    from tests.support.browser import offline_browser

    build_html(sc, sc["ortho"])  # warm-up (imports, the world layer, Leaflet's files): not counted
    print("\n1. Map page in the browser (old and new interleaved)")
    print(f"{'orthophoto':<22} {'code':<4} {'run':>3} {'build s':>8} {'HTML MB':>8} {'drawn s':>8}")
    for label, ortho in (("test's (80 px)", sc["ortho"]), (sc["big"].name, sc["big"])):
        for k in range(runs):
            for code in ("new", "old"):
                with legacy() if code == "old" else contextlib.nullcontext():
                    html, build_s = build_html(sc, ortho)
                # a fresh browser per run: a frozen old page must not slow the next run down
                with offline_browser(viewport=(1100, 700)) as (page, blocked):
                    drawn = draw_standalone(page, html, cap)
                    assert not blocked, blocked[:3]
                print(f"{label:<22} {code:<4} {k + 1:>3} {build_s:>8.2f} {len(html) / 1e6:>8.2f} {fmt(drawn, cap):>8}",
                      flush=True)


# -- the app ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def app_server(ws: Path, old: bool) -> Iterator[str]:
    """``streamlit run app.py`` on a free loopback port (with :func:`install_legacy` run first when ``old``)."""
    from tests.support.browser import free_port, stop_server, wait_healthy

    port = free_port()
    log = ws / f"streamlit-{'old' if old else 'new'}.log"
    boot = (f"import sys; sys.path.insert(0, {str(REPO)!r}); "
            + ("from benchmarks.bench_map import install_legacy; install_legacy(); " if old else "")
            + "from streamlit.web.cli import main; sys.argv = ['streamlit'] + sys.argv[1:]; main()")
    cmd = [sys.executable, "-c", boot, "run", str(REPO / "app.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    env = {**os.environ, "BDA_WORKSPACE": str(ws), "BDA_MODEL": str(MODEL), "OMP_NUM_THREADS": "2"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(proc, url, log, 120)
            yield url
        finally:
            stop_server(proc)


def add_basemap(page: Any, path: Path, shown: int, sels: list[str], cap: float) -> tuple[float, float]:
    """Add ``path`` in the "Offline basemaps" popover; seconds from the click to the label "(N shown)" and to the
    map drawn with ``sels`` (inf past the cap)."""
    from tests.support.basemaps import fill_basemap_path

    fill_basemap_path(page, path)
    t = time.perf_counter()
    page.get_by_role("button", name="Add basemap").click()
    label = drawn = float("inf")
    with contextlib.suppress(Exception):
        page.get_by_role("button", name=re.compile(rf"Offline basemaps \({shown} shown\)")).first.wait_for(
            timeout=cap * 1000)
        label = time.perf_counter() - t
        page.wait_for_function(_DRAWN, arg=[MAP_IFRAME, sels],
                               timeout=max(1.0, cap - (time.perf_counter() - t)) * 1000)
        drawn = time.perf_counter() - t
    return label, drawn


def in_app(sc: dict[str, Any], cap: float) -> None:
    """Part 2: the analyst's steps in the app, new then old, each on a fresh copy of the workspace."""
    from tests.support.browser import nav, offline_browser

    print("\n2. The app: from the 'Add basemap' click (new, then old; fresh server and workspace each)")
    print(f"{'code':<4} {'basemap added':<16} {'label s':>8} {'map drawn s':>12}")
    for code in ("new", "old"):
        ws = sc["ws"].parent / f"ws-{code}"
        shutil.rmtree(ws, ignore_errors=True)
        shutil.copytree(sc["ws"], ws)
        with app_server(ws, old=code == "old") as url, offline_browser() as (page, blocked):
            page.goto(url, wait_until="networkidle")
            nav(page, "Map")
            page.wait_for_function(_DRAWN, arg=[MAP_IFRAME, [".leaflet-container"]], timeout=120_000)
            steps = (("MBTiles", sc["mbtiles"], 2, [TILES_SEL]), ("GeoTIFF (test's)", sc["ortho"], 3,
                                                                  [TILES_SEL, RASTER_SEL]))
            for name, path, shown, sels in steps:
                label, drawn = add_basemap(page, path, shown, sels, cap)
                print(f"{code:<4} {name:<16} {fmt(label, cap):>8} {fmt(drawn, cap):>12}", flush=True)
                if drawn == float("inf"):
                    print(f"{code:<4} (the page did not draw the map within {cap:.0f} s: later steps skipped)")
                    break
            assert not blocked, blocked[:3]


def main() -> int:
    """Run the benchmark; print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1, help="runs of each of old and new in part 1")
    ap.add_argument("--cap", type=float, default=60.0, help="seconds after which a run counts as not drawn")
    ap.add_argument("--scale", type=int, default=3, help="enlargement of the Joplin mosaic for the large ortho")
    ap.add_argument("--no-app", action="store_true", help="skip part 2 (the app)")
    args = ap.parse_args()
    if not TILE.is_file() or not MODEL.is_file():
        print(f"needs {TILE} (../shared/data) and the bundled model {MODEL}")
        return 2
    from tests.support.browser import need_chromium

    need_chromium()
    with tempfile.TemporaryDirectory(prefix="bench_map_") as tmp:
        sc = make_scenario(Path(tmp), args.scale)
        standalone(sc, args.runs, args.cap)
        if not args.no_app:
            in_app(sc, args.cap)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
