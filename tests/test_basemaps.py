"""Offline basemaps (issue 16 part 2): MBTiles, XYZ folders, GeoTIFF orthophotos and vector layers read from disk
and embedded in the map (nothing fetched), a bundled world layer, per-case memory and the report's sources."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import InputError
from core.mapping import webmap
from core.mapping.basemaps import (
    WORLD,
    Basemap,
    basemap_layers,
    case_basemaps,
    case_sources,
    check_basemap,
    load_basemap,
    shown_basemaps,
    world_data,
)
from core.mapping.basemaps.tiles import MBTiles, TileFolder, embed_tiles, tile_range
from core.mapping.overlays import Overlay
from core.report import ReportContext, write_pdf
from core.store.schema import SCHEMA_VERSION
from tests.support.basemaps import TILE_COLOUR, make_gpkg, make_mbtiles, make_ortho, make_xyz
from tests.support.store import make_result
from tests.test_webmap import _result

LAT, LON = 37.0842, -94.5133  # Joplin, where the test scenes of test_webmap lie
AREA = (LON - 0.005, LAT - 0.005, LON + 0.005, LAT + 0.005)


def _decode(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_tile_range_matches_the_slippy_map_formula() -> None:
    assert tile_range((-180, -85, 180, 85), 0) == (0, 0, 0, 0)
    x0, y0, x1, y1 = tile_range((LON, LAT, LON, LAT), 12)
    # Joplin at z12: x = (lon + 180) / 360 · 2^z, y = (1 − ln(tan φ + sec φ) / π) / 2 · 2^z
    assert (x0, y0) == (x1, y1) == (972, 1593)


def test_mbtiles_are_read_with_tms_rows_and_embedded_by_zoom(tmp_path: Path) -> None:
    mb_path = make_mbtiles(tmp_path / "city.mbtiles", LAT, LON)
    b = check_basemap(mb_path)
    assert (b.kind, b.name) == ("mbtiles", "city.mbtiles")
    with MBTiles(mb_path) as mb:
        assert mb.zoom_range() == (8, 15) and "made in the test" in mb.metadata["attribution"]
        emb = embed_tiles(mb, AREA)
    assert emb.min_zoom == 8 and emb.max_native_zoom == 15 and not emb.truncated
    assert "12/972/1593" in emb.tiles  # XYZ row, converted from the stored TMS row
    img = _decode(emb.tiles["12/972/1593"])
    assert img.size == (256, 256) and img.convert("RGB").getpixel((128, 200)) == TILE_COLOUR
    with MBTiles(mb_path) as mb:
        small = embed_tiles(mb, AREA, max_tiles=6)
    assert small.truncated and len(small.tiles) <= 6 and small.max_native_zoom < 15  # deepest levels dropped


def test_xyz_folder_geotiff_and_gpkg(tmp_path: Path) -> None:
    folder = make_xyz(tmp_path / "tiles", LAT, LON)
    assert check_basemap(folder).kind == "xyz"
    assert embed_tiles(TileFolder(folder), AREA).max_native_zoom == 12
    ortho = check_basemap(make_ortho(tmp_path / "ortho.tif", LAT, LON), "Ortho 2024")
    assert (ortho.kind, ortho.name) == ("geotiff", "Ortho 2024")
    ov = load_basemap(ortho, AREA)
    assert isinstance(ov, Overlay)
    (s, w), (n, e) = ov.bounds
    assert s < LAT < n and w < LON < e and (n - s) == pytest.approx(0.0256, abs=0.002)
    gpkg = check_basemap(make_gpkg(tmp_path / "roads.gpkg", LAT, LON))
    data = load_basemap(gpkg, AREA)
    assert [f["properties"]["name"] for f in data["features"]] == ["Main <b>street</b>", "Cross road"]
    (x, y), _ = data["features"][1]["geometry"]["coordinates"]  # reprojected from UTM to lon/lat
    assert x == pytest.approx(LON, abs=1e-4) and y == pytest.approx(LAT - 0.0045, abs=5e-4)


def test_bad_basemaps_get_clear_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="does not exist"):
        check_basemap(tmp_path / "nope.mbtiles")
    with pytest.raises(InputError, match="absolute path"):
        check_basemap("maps/city.mbtiles")
    (tmp_path / "fake.mbtiles").write_text("not sqlite")
    with pytest.raises(InputError, match="not an SQLite file"):
        check_basemap(tmp_path / "fake.mbtiles")
    with pytest.raises(InputError, match="no georeference"):
        check_basemap(make_ortho(tmp_path / "plain.tif", LAT, LON, georef=False))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a basemap this workbench reads"):
        check_basemap(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a tile folder"):
        check_basemap(tmp_path / "empty")
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        check_basemap(tmp_path / "bad.geojson")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("BDA_SERVER_PATHS", str(allowed))
    with pytest.raises(InputError, match="outside the folders this server allows"):
        check_basemap(make_mbtiles(tmp_path / "out.mbtiles", LAT, LON, zooms=range(10, 11)))


def test_world_layer_is_bundled_small_and_sourced() -> None:
    data = world_data()
    kinds = [f["properties"]["kind"] for f in data["features"]]
    assert kinds.count("country") > 150 and kinds.count("place") > 150
    assert "public domain" in data["licence"] and "Natural Earth" in data["source"]
    assert any(f["properties"]["name"] == "Seoul" for f in data["features"])
    assert Path(WORLD.path).stat().st_size < 400_000


def test_layers_draw_from_files_only_and_skip_what_is_gone(tmp_path: Path) -> None:
    mb = check_basemap(make_mbtiles(tmp_path / "city.mbtiles", LAT, LON, zooms=range(10, 13)))
    ortho = check_basemap(make_ortho(tmp_path / "ortho.tif", LAT, LON))
    gone = Basemap("geotiff", str(tmp_path / "moved.tif"), "moved.tif")
    roads = check_basemap(make_gpkg(tmp_path / "roads.gpkg", LAT, LON))
    base = basemap_layers([WORLD, roads, gone, ortho, mb], AREA)
    assert len(base.notes) == 1 and "moved.tif" in base.notes[0] and "not there any more" in base.notes[0]
    assert [s.split(":")[0] for s in base.sources] == ["MBTiles tiles", "GeoTIFF orthophoto", "Vector layer",
                                                       "World borders and capitals (bundled)"]
    scene = _result(tmp_path, name="scene.tif")
    m = webmap.build_map([scene], overlays={str(scene.heatmap_path): None}, base_layers=base.layers)
    html = webmap.map_html(m)
    assert '"11/486/796"' in html and "maxNativeZoom" in html and '"bda-raster"' in html
    assert "Main \\u0026lt;b\\u0026gt;street" in html and "<b>street" not in html  # escaped: shown as text
    body = html.split("</head>")[-1]
    assert not re.findall(r"https?://[^\"' ]+", body.replace("http://www.w3.org/2000/svg", ""))
    assert webmap.map_html(webmap.build_map([scene], overlays={str(scene.heatmap_path): None},
                                            base_layers=basemap_layers([WORLD, roads, mb], AREA).layers)) \
        != html  # a different choice is a different map; the same choice is byte-identical:
    again = webmap.build_map([scene], overlays={str(scene.heatmap_path): None},
                             base_layers=basemap_layers([WORLD, roads, gone, ortho, mb], AREA).layers)
    assert webmap.map_html(again) == html


def test_basemaps_are_remembered_per_case_and_listed_in_the_report(ws, tmp_path: Path) -> None:
    assert SCHEMA_VERSION >= 4
    c1, c2 = ws.create_case("one"), ws.create_case("two")
    assert case_basemaps(ws, c1) == [WORLD.to_dict() | {"shown": True}]  # never blank
    ortho = check_basemap(make_ortho(tmp_path / "ortho.tif", LAT, LON))
    ws.set_case_setting(c1, "basemaps", [WORLD.to_dict() | {"shown": False}, ortho.to_dict() | {"shown": True}])
    assert shown_basemaps(ws, c1) == [ortho] and shown_basemaps(ws, c2) == [WORLD]
    with pytest.raises(InputError, match="unknown case setting"):
        ws.set_case_setting(c1, "colour", 1)
    lines = case_sources(ws, c1)
    assert lines == [f"GeoTIFF orthophoto: ortho.tif ({ortho.path})"]
    ctx = ReportContext(title="Basemaps", handling="TLP:CLEAR", scenes=[make_result("a.tif", geo=False)],
                        basemap_sources=lines)
    pdf = write_pdf(ctx, tmp_path / "r.pdf")
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())
    assert "Map backgrounds (offline basemaps)" in text and "GeoTIFF orthophoto: ortho.tif" in text


def test_embedded_tiles_are_asked_for_only_where_they_are_and_hidden_far_out(tmp_path: Path) -> None:
    """A level-10..16 MBTiles (as the browser test's): the layer's JavaScript asks Leaflet only for the tiles it
    holds and is hidden more than UNDERZOOM levels out, so the map never lays out a whole level-10 world of tiles
    (the old layer froze the page for minutes); the map's own zoom range stays 0-22 whatever the layers say."""
    from core.mapping.basemaps.layers import UNDERZOOM

    mb = check_basemap(make_mbtiles(tmp_path / "deep.mbtiles", LAT, LON, zooms=range(10, 17), half_deg=0.01))
    scene = _result(tmp_path, name="scene.tif")
    html = webmap.map_html(webmap.build_map([scene], overlays={str(scene.heatmap_path): None},
                                            base_layers=basemap_layers([mb], AREA).layers))
    opts = json.loads(re.search(r"new Embedded\('', (\{.*?\})\)", html).group(1))
    assert opts["minNativeZoom"] == 10 and opts["maxNativeZoom"] == 16
    assert opts["minZoom"] == 10 - UNDERZOOM and UNDERZOOM <= 6
    assert "_isValidTile" in html and "in tiles" in html
    # at the layer's lowest zoom a 4K screen spans at most this many level-10 tile positions for Leaflet to check
    assert (3840 / 256 * 2 ** UNDERZOOM) * (2160 / 256 * 2 ** UNDERZOOM) < 200_000
    assert re.search(r'"minZoom": 0,\s*"maxZoom": 22', html)  # the map's own range, fixed


def test_geotiff_basemap_is_read_decimated_never_at_full_resolution(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4000 px orthophoto shown at 512 px is read once, decimated (out_shape; overviews when the file has them),
    at no more than twice the preview size: the old path read every pixel in strips."""
    from core.imagery.sources import RasterSource

    read: list[int] = []
    real = RasterSource.read_raw

    def counting(self, window=None, out_shape=None):
        data, valid = real(self, window, out_shape)
        read.append(int(valid.size))
        return data, valid

    ortho = make_ortho(tmp_path / "big.tif", LAT, LON, size=4000, gsd_deg=0.00001)
    monkeypatch.setattr(RasterSource, "read_raw", counting)
    ov = load_basemap(check_basemap(ortho), AREA, raster_px=512)
    assert isinstance(ov, Overlay) and max(ov.shape) <= 512
    assert sum(read) <= 2 * 1024 * 1024 < 4000 * 4000 // 4, read  # (the scene's own sample on open included)
    img = np.asarray(_decode(ov.png_data_uri).convert("RGBA")).astype(int)
    h, w = ov.shape
    assert tuple(img[h // 4, w // 4, :3]) == pytest.approx((120, 40, 200), abs=10)  # the colour, off the cross
    (s, west), (n, e) = ov.bounds
    assert n - s == pytest.approx(0.04, rel=0.02) and s < LAT < n and west < LON < e
