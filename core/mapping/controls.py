"""Controls drawn inside the analysis map: a legend, a "zoom to scene" box and one-heatmap-at-a-time layers.

Plain Leaflet (no plugin, nothing fetched): each control is a :class:`branca.element.MacroElement` whose script
adds an ``L.Control`` to the map. Fixed texts are put in the page with ``textContent``; scene names are
HTML-escaped in Python (:func:`core.mapping.webmap.escape`), so a hostile name shows as text and never appears raw.
"""

from __future__ import annotations

from collections.abc import Sequence

from branca.element import MacroElement
from folium.template import Template

from core.detection.grading import get_scale
from core.detection.heatmap import LUT, VMAX_FACTOR
from core.i18n import _


def ramp_css() -> str:
    """CSS ``linear-gradient`` of the heatmap colour ramp (threshold -> ``VMAX_FACTOR`` × threshold)."""
    stops = [LUT[i] for i in (0, 51, 102, 179, 255)]
    return "linear-gradient(to right, " + ", ".join(f"rgb({r},{g},{b})" for r, g, b in stops) + ")"


class Legend(MacroElement):
    """What the map's colours mean: the heatmap ramp, finding grades, footprints and points (bottom left)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var spec = {{ this.spec|tojson }};
            var ctl = L.control({position: 'bottomleft'});
            ctl.onAdd = function () {
                var d = L.DomUtil.create('div', 'bda-legend');
                d.setAttribute('data-testid', 'bda-map-legend');
                // the map's font family (webmap.HANGUL_FONT_CSS: Hangul without system fonts), not its own
                d.style.cssText = 'background:rgba(255,255,255,.92);padding:6px 8px;border-radius:4px;' +
                                  'font-size:11px;line-height:1.35;color:#1a202c;max-width:240px';
                function row(parent, swatch, text) {
                    var r = L.DomUtil.create('div', '', parent);
                    var s = L.DomUtil.create('span', '', r);
                    s.style.cssText = 'display:inline-block;width:14px;height:10px;margin-right:5px;' +
                                      'vertical-align:middle;' + swatch;
                    r.appendChild(document.createTextNode(text));
                }
                var t = L.DomUtil.create('b', '', d); t.textContent = spec.heat_title;
                var bar = L.DomUtil.create('div', '', d);
                bar.style.cssText = 'height:9px;margin:2px 0;background:' + spec.ramp;
                var ends = L.DomUtil.create('div', '', d);
                ends.style.cssText = 'display:flex;justify-content:space-between';
                L.DomUtil.create('span', '', ends).textContent = spec.ramp_low;
                L.DomUtil.create('span', '', ends).textContent = spec.ramp_high;
                L.DomUtil.create('div', '', d).textContent = spec.below;
                var g = L.DomUtil.create('b', '', d); g.textContent = spec.grades_title;
                spec.grades.forEach(function (x) { row(d, 'background:' + x[1], x[0]); });
                spec.lines.forEach(function (x) { row(d, x[1], x[0]); });
                L.DomEvent.disableClickPropagation(d);
                return d;
            };
            ctl.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
    """)

    def __init__(self, grade_scales: Sequence[str], *, has_change: bool) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # branca is untyped
        self._name = "Legend"
        grades: list[tuple[str, str]] = []
        for key in dict.fromkeys(grade_scales or ["copernicus-ems"]):
            grades += [(_(g.label), g.color) for g in get_scale(key).grades() if (_(g.label), g.color) not in grades]
        self.spec = {
            "heat_title": _("Heatmap (change or anomaly: one at a time)") if has_change else _("Heatmap"),
            "ramp": ramp_css(), "ramp_low": _("threshold"),
            "ramp_high": _("{factor} × threshold").format(factor=f"{VMAX_FACTOR:g}"),
            "below": _("below the threshold: transparent"),
            "grades_title": _("Findings by grade"),
            "grades": grades,
            "lines": [(_("rejected by an analyst"), "border:1px dashed #718096"),
                      (_("scene footprint"), "border:2px solid #63b3ed"),
                      (_("approximate footprint"), "border:2px dashed #f6ad55"),
                      (_("GPS position without footprint"), "background:#dd6b20;border-radius:50%")],
        }


class ZoomToScene(MacroElement):
    """A box (top left, under the zoom buttons) listing the scenes: choosing one zooms the map to it, "All scenes"
    back to all of them. ``scenes``: (name, [[south, west], [north, east]]) in display order."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            var scenes = {{ this.scenes|tojson }};
            var all = {{ this.all_bounds|tojson }};
            var ctl = L.control({position: 'topleft'});
            ctl.onAdd = function () {
                var d = L.DomUtil.create('div', 'leaflet-bar bda-zoom-to');
                d.style.cssText = 'background:#fff;padding:2px';
                var sel = L.DomUtil.create('select', '', d);
                sel.setAttribute('data-testid', 'bda-zoom-to-scene');
                sel.setAttribute('aria-label', {{ this.label|tojson }});
                sel.title = {{ this.label|tojson }};
                sel.style.cssText = 'font-family:inherit;font-size:12px;max-width:190px;border:0';  // as the legend
                var head = L.DomUtil.create('option', '', sel);
                head.value = ''; head.textContent = {{ this.label|tojson }};
                var o = L.DomUtil.create('option', '', sel);
                o.value = 'all'; o.textContent = {{ this.all_label|tojson }};
                scenes.forEach(function (s, i) {
                    var op = L.DomUtil.create('option', '', sel);
                    op.value = String(i); op.innerHTML = s[0];  // HTML-escaped in Python: shows as text
                });
                L.DomEvent.on(sel, 'change', function () {
                    if (sel.value === 'all') { map.fitBounds(all); }
                    else if (sel.value !== '') { map.fitBounds(scenes[Number(sel.value)][1], {maxZoom: 21}); }
                    sel.value = '';
                });
                L.DomEvent.disableClickPropagation(d);
                L.DomEvent.disableScrollPropagation(d);
                return d;
            };
            ctl.addTo(map);
        })();
        {% endmacro %}
    """)

    def __init__(self, scenes: Sequence[tuple[str, list[list[float]]]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # branca is untyped
        self._name = "ZoomToScene"
        from core.mapping.webmap import escape

        self.scenes = [[escape(name), bounds] for name, bounds in scenes]
        south = min(b[0][0] for _n, b in scenes)
        west = min(b[0][1] for _n, b in scenes)
        north = max(b[1][0] for _n, b in scenes)
        east = max(b[1][1] for _n, b in scenes)
        self.all_bounds = [[south, west], [north, east]]
        self.label = _("Zoom to scene…")
        self.all_label = _("All scenes")


class OneOf(MacroElement):
    """Overlay layers of which at most one is shown: ticking one in the layer control hides the others (the two
    heatmap kinds stacked read as one confusing map)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            var layers = [{% for l in this.layers %}{{ l.get_name() }}{% if not loop.last %}, {% endif %}{% endfor %}];
            map.on('overlayadd', function (e) {
                if (layers.indexOf(e.layer) < 0) { return; }
                layers.forEach(function (l) { if (l !== e.layer && map.hasLayer(l)) { map.removeLayer(l); } });
            });
        })();
        {% endmacro %}
    """)

    def __init__(self, layers: Sequence[MacroElement]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # branca is untyped
        self._name = "OneOf"
        self.layers = list(layers)
