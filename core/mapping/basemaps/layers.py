"""The chosen basemaps as Leaflet layers of the analysis map, all drawn from local files (nothing fetched).

Order on the map, bottom to top: tiles (MBTiles / XYZ), GeoTIFF orthophotos, vector layers, the world layer,
then the analysis' own imagery, heatmaps and findings (their panes sit above these, :data:`PANES`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import folium
import numpy as np
from branca.element import Element, MacroElement
from folium.template import Template

from core.errors import CoreError, InputError
from core.i18n import _, get_lang
from core.mapping.basemaps.sources import KIND_LABEL, WORLD_PATH, WORLD_SOURCE, Basemap, check_allowed
from core.mapping.basemaps.tiles import EmbeddedTiles, MBTiles, TileFolder, embed_tiles
from core.mapping.basemaps.vector import read_vector
from core.mapping.overlays import Overlay, png_data_uri

#: Leaflet panes of the basemap layers (z-index): above the tile pane (200), below the overlay pane (400).
PANES = {"raster": 240, "vector": 260, "world": 280}
#: Zoom levels below its shallowest tiles at which an embedded tile layer is still drawn (tiles 256 / 2**5 = 8 px).
UNDERZOOM = 5
#: A transparent 1×1 PNG: where a tile is missing.
_BLANK = png_data_uri(np.zeros((1, 1, 4), np.uint8))


def _esc(text: Any) -> str:
    from core.mapping.webmap import escape

    return escape(text)


class _Panes(MacroElement):
    _template = Template("""
        {% macro script(this, kwargs) %}
        {% for name, z in this.panes %}
        {{ this._parent.get_name() }}.createPane({{ name|tojson }});
        {{ this._parent.get_name() }}.getPane({{ name|tojson }}).style.zIndex = {{ z }};
        {% endfor %}
        {% endmacro %}
    """)

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # branca is untyped
        self._name = "Panes"
        self.panes = [(f"bda-{k}", z) for k, z in PANES.items()]


class EmbeddedTileLayer(MacroElement):
    """A Leaflet tile layer whose tiles are ``data:`` URIs embedded in the page (:mod:`core.mapping.basemaps.tiles`).

    Leaflet draws a zoom below ``minNativeZoom`` with the tiles of that level, shrunk, and lays out (an ``<img>``
    each) every tile of that level over the visible world: a level-10 MBTiles seen at the map's first zoom
    (the whole world, before it fits the scenes) made over a million images and froze the browser for minutes.
    So the layer asks only for the tiles it holds (``_isValidTile``) and is hidden more than :data:`UNDERZOOM`
    levels out from its shallowest level (its tiles 8 px wide there), which bounds the tiles Leaflet even looks at.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var tiles = {{ this.tiles|tojson }};
            var Embedded = L.TileLayer.extend({
                getTileUrl: function (c) { return tiles[c.z + '/' + c.x + '/' + c.y] || {{ this.blank|tojson }}; },
                _isValidTile: function (c) {
                    var w = this._wrapCoords(c);
                    return (w.z + '/' + w.x + '/' + w.y) in tiles;
                }
            });
            new Embedded('', {{ this.options|tojson }}).addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
    """)

    def __init__(self, tiles: dict[str, str], min_zoom: int, max_native_zoom: int, attribution: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # branca is untyped
        self._name = "EmbeddedTileLayer"
        self.tiles = tiles
        self.blank = _BLANK
        self.options = {"minZoom": max(0, min_zoom - UNDERZOOM), "maxZoom": 22, "minNativeZoom": min_zoom,
                        "maxNativeZoom": max_native_zoom,
                        "attribution": _esc(attribution), "className": "bda-basemap-tiles"}


class GeoJsonLayer(MacroElement):
    """GeoJSON drawn in a basemap pane: lines and outlines in ``colour``, points as small circles, the feature's
    ``name`` (escaped) as its tooltip."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var style = {{ this.style|tojson }};
            L.geoJSON({{ this.data|tojson }}, {
                pane: {{ this.pane|tojson }},
                interactive: {{ this.interactive|tojson }},
                style: function () { return style; },
                pointToLayer: function (f, ll) {
                    return L.circleMarker(ll, {pane: {{ this.pane|tojson }}, radius: 3, color: style.color,
                                               weight: 1, fillOpacity: 0.8});
                },
                onEachFeature: function (f, layer) {
                    if (f.properties && f.properties.name) { layer.bindTooltip(f.properties.name, {sticky: true}); }
                }
            }).addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
    """)

    def __init__(self, data: dict[str, Any], pane: str, colour: str, *, interactive: bool = True) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # branca is untyped
        self._name = "GeoJsonLayer"
        feats = []
        for f in data.get("features", []):
            props = dict(f.get("properties") or {})
            props["name"] = _esc(props.get("name", ""))
            feats.append({"type": "Feature", "geometry": f.get("geometry"), "properties": {"name": props["name"]}})
        self.data = {"type": "FeatureCollection", "features": feats}
        self.pane = pane
        self.interactive = interactive
        self.style = {"color": colour, "weight": 1.2, "opacity": 0.9, "fill": False}


@functools.lru_cache(maxsize=1)
def world_data() -> dict[str, Any]:
    """The bundled world layer (country borders and capitals) as GeoJSON."""
    try:
        data: dict[str, Any] = json.loads(WORLD_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CoreError(_("the bundled world layer {path} is missing or damaged ({exc}); reinstall the "
                          "workbench").format(path=WORLD_PATH, exc=exc)) from exc
    return data


@functools.lru_cache(maxsize=4)
def _world_names(lang: str) -> tuple[dict[str, str], dict[str, str]]:
    """(ISO 3166 alpha-3 code -> country name, English city name -> city name) in ``lang``, from the CLDR data that
    Babel carries (territory names; the exemplar cities of time zones, which name about two thirds of the places).
    Empty for English: the layer's own names are English."""
    if lang == "en":
        return {}, {}
    from babel import Locale
    from babel.core import get_global

    loc, en = Locale.parse(lang), Locale.parse("en")
    countries = {a3: loc.territories[a2[0]] for a3, a2 in get_global("territory_aliases").items()
                 if len(a3) == 3 and a3.isalpha() and a2 and a2[0] in loc.territories}
    cities = {}
    for tz, names in loc.time_zones.items():
        city = names.get("city") if hasattr(names, "get") else None
        english = (en.time_zones.get(tz) or {}).get("city") or tz.rsplit("/", 1)[-1].replace("_", " ")
        if city:
            cities[str(english)] = str(city)
    return countries, cities


def localise_world(data: dict[str, Any], lang: str) -> dict[str, Any]:
    """The world layer with its names in ``lang``: a feature's own ``name_<lang>`` (the places CLDR lacks, written
    by ``assets/basemap/build_world.py``), else CLDR's (a country by its ISO code, a place by its English name); the
    others, and every name in English, as the layer has them. ``data`` is not changed."""
    countries, cities = _world_names(lang)
    if not countries and not cities:
        return data
    feats = []
    for f in data.get("features", []):
        props = dict(f.get("properties") or {})
        name = str(props.get("name", ""))
        own = props.get(f"name_{lang}")
        props["name"] = str(own) if own else (
            countries.get(str(props.get("iso_a3")), name) if props.get("kind") == "country" else cities.get(name, name))
        feats.append({**f, "properties": props})
    return {**data, "features": feats}


@dataclass
class BasemapLayers:
    """What :func:`basemap_layers` made: folium layers to add (bottom first), notes for the page, and one source
    line per basemap (for the report's sources)."""

    layers: list[Element] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def source_line(b: Basemap) -> str:
    """How the report names a basemap: kind, name and file (in the language in use)."""
    if b.kind == "world":
        return f"{_(KIND_LABEL['world'])}: {_(WORLD_SOURCE)}"
    return f"{_(KIND_LABEL[b.kind])}: {b.name} ({b.path})"


def load_basemap(b: Basemap, area: tuple[float, float, float, float], raster_px: int = 2048,
                 also: tuple[Path, ...] = ()) -> Any:
    """The data a basemap draws from, read from its file (the slow part, which a page caches): embedded tiles
    (:class:`.tiles.EmbeddedTiles`), a warped orthophoto (:class:`~core.mapping.overlays.Overlay`) or
    GeoJSON (vector and world layers). Raises :class:`~core.errors.CoreError` saying why it cannot be drawn.
    ``also``: folders allowed besides ``$BDA_SERVER_PATHS`` (the workspace, for uploaded basemaps)."""
    if b.kind == "world":
        return world_data()
    path = Path(b.path)
    check_allowed(path, also)
    if not path.exists():
        raise InputError(_("{path} is not there any more; add the basemap again from where it is now").format(
            path=b.path))
    if b.kind == "mbtiles":
        with MBTiles(path) as mb:
            return embed_tiles(mb, area)
    if b.kind == "xyz":
        return embed_tiles(TileFolder(path), area)
    if b.kind == "geotiff":
        return geotiff_overlay(path, raster_px)
    return read_vector(path, bounds=area)


Loader = Callable[[Basemap, tuple[float, float, float, float]], Any]


def basemap_layers(basemaps: Sequence[Basemap], bounds: tuple[float, float, float, float] | None, *,
                   load: Loader | None = None) -> BasemapLayers:
    """Folium layers for ``basemaps`` around ``bounds`` (west, south, east, north; None: the whole world).

    ``load(basemap, area)`` reads a basemap's data (default :func:`load_basemap`; the Map page passes a cached
    one). A basemap that cannot be drawn (file moved, unreadable) is skipped with a note saying why; the others
    are still drawn.
    """
    out = BasemapLayers()
    out.layers.append(_Panes())
    area = bounds or (-180.0, -85.0, 180.0, 85.0)
    read = load or load_basemap
    order = {"mbtiles": 0, "xyz": 0, "geotiff": 1, "vector": 2, "world": 3}
    for b in sorted(basemaps, key=lambda x: order.get(x.kind, 9)):
        group = folium.FeatureGroup(name=_esc(b.label), show=True)
        try:
            data = read(b, area)
        except CoreError as exc:
            out.notes.append(_("{label} not shown: {message}").format(label=b.label, message=exc))
            continue
        if isinstance(data, EmbeddedTiles):
            if not data.tiles:
                out.notes.append(_("{label}: no tiles cover these scenes").format(label=b.label))
            if data.truncated:
                out.notes.append(_("{label}: zoom levels deeper than {zoom} were left out to keep the map light "
                                   "(deeper zooms enlarge that level)").format(label=b.label,
                                                                               zoom=data.max_native_zoom))
            group.add_child(EmbeddedTileLayer(data.tiles, data.min_zoom, data.max_native_zoom, data.attribution))
        elif isinstance(data, Overlay):
            folium.raster_layers.ImageOverlay(data.png_data_uri, bounds=[list(data.bounds[0]), list(data.bounds[1])],
                                              opacity=1.0, interactive=False, pane="bda-raster").add_to(group)
        else:
            if b.kind == "world":
                data = localise_world(data, get_lang())
            group.add_child(GeoJsonLayer(data, "bda-world" if b.kind == "world" else "bda-vector",
                                         "#4a5568" if b.kind == "world" else "#2b6cb0"))
        out.layers.append(group)
        out.sources.append(source_line(b))
    return out


def geotiff_overlay(path: str | Path, max_px: int = 2048) -> Overlay:
    """A GeoTIFF / COG orthophoto warped to Web Mercator (nodata transparent), as the analysed imagery is."""
    from core.imagery.reader import open_scene
    from core.mapping.overlays import imagery_overlay

    scene = open_scene(path)
    try:
        georef, w, h = scene.georef, scene.width, scene.height
    finally:
        scene.close()
    if georef is None:
        raise InputError(_("{name} has no georeference, so it cannot be placed on the map; give a georeferenced "
                           "GeoTIFF / COG orthophoto").format(name=Path(path).name))
    ov = imagery_overlay(path, georef, w, h, max_px=max_px)
    if ov is None:
        raise InputError(_("{name} could not be read; check that the file is a complete GeoTIFF (open it in a "
                           "GIS) or export it again").format(name=Path(path).name))
    return ov


def scenes_area(results: Sequence[Any]) -> tuple[float, float, float, float] | None:
    """West, south, east, north (WGS84) around the results' footprints and GPS points; None when none has one."""
    boxes = [tuple(r.bounds_wgs84) for r in results if getattr(r, "bounds_wgs84", None)]
    for r in results:
        gps = r.meta.get("gps") if isinstance(getattr(r, "meta", None), dict) else None
        lat, lon = (gps or {}).get("lat"), (gps or {}).get("lon")
        if isinstance(lat, (int, float)) and isinstance(lon, (int, float)) and -90 <= lat <= 90 and -180 <= lon <= 180:
            boxes.append((lon, lat, lon, lat))
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
