"""The interactive map of an analysis: heatmaps warped to Web Mercator, graded findings, footprints, GPS points.

Pure functions that build a :class:`folium.Map`; the Map page only draws it. Three rules hold for every map built
here:

* **Offline.** Leaflet's script and style sheet are taken from the installed ``folium-offline`` package at run time
  and handed to the browser as ``data:`` URIs (folium's defaults point at CDNs; streamlit-folium loads whatever
  ``default_js``/``default_css`` name). No other script or style is needed: popups and tooltips are bound with
  plain Leaflet calls, so jQuery and Bootstrap are not loaded. The default basemap is "none" (a plain background).
* **Escaped.** Every text that reaches the browser (scene names, notes, grades) is HTML-escaped and passed as a
  JSON string, so a hostile name shows as text and never runs.
* **Deterministic.** Element ids are numbered in build order, so the same input gives byte-identical HTML and
  streamlit-folium does not remount the map (which would lose the user's clicks and view).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import folium
import numpy as np
from branca.element import Element, MacroElement
from folium.template import Template
from PIL import Image

from core.detection.grading import get_scale
from core.errors import CoreError
from core.geo import georef as geo
from core.i18n import N_, _
from core.mapping.controls import Legend, OneOf, ZoomToScene
from core.mapping.leaflet import LEAFLET_CSS, LEAFLET_JS, offline_resources, resource_links  # noqa: F401 - re-exported
from core.mapping.overlays import (  # noqa: F401 - re-exported: pages and tests use core.mapping.webmap.*
    MERCATOR,
    OVERLAY_MAX_PX,
    Overlay,
    heatmap_overlay,
    imagery_overlay,
    mercator_to_latlon_bounds,
    png_data_uri,
    warp_to_mercator,
)
from core.types import Finding, GeoRef, SceneResult

#: Basemaps offered to the user. Only "none" works without a network; the others fetch tiles when online.
#: Hangul in the map's own frame (popups, tooltips, layer names) without system fonts: the app's web font, which
#: ui/i18n.py serves from static/fonts/ (Streamlit's static serving), for Hangul code points only.
HANGUL_FONT_CSS = ("<style>@font-face{font-family:'NanumGothic';src:url('/app/static/fonts/NanumGothic.ttf');"
                   "unicode-range:U+1100-11FF,U+3130-318F,U+A960-A97F,U+AC00-D7AF,U+D7B0-D7FF}"
                   ".leaflet-container{font-family:'NanumGothic','Helvetica Neue',Arial,Helvetica,sans-serif}</style>")
BASEMAPS: dict[str, dict[str, str] | None] = {
    N_("none"): None,
    N_("OpenStreetMap (online)"): {
        "tiles": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "attr": "&copy; OpenStreetMap contributors"},
    N_("Esri World Imagery (online)"): {
        "tiles": "https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{z}/{y}/{x}",
        "attr": "Tiles &copy; Esri"},
}
#: Which heatmap kind the map shows first ("auto": change when a scene has a pre-event image).
HEAT_LAYERS = ("auto", "anomaly", "change")
_UNKNOWN_GRADE_COLOUR = "#805ad5"
_REJECTED_COLOUR = "#718096"


# -- text -------------------------------------------------------------------------------------------------------
def escape(text: Any) -> str:
    """HTML-escape ``text`` so it shows literally inside HTML and inside a JavaScript template string."""
    out = html.escape(str(text), quote=True)
    for ch, ent in (("\\", "&#92;"), ("`", "&#96;"), ("$", "&#36;"), ("{", "&#123;"), ("}", "&#125;")):
        out = out.replace(ch, ent)
    return out


def _fmt(v: float | None, spec: str, unit: str = "") -> str:
    return f"{v:{spec}}{unit}" if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"


def grade_label_colour(f: Finding) -> tuple[str, str]:
    """(human label, hex colour) of a finding's grade; unknown grades keep their text and get a neutral colour."""
    try:
        g = get_scale(f.grade_scale).get(f.grade)
        return g.label, g.color
    except CoreError:
        return str(f.grade), _UNKNOWN_GRADE_COLOUR


def finding_tooltip(f: Finding) -> str:
    """Short hover text of a finding; also how a click is traced back to it (escaped)."""
    return escape(f"{f.id} · {_(grade_label_colour(f)[0])}")


def finding_popup_html(f: Finding) -> str:
    """Popup of a finding: grade, scores, MGRS, area, source, review; every value HTML-escaped."""
    label, colour = grade_label_colour(f)
    rows = [(_("Grade"), f"{_(label)} ({f.grade_scale})"),
            (_("Score max / mean"), f"{_fmt(f.score_max, '.2f')} / {_fmt(f.score_mean, '.2f')} "
                                    + _("(threshold {thr})").format(thr=_fmt(f.threshold, ".2f"))),
            (_("Confidence"), _fmt(f.confidence, ".0%")),
            ("MGRS", f.mgrs or _("n/a")),
            (_("Area"), _fmt(f.area_m2, ",.0f", " m²") + (_(" (approximate)") if f.location_approximate else "")),
            (_("Source"), f.source_name or f.scene_name),
            (_("Review"), _(f.review_status) + (_(" by {analyst}").format(analyst=f.analyst) if f.analyst else "")),
            (_("Method"), _(f.det_method))]
    if f.notes:
        rows.append((_("Notes"), f.notes))
    body = "".join(f"<tr><th style='text-align:left;padding-right:6px'>{escape(k)}</th><td>{escape(v)}</td></tr>"
                   for k, v in rows)
    return (f"<div style='min-width:220px'><b style='color:{escape(colour)}'>{escape(f.id)}</b>"
            f"<table style='font-size:12px'>{body}</table></div>")


class _Bind(MacroElement):
    """Binds a tooltip to its parent layer with plain Leaflet (the text passed as a JSON string)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.bindTooltip({{ this.tooltip|tojson }}, {sticky: true});
        {% endmacro %}
    """)

    def __init__(self, tooltip: str) -> None:
        super().__init__()
        self._name = "Bind"
        self.tooltip = tooltip


# -- the map ----------------------------------------------------------------------------------------------------
def _latlon_ring(georef: GeoRef, width: int, height: int) -> list[tuple[float, float]]:
    lon, lat = geo.pixel_to_lonlat(georef, np.array([0, width, width, 0], float), np.array([0, 0, height, height],
                                                                                          float))
    return [(float(a), float(o)) for a, o in zip(lat, lon, strict=True)]


def _position_marker(sr: SceneResult, ring: list[tuple[float, float]]) -> folium.CircleMarker:
    """The frame's GPS point (from ``meta["gps"]``), else the scene's centre: visible at any zoom."""
    p = gps_point(sr)
    if p is not None:
        alt = sr.meta["gps"].get("agl")
        alt = alt if isinstance(alt, (int, float)) and math.isfinite(alt) else None
        text = _("GPS of {name}").format(name=sr.scene_name) + (
            _(" · {alt:.0f} m above ground").format(alt=alt) if alt is not None else "")
        cm = folium.CircleMarker(p, radius=6, color="#2b6cb0", fill=True, fill_opacity=0.9)
    else:
        text = _("centre of {name}").format(name=sr.scene_name)
        cm = folium.CircleMarker((sum(p[0] for p in ring) / 4, sum(p[1] for p in ring) / 4), radius=4,
                                 color="#4a5568", fill=True, fill_opacity=0.6)
    return cm.add_child(_Bind(tooltip=escape(text)))


def gps_point(sr: SceneResult) -> tuple[float, float] | None:
    """(lat, lon) of a frame's GPS (``meta["gps"]``) when it is a valid position, else None."""
    pos = sr.meta.get("gps") if isinstance(sr.meta, dict) else None
    lat, lon = (pos or {}).get("lat"), (pos or {}).get("lon")
    if isinstance(lat, (int, float)) and isinstance(lon, (int, float)) and math.isfinite(lat + lon) \
            and -90 <= lat <= 90 and -180 <= lon <= 180:
        return float(lat), float(lon)
    return None


def _gps_only_marker(sr: SceneResult) -> folium.CircleMarker | None:
    """The GPS point of a frame that has no footprint yet, saying how to place it."""
    p = gps_point(sr)
    if p is None:
        return None
    cm = folium.CircleMarker(p, radius=6, color="#dd6b20", fill=True, fill_opacity=0.9)
    return cm.add_child(_Bind(tooltip=escape(_("GPS of {name} · no footprint: place the frame on the Analyze page "
                                               "to see its heatmap here").format(name=sr.scene_name))))


def _finding_style(f: Finding) -> dict[str, Any]:
    """Leaflet path options of a finding: grade colour; confirmed thicker; rejected grey and dashed."""
    colour = grade_label_colour(f)[1]
    if f.review_status == "rejected":
        return {"color": _REJECTED_COLOUR, "weight": 1, "dashArray": "4 4", "fillColor": _REJECTED_COLOUR,
                "fillOpacity": 0.1}
    return {"color": colour, "weight": 3 if f.review_status == "confirmed" else 2, "fillColor": colour,
            "fillOpacity": 0.35}


class _Findings(MacroElement):
    """All findings as one Leaflet GeoJSON layer (one JSON blob renders far faster than one element each); each
    polygon gets its escaped popup and tooltip, and is a layer of its own, so clicks on it reach streamlit-folium.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJSON({{ this.data|tojson }}, {
            style: function (feature) { return feature.properties.style; },
            onEachFeature: function (feature, layer) {
                layer.bindPopup(feature.properties.popup, {maxWidth: 360});
                layer.bindTooltip(feature.properties.tooltip, {sticky: true});
            }
        }).addTo({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, findings: Sequence[Finding]) -> None:
        super().__init__()
        self._name = "Findings"
        self.data = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": f.geometry,
             "properties": {"popup": finding_popup_html(f), "tooltip": finding_tooltip(f),
                            "style": _finding_style(f)}}
            for f in findings if f.geometry and f.geometry.get("type") in ("Polygon", "MultiPolygon")]}


def scene_threshold(sr: SceneResult) -> float:
    """The threshold a scene was analysed with (its findings were cut there); 1.0 when none is recorded."""
    for v in (sr.meta.get("threshold") if isinstance(sr.meta, dict) else None,
              *(f.threshold for f in sr.findings)):
        if isinstance(v, (int, float)) and math.isfinite(v):
            return float(v)
    return 1.0


def change_threshold(sr: SceneResult) -> float:
    """The threshold the change findings of a pre/post result were cut at (``meta["change"]["threshold"]``, else
    its findings'); 1.0 when none is recorded."""
    change = sr.meta.get("change") if isinstance(sr.meta, dict) else None
    for v in ((change or {}).get("threshold"), *(f.threshold for f in sr.findings)):
        if isinstance(v, (int, float)) and math.isfinite(v):
            return float(v)
    return 1.0


def _image_overlay(ov: Overlay, opacity: float) -> folium.raster_layers.ImageOverlay:
    return folium.raster_layers.ImageOverlay(ov.png_data_uri, bounds=[list(ov.bounds[0]), list(ov.bounds[1])],
                                             opacity=opacity, interactive=False)


def build_map(results: Sequence[SceneResult], *, overlays: Mapping[str, Overlay | None] | None = None,
              threshold: float | None = None, basemap: str = "none", overlay_opacity: float = 0.7,
              height: int = 600, imagery: Mapping[str, Overlay | None] | None = None,
              heat_layer: str = "auto", base_layers: Sequence[Element] = (), layers: Sequence[Any] = (),
              mosaic: Overlay | None = None) -> folium.Map:
    """Map of the georeferenced ``results``: heatmap overlays, findings coloured by grade (with escaped popups),
    scene footprints (dashed when approximate), GPS points, layer control and the chosen ``basemap``.

    ``overlays`` maps ``str(result.heatmap_path)`` to a ready overlay (e.g. cached by the page); other scenes get
    one computed here, transparent below ``threshold`` (default: :func:`scene_threshold`). Pre/post results
    (``change_path`` set) also get their change heatmap, in a layer group of its own ("Change heatmaps"), from
    ``overlays[str(result.change_path)]`` or computed at :func:`change_threshold`. ``imagery`` maps
    ``str(result.source_path)`` to the image itself on the map (:func:`imagery_overlay`), drawn beneath the
    heatmaps in an "Imagery" layer: what analysts see when no basemap can be fetched. Scenes without
    georeferencing are left out.

    One heatmap kind is visible at a time (ticking the other in the layer control hides the first):
    ``heat_layer`` "auto" shows the change heatmaps when a scene has a pre-event image, else the anomaly ones;
    "anomaly" or "change" picks one. The map carries a legend and a "zoom to scene" box
    (:mod:`core.mapping.controls`). ``base_layers``: offline basemap layers drawn beneath everything
    (:func:`core.mapping.basemaps.basemap_layers`). ``layers``: more folium layers
    (e.g. the buildings), added on top, in the layer control.
    ``mosaic`` (the area mosaic of a run, :mod:`core.engine.area`) is drawn as a layer of its own, "Area mosaic",
    shown instead of the per-scene heatmaps (which stay in the layer control).
    """
    if heat_layer not in HEAT_LAYERS:
        raise CoreError(_("unknown heatmap layer {layer}; choose one of {choices}").format(
            layer=repr(heat_layer), choices=", ".join(HEAT_LAYERS)))
    if basemap not in BASEMAPS:
        raise CoreError(_("unknown basemap {basemap!r}; choose one of {choices}").format(
            basemap=basemap, choices=", ".join(BASEMAPS)))
    js, css = offline_resources()
    # the map's own zoom range, fixed: Leaflet otherwise narrows it to its layers' (a basemap's minZoom would stop
    # the analyst from zooming out past it; folium's max_zoom only reaches its default tile layer)
    m = folium.Map(location=None, tiles=None, control_scale=True, zoom_start=2, height=height, width="100%",
                   minZoom=0, maxZoom=22)
    m.default_js, m.default_css = list(js), list(css)
    tile = BASEMAPS[basemap]
    if tile is not None:
        folium.TileLayer(tiles=tile["tiles"], attr=tile["attr"], name=escape(_(basemap)), max_zoom=22,
                         max_native_zoom=19).add_to(m)
    for base in base_layers:
        m.add_child(base)
    pictures = folium.FeatureGroup(name=escape(_("Imagery (the analysed images)")), show=True)
    heat = folium.FeatureGroup(name=escape(_("Heatmaps (post-event anomaly)")), show=mosaic is None)
    area = folium.FeatureGroup(name=escape(_("Area mosaic (one heatmap of the area)")), show=True)
    if mosaic is not None:
        _image_overlay(mosaic, overlay_opacity).add_to(area)
    change = folium.FeatureGroup(name=escape(_("Change heatmaps (pre → post)")), show=True)
    any_change = False
    marks = folium.FeatureGroup(name=escape(_("Findings")), show=True)
    prints = folium.FeatureGroup(name=escape(_("Footprints (dashed = approximate)")), show=True)
    gps = folium.FeatureGroup(name=escape(_("Positions (GPS, else scene centre)")), show=True)
    boxes: list[tuple[float, float, float, float]] = []
    named: list[tuple[str, list[list[float]]]] = []  # the zoom box's scenes: [[south, west], [north, east]]
    for sr in results:
        if sr.georef is None:
            point = _gps_only_marker(sr)  # a frame with GPS but no footprint (no altitude or camera data)
            if point is not None:
                point.add_to(gps)
                boxes.append((point.location[0], point.location[1], point.location[0], point.location[1]))
                d = 0.0005  # about 50 m around a point
                named.append((sr.scene_name, [[point.location[0] - d, point.location[1] - d],
                                              [point.location[0] + d, point.location[1] + d]]))
            continue
        ring = _latlon_ring(sr.georef, sr.width, sr.height)
        boxes.append((min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring),
                      max(p[1] for p in ring)))
        named.append((sr.scene_name, [[boxes[-1][0], boxes[-1][1]], [boxes[-1][2], boxes[-1][3]]]))
        approx = sr.georef.approximate
        poly = folium.Polygon(ring, color="#f6ad55" if approx else "#63b3ed", weight=2, fill=False,
                              dash_array="6 6" if approx else None)
        how = {"gps-footprint": _("approximate footprint from GPS + camera model"), "user": _("placed by analyst"),
               "fitted": _("fitted from labels")}.get(sr.georef.method, _("georeferenced raster"))
        poly.add_child(_Bind(tooltip=escape(f"{sr.scene_name} · {how}")))
        poly.add_to(prints)
        pic = (imagery or {}).get(str(sr.source_path)) if sr.source_path else None
        if pic is not None:
            _image_overlay(pic, 1.0).add_to(pictures)
        key = str(sr.heatmap_path)
        ov = overlays[key] if overlays is not None and key in overlays else (
            heatmap_overlay(sr.heatmap_path, scene_threshold(sr) if threshold is None else threshold)
            if sr.heatmap_path else None)
        if ov is not None:
            _image_overlay(ov, overlay_opacity).add_to(heat)
        if sr.change_path is not None:
            ckey = str(sr.change_path)
            cov = overlays[ckey] if overlays is not None and ckey in overlays else (
                heatmap_overlay(sr.change_path, change_threshold(sr)) if Path(sr.change_path).is_file() else None)
            if cov is not None:
                _image_overlay(cov, overlay_opacity).add_to(change)
                any_change = True
        _position_marker(sr, ring).add_to(gps)
    marks.add_child(_Findings([f for sr in results if sr.georef is not None for f in sr.findings]))
    # one heatmap kind at a time: stacked, the anomaly and change colours read as one confusing map
    show_change = any_change and heat_layer in ("auto", "change") and mosaic is None
    heat.show = not show_change and mosaic is None
    change.show = show_change
    for layer in (*([pictures] if imagery else []), *([area] if mosaic is not None else []), heat,
                  *([change] if any_change else []), prints, marks, gps, *layers):
        layer.add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    if any_change:
        m.add_child(OneOf([heat, change]))
    m.add_child(Legend([str(sr.meta.get("grade_scale", "copernicus-ems")) for sr in results
                        if isinstance(sr.meta, dict)], has_change=any_change))
    if named:
        m.add_child(ZoomToScene(named))
    m.get_root().header.add_child(folium.Element(HANGUL_FONT_CSS))  # the map's own frame: Hangul without system fonts
    if boxes:
        m.fit_bounds([[min(b[0] for b in boxes), min(b[1] for b in boxes)],
                      [max(b[2] for b in boxes), max(b[3] for b in boxes)]])
    _renumber(m.get_root())
    return m


def _renumber(root: Element) -> None:
    for el in _tree(root):
        el._bda_old_name = el.get_name()
    counter = 0
    for el in _tree(root):
        counter += 1
        el._id = f"{counter:06x}"
    for el in _tree(root):
        el._children = type(el._children)(
            (c.get_name() if k == getattr(c, "_bda_old_name", None) else k, c) for k, c in el._children.items())


def _tree(el: Element) -> list[Element]:
    out = [el]
    for sub in ("header", "html", "script"):
        part = getattr(el, sub, None)
        if isinstance(part, Element) and part is not el:
            out += _tree(part)
    for child in el._children.values():
        out += _tree(child)
    return out


def map_html(m: folium.Map) -> str:
    """The complete HTML page of ``m`` (what a browser would get in a standalone file)."""
    return m.get_root().render()


# -- the clicked finding's image chip ---------------------------------------------------------------------------
def finding_chip(sr: SceneResult, f: Finding, size: int = 320) -> np.ndarray | None:
    """RGB image chip around a finding (the window the PDF report uses) with its outline in the grade colour.

    None when the scene's source image is not available any more (moved or deleted).
    """
    from PIL import ImageDraw

    from core.imagery.reader import open_scene
    from core.report.chips import chip_window

    if sr.source_path is None or not Path(sr.source_path).is_file():
        return None
    scene = open_scene(sr.source_path)
    try:
        win = chip_window(f, scene.width, scene.height)
        rgb, _valid = scene.read(win)
    finally:
        scene.close()
    s = size / max(win.width, win.height)
    img = Image.fromarray(rgb).resize((max(1, round(win.width * s)), max(1, round(win.height * s))),
                                      Image.Resampling.LANCZOS if s < 1 else Image.Resampling.BICUBIC)
    ring = [((c - win.col_off) * s, (r - win.row_off) * s) for c, r in f.polygon_px]
    if len(ring) >= 3:
        draw = ImageDraw.Draw(img)
        draw.line([*ring, ring[0]], fill="#000000", width=4)
        draw.line([*ring, ring[0]], fill=grade_label_colour(f)[1], width=2)
    return np.asarray(img)
