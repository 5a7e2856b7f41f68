"""Basemap files made in the tests: an MBTiles file and an XYZ folder of coloured, labelled tiles, a georeferenced
GeoTIFF orthophoto and a GeoPackage vector layer, all around a given WGS84 point."""

from __future__ import annotations

import io
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image, ImageDraw
from rasterio.transform import from_origin

from core.mapping.basemaps.tiles import tile_range

TILE_COLOUR = (30, 160, 90)  #: fill of every test tile (a colour no heatmap or imagery uses)


def tile_png(z: int, x: int, y: int, colour: tuple[int, int, int] = TILE_COLOUR) -> bytes:
    """A 256 px PNG tile in ``colour`` with its z/x/y written on it."""
    img = Image.new("RGB", (256, 256), colour)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 255, 255], outline=(255, 255, 255))
    d.text((8, 8), f"{z}/{x}/{y}", fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _box(lat: float, lon: float, half_deg: float) -> tuple[float, float, float, float]:
    return lon - half_deg, lat - half_deg, lon + half_deg, lat + half_deg


def make_mbtiles(path: Path, lat: float, lon: float, zooms: range = range(8, 16), half_deg: float = 0.02,
                 colour: tuple[int, int, int] = TILE_COLOUR) -> Path:
    """An MBTiles file (TMS rows) with tiles around (lat, lon) at ``zooms``."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    conn.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
    conn.executemany("INSERT INTO metadata VALUES (?, ?)", [("name", "test tiles"), ("format", "png"),
                                                            ("attribution", "test tiles <b>made in the test</b>")])
    for z in zooms:
        x0, y0, x1, y1 = tile_range(_box(lat, lon, half_deg), z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                conn.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, (1 << z) - 1 - y, tile_png(z, x, y,
                                                                                                      colour)))
    conn.commit()
    conn.close()
    return path


def make_xyz(folder: Path, lat: float, lon: float, zooms: range = range(10, 13), half_deg: float = 0.01) -> Path:
    """A {z}/{x}/{y}.png folder around (lat, lon)."""
    for z in zooms:
        x0, y0, x1, y1 = tile_range(_box(lat, lon, half_deg), z)
        for x in range(x0, x1 + 1):
            (folder / str(z) / str(x)).mkdir(parents=True, exist_ok=True)
            for y in range(y0, y1 + 1):
                (folder / str(z) / str(x) / f"{y}.png").write_bytes(tile_png(z, x, y))
    return folder


def make_ortho(path: Path, lat: float, lon: float, size: int = 256, gsd_deg: float = 0.0001,
               colour: tuple[int, int, int] = (120, 40, 200), georef: bool = True) -> Path:
    """An RGB GeoTIFF in EPSG:4326 centred on (lat, lon): ``colour`` with a white cross (or no georeference)."""
    rgb = np.zeros((3, size, size), np.uint8)
    for c in range(3):
        rgb[c] = colour[c]
    rgb[:, size // 2 - 2: size // 2 + 2, :] = 255
    rgb[:, :, size // 2 - 2: size // 2 + 2] = 255
    kw = {"crs": "EPSG:4326", "transform": from_origin(lon - size / 2 * gsd_deg, lat + size / 2 * gsd_deg, gsd_deg,
                                                       gsd_deg)} if georef else {}
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8", **kw) as ds:
        ds.write(rgb)
    return path


def make_gpkg(path: Path, lat: float, lon: float) -> Path:
    """A GeoPackage in UTM (EPSG:32615 or the zone of ``lon``) with two named roads crossing at (lat, lon)."""
    import pyogrio
    import shapely
    from pyproj import Transformer

    zone = int(math.floor((lon + 180) / 6)) + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    tr = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    cx, cy = tr.transform(lon, lat)
    roads = [shapely.LineString([(cx - 500, cy), (cx + 500, cy)]), shapely.LineString([(cx, cy - 500), (cx, cy + 500)])]
    pyogrio.raw.write(path, np.asarray(shapely.to_wkb(roads), dtype=object),
                      [np.asarray(["Main <b>street</b>", "Cross road"], dtype=object)], ["name"],
                      driver="GPKG", geometry_type="LineString", crs=f"EPSG:{epsg}", layer="roads")
    return path


def make_real_ortho(path: Path, tiles: list[Path], scale: int = 1, overviews: bool = False) -> Path:
    """A large orthophoto from real imagery: the GeoTIFF ``tiles`` (same CRS, adjacent, e.g. the six Joplin post
    tiles) mosaicked and enlarged ``scale`` times (each pixel repeated), written tiled and deflated in strips of
    rows (never whole in memory at the enlarged size); with ``overviews``, internal overviews as a COG has them."""
    from rasterio.merge import merge
    from rasterio.transform import Affine

    srcs = [rasterio.open(t) for t in tiles]
    try:
        mosaic, tr = merge(srcs)
        crs = srcs[0].crs
    finally:
        for s in srcs:
            s.close()
    k, h, w = mosaic.shape
    profile = {"driver": "GTiff", "width": w * scale, "height": h * scale, "count": k, "dtype": mosaic.dtype.name,
               "crs": crs, "transform": tr * Affine.scale(1 / scale), "tiled": True, "blockxsize": 512,
               "blockysize": 512, "compress": "deflate"}
    rows = max(1, 512 // scale)
    with rasterio.open(path, "w", **profile) as ds:
        for r in range(0, h, rows):
            part = mosaic[:, r:r + rows]
            big = np.repeat(np.repeat(part, scale, axis=1), scale, axis=2)
            ds.write(big, window=rasterio.windows.Window(0, r * scale, w * scale, big.shape[1]))
        if overviews:
            ds.build_overviews([2, 4, 8, 16, 32], rasterio.enums.Resampling.average)
    return path


def analysed_case(root: Path, tile: Path, model: Path | None) -> tuple[int, int, tuple[float, float]]:
    """A workspace at ``root`` with a case holding one analysed, georeferenced tile; returns (case id, analysis id,
    (lat, lon) of the tile's centre). Used by the basemaps browser test and ``benchmarks/bench_map.py``."""
    from core.detection.detector import Detector
    from core.detection.pipeline import analyze_scene
    from core.imagery.reader import open_scene
    from core.store import Workspace

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
    ws.close()
    assert result.bounds_wgs84 is not None
    w, s, e, n = result.bounds_wgs84
    return case, aid, ((s + n) / 2, (w + e) / 2)


def fill_basemap_path(page: Any, path: Path) -> None:
    """Open the Map page's "Offline basemaps" popover (when closed) and type ``path`` into its server-path box; the
    caller clicks "Add basemap" (the basemaps browser test and ``benchmarks/bench_map.py`` time that click)."""
    import re

    from tests.support.browser import open_popover

    box = open_popover(page, re.compile(r"Offline basemaps"),
                       page.get_by_role("textbox", name="Basemap path on the server"))
    box.fill(str(path))
    box.press("Tab")
