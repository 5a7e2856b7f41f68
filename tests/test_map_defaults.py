"""Map defaults (issue 16 part 4): one heatmap kind visible at a time (change when a scene has a pre image), a
legend, and a "zoom to scene" box; all in plain Leaflet, offline, names escaped."""

from __future__ import annotations

import dataclasses
import re

import folium

from core.detection.heatmap import LUT
from core.mapping import webmap
from core.mapping.controls import Legend, OneOf, ZoomToScene, ramp_css
from tests.test_webmap import UTM, _result

HOSTILE = "<img src=x onerror=alert(1)> ${alert(2)}"


def _groups(m: folium.Map) -> dict[str, folium.FeatureGroup]:
    return {c.layer_name: c for c in m._children.values() if isinstance(c, folium.FeatureGroup)}


def _controls(m: folium.Map, kind: type) -> list:
    return [c for c in m._children.values() if isinstance(c, kind)]


def test_single_images_show_the_anomaly_heatmap_with_legend_and_zoom_box(tmp_path) -> None:
    a = _result(tmp_path, name="north.tif")
    b = _result(tmp_path, name=HOSTILE)
    m = webmap.build_map([a, b], overlays={str(a.heatmap_path): None, str(b.heatmap_path): None})
    groups = _groups(m)
    assert groups["Heatmaps (post-event anomaly)"].show and "Change heatmaps (pre → post)" not in groups
    assert not _controls(m, OneOf)  # nothing to switch between
    (legend,) = _controls(m, Legend)
    assert legend.spec["ramp_low"] == "threshold" and legend.spec["ramp_high"] == "2.5 × threshold"
    assert ("Destroyed", "#c53030") in legend.spec["grades"]  # grade colours of the scale in use (EMS)
    assert f"rgb({LUT[0][0]},{LUT[0][1]},{LUT[0][2]})" in ramp_css()
    (zoom,) = _controls(m, ZoomToScene)
    names = [n for n, _ in zoom.scenes]
    assert names[0] == "north.tif" and names[1] == webmap.escape(HOSTILE)
    (s, w), (n, e) = zoom.scenes[0][1]
    assert s < n and w < e and 37.0 < s < 37.2 and -94.6 < w < -94.4
    html = webmap.map_html(m)
    assert "bda-map-legend" in html and "bda-zoom-to-scene" in html and "Zoom to scene" in html
    assert "<img src=x" not in html and "${alert" not in html
    assert not re.search(r"https?://(?!www\.w3\.org)", html.split("</head>")[-1])  # nothing fetched


def test_a_pair_shows_the_change_heatmap_and_the_two_kinds_exclude_each_other(tmp_path) -> None:
    single = _result(tmp_path, name="alone.tif")
    pair = dataclasses.replace(_result(tmp_path, name="post.tif"), change_path=tmp_path / "post_change.tif",
                               pre_scene_name="pre.tif")
    dummy = webmap.Overlay("data:image/png;base64,AAAA", ((37.08, -94.51), (37.09, -94.50)), (1, 1))
    ovs = {str(single.heatmap_path): None, str(pair.heatmap_path): None, str(pair.change_path): dummy}
    m = webmap.build_map([single, pair], overlays=ovs)
    groups = _groups(m)
    assert groups["Change heatmaps (pre → post)"].show and not groups["Heatmaps (post-event anomaly)"].show
    (one,) = _controls(m, OneOf)
    assert one.layers == [groups["Heatmaps (post-event anomaly)"], groups["Change heatmaps (pre → post)"]]
    html = webmap.map_html(m)
    heat, change = (groups[k].get_name() for k in ("Heatmaps (post-event anomaly)", "Change heatmaps (pre → post)"))
    assert f"var layers = [{heat}, {change}];" in html and "map.on('overlayadd'" in html
    m2 = webmap.build_map([single, pair], overlays=ovs, heat_layer="anomaly")
    assert _groups(m2)["Heatmaps (post-event anomaly)"].show and not _groups(m2)["Change heatmaps (pre → post)"].show
    assert html == webmap.map_html(webmap.build_map([single, pair], overlays=ovs))  # deterministic


def test_unknown_heat_layer_is_a_clear_error(tmp_path) -> None:
    import pytest

    from core.errors import CoreError

    with pytest.raises(CoreError, match="heatmap layer"):
        webmap.build_map([_result(tmp_path, georef=UTM)], heat_layer="both")
