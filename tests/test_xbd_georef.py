"""xBD Harvey tiles: georef fitted from the labels, building polygons and damage subtypes, odd label cases."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import shapely.wkt

from core.errors import InputError
from core.geo import georef as geo
from core.i18n import say
from core.imagery.reader import open_scene
from tests.support.data import need

HARVEY = Path("xbd/harvey")


def _images(shared_data: Path) -> list[Path]:
    imgs = sorted(need(shared_data / HARVEY / "images").glob("*.png"))
    assert len(imgs) == 24
    return imgs


def test_harvey_tiles_georeference_to_their_label_polygons(shared_data: Path) -> None:
    fitted = 0
    for img in _images(shared_data):
        label = json.loads((img.parent.parent / "labels" / f"{img.stem}.json").read_text())
        if not label["features"]["xy"]:
            continue
        scene = open_scene(img)
        assert scene.kind == "xbd" and (scene.width, scene.height) == (1024, 1024)
        g = scene.georef
        assert g is not None and g.method == "fitted" and g.approximate and g.crs == "EPSG:32615"
        assert scene.meta["xbd"]["georef_residual_m"] < 5.0
        assert "residual" in g.note
        # every label lon/lat vertex maps back onto its pixel vertex (independent WKT parse)
        ll = {f["properties"]["uid"]: f["wkt"] for f in label["features"]["lng_lat"]}
        for f in label["features"]["xy"]:
            px = np.array(shapely.wkt.loads(f["wkt"]).exterior.coords)
            lonlat = np.array(shapely.wkt.loads(ll[f["properties"]["uid"]]).exterior.coords)
            c, r = geo.lonlat_to_pixel(g, lonlat[:, 0], lonlat[:, 1])
            assert np.max(np.hypot(c - px[:, 0], r - px[:, 1])) < 2.0
        w, s, e, n = geo.bounds_wgs84(g, scene.width, scene.height)
        assert -96.0 < w < e < -95.0 and 29.0 < s < n < 30.5  # Houston area
        assert 0.2 < scene.gsd_m < 3.5
        fitted += 1
    assert fitted == 22  # 12 pairs, minus tile 00000217 (pre and post) which has no buildings


def test_harvey_label_meta_and_damage_subtypes(shared_data: Path) -> None:
    counts: Counter[str] = Counter()
    for img in _images(shared_data):
        scene = open_scene(img)
        xbd = scene.meta["xbd"]
        phase = "post" if "_post_" in img.name else "pre"
        assert xbd["phase"] == phase and xbd["disaster"] == "hurricane-harvey"
        label = json.loads((img.parent.parent / "labels" / f"{img.stem}.json").read_text())
        assert len(xbd["buildings"]) == len(label["features"]["xy"])
        assert scene.capture_time is not None and scene.capture_time.startswith("2017-")
        for b in xbd["buildings"]:
            assert b["uid"] and len(b["polygon_px"]) >= 4 and len(b["polygon_lonlat"]) == len(b["polygon_px"])
            if phase == "post":
                counts[b["subtype"]] += 1
        json.dumps(scene.meta)  # JSON-safe
    # the counts PROVENANCE.md states for the post-event labels
    assert counts == {"no-damage": 395, "major-damage": 20, "destroyed": 12, "minor-damage": 7, "un-classified": 5}


def test_tile_without_buildings_is_an_unreferenced_xbd_frame(shared_data: Path) -> None:
    img = need(shared_data / HARVEY / "images/hurricane-harvey_00000217_post_disaster.png")
    scene = open_scene(img)
    assert scene.kind == "xbd" and scene.georef is None and scene.gsd_m is None
    assert scene.meta["xbd"]["buildings"] == []
    assert any("no building polygons" in w for w in map(say, scene.meta["warnings"]))
    assert scene.capture_time == "2017-08-31T17:38:50.685000+00:00"
    rgb, valid = scene.read()
    assert rgb.shape == (1024, 1024, 3) and valid.all()


def test_explicit_labels_argument_and_bad_labels(shared_data: Path, tmp_path: Path) -> None:
    img = need(shared_data / HARVEY / "images/hurricane-harvey_00000218_post_disaster.png")
    link = tmp_path / "upload_1234.png"  # an upload under another name: a link, the data is not copied
    link.symlink_to(img)
    plain = open_scene(link)
    assert plain.kind == "frame" and plain.georef is None and "xbd" not in plain.meta
    labelled = open_scene(link, labels=img.parent.parent / "labels" / f"{img.stem}.json")
    assert labelled.kind == "xbd" and labelled.georef is not None and labelled.meta["xbd"]["phase"] == "post"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        open_scene(link, labels=bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(InputError, match="not an xBD label"):
        open_scene(link, labels=other)
    with pytest.raises(InputError, match="not found"):
        open_scene(link, labels=tmp_path / "missing.json")


def test_xbd_name_without_labels_warns(shared_data: Path, tmp_path: Path) -> None:
    img = need(shared_data / HARVEY / "images/hurricane-harvey_00000218_pre_disaster.png")
    link = tmp_path / "images" / img.name
    link.parent.mkdir()
    link.symlink_to(img)
    scene = open_scene(link)
    assert scene.kind == "frame" and scene.georef is None
    assert any("no label JSON" in w for w in map(say, scene.meta["warnings"]))
