"""Per-building assessment: footprints of every format and CRS, statistics against hand-computed values, the
workspace record with its audit trail and case archives, the CLI and the report. The prior and the few-label
calibration: tests/test_buildings_calibration.py."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer

from core.buildings import (
    apply_calibration,
    assess_analysis,
    assess_buildings,
    load_buildings,
    read_footprints,
    read_labels_csv,
)
from core.buildings.footprints import Footprint, FootprintSet
from core.buildings.labels import grade_level, parse_label
from core.errors import InputError
from core.types import GeoRef, SceneResult

# a 100 x 100 px grid of 1 m pixels in UTM 15N (Joplin)
ORIGIN = (363000.0, 4104000.0)
CRS_UTM = "EPSG:32615"
TR = Affine(1.0, 0, ORIGIN[0], 0, -1.0, ORIGIN[1])


def _utm_square(col: float, row: float, size: float) -> shapely.Polygon:
    x0, y0 = ORIGIN[0] + col, ORIGIN[1] - row
    return shapely.box(x0, y0 - size, x0 + size, y0)


def _to(crs: str, geoms: list[shapely.Polygon]) -> list[shapely.Polygon]:
    tr = Transformer.from_crs(CRS_UTM, crs, always_xy=True)
    return [shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))) for g in geoms]


GEOMS = [_utm_square(10, 10, 10), _utm_square(50, 50, 20), _utm_square(500, 500, 10)]  # the third lies outside


def _write(path: Path, crs: str | None, geoms: list[shapely.Geometry], driver: str, ids: bool = True) -> Path:
    fields = {"building_id": np.array(["a", "b", "c"][:len(geoms)], dtype=object)} if ids else {}
    pyogrio.write_dataframe if False else None  # noqa: B018 - pyogrio.raw writes without geopandas
    from pyogrio.raw import write

    gtype = "Polygon" if all(g.geom_type == "Polygon" for g in geoms) else "Unknown"
    write(str(path), np.array(shapely.to_wkb(geoms), dtype=object), list(fields.values()) or None,
          fields=list(fields) or None, geometry_type=gtype, crs=crs, driver=driver)
    return path


@pytest.fixture()
def scene(tmp_path: Path) -> SceneResult:
    """A scene with a change map (value 3 in building a, 0.5 elsewhere; b split half 2 / half 0) and a post map."""
    change = np.full((100, 100), 0.5, np.float32)
    change[10:20, 10:20] = 3.0
    change[50:70, 50:60] = 2.0
    change[50:70, 60:70] = 0.0
    change[0:2, :] = np.nan
    post = np.full((100, 100), 0.2, np.float32)
    paths = {}
    for name, arr in (("change", change), ("post", post)):
        p = tmp_path / f"s_{name}.tif"
        with rasterio.open(p, "w", driver="GTiff", width=100, height=100, count=1, dtype="float32", crs=CRS_UTM,
                           transform=TR) as ds:
            ds.write(arr, 1)
        paths[name] = p
    return SceneResult(scene_name="s.tif", width=100, height=100, image_score=0.0, verdict="normal",
                       georef=GeoRef(CRS_UTM, TR), bounds_wgs84=None, heatmap_path=paths["post"],
                       overlay_path=None, change_path=paths["change"],
                       meta={"threshold": 1.0, "change": {"threshold": 1.0}})


@pytest.mark.parametrize("driver,suffix,crs", [("GeoJSON", ".geojson", "EPSG:4326"), ("GPKG", ".gpkg", CRS_UTM),
                                               ("ESRI Shapefile", ".shp", "EPSG:3857"),
                                               ("FlatGeobuf", ".fgb", "EPSG:26915")])
def test_every_format_and_crs_gives_the_same_buildings(tmp_path, driver, suffix, crs, scene):
    path = _write(tmp_path / f"fp{suffix}", crs, _to(crs, GEOMS), driver)
    fs = read_footprints([path])
    assert not fs.errors
    fs.footprints.sort(key=lambda f: f.building_id)  # FlatGeobuf's spatial index orders features its own way
    assert [f.building_id for f in fs.footprints] == ["a", "b", "c"]
    ref = _to("EPSG:4326", GEOMS)
    for f, g in zip(fs.footprints, ref, strict=True):
        assert f.crs == "EPSG:4326"
        assert shapely.equals_exact(shapely.normalize(f.geometry), shapely.normalize(g), tolerance=1e-7)
    bs = assess_buildings([scene], fs)
    assert [b.grade for b in bs.buildings] == ["destroyed", "damaged", "not-analysed"]


def test_zipped_shapefile_and_its_file_set(tmp_path, scene):
    shp = _write(tmp_path / "fp.shp", "EPSG:3857", _to("EPSG:3857", GEOMS), "ESRI Shapefile")
    parts = sorted(tmp_path.glob("fp.*"))
    z = tmp_path / "fp.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in parts:
            zf.write(p, f"inner/{p.name}")
    a = read_footprints([z])
    b = read_footprints(parts)  # the file set as uploaded: companions are skipped, the .shp is read
    assert not a.errors and not b.errors
    assert [f.building_id for f in a.footprints] == [f.building_id for f in b.footprints] == ["a", "b", "c"]
    shp.with_suffix(".shx").unlink()
    bad = read_footprints([shp])
    assert "lacks its .shx" in bad.errors[0] and "fp.shp" in bad.errors[0]


def test_bad_files_get_a_clear_message_and_the_rest_still_reads(tmp_path):
    good = _write(tmp_path / "good.geojson", "EPSG:4326", _to("EPSG:4326", GEOMS), "GeoJSON")
    pts = _write(tmp_path / "points.gpkg", CRS_UTM, [shapely.Point(ORIGIN)] * 3, "GPKG")
    noprj = _write(tmp_path / "noprj.shp", None, GEOMS, "ESRI Shapefile")
    corrupt = tmp_path / "corrupt.gpkg"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x13" * 500)
    empty = _write(tmp_path / "empty.geojson", "EPSG:4326", [shapely.Polygon()] * 3, "GeoJSON")
    fs = read_footprints([pts, good, noprj, corrupt, empty, tmp_path / "missing.geojson"])
    assert len(fs.footprints) == 3
    msgs = "\n".join(fs.errors)
    assert len(fs.errors) == 5
    assert "points.gpkg" in msgs and "not polygons" in msgs
    assert "noprj.shp" in msgs and "no coordinate reference system" in msgs
    assert "corrupt.gpkg" in msgs and "cannot be read" in msgs
    assert "empty.geojson" in msgs and "no geometry" in msgs
    assert "missing.geojson" in msgs and "not found" in msgs


def test_lonlat_file_without_crs_is_read_as_lonlat(tmp_path):
    p = _write(tmp_path / "ll.shp", None, _to("EPSG:4326", GEOMS), "ESRI Shapefile")
    fs = read_footprints([p])
    assert not fs.errors and len(fs.footprints) == 3
    assert "longitude/latitude" in fs.notes[0]


def test_ids_fall_back_to_fid_then_row_number(tmp_path):
    p = _write(tmp_path / "noid.geojson", "EPSG:4326", _to("EPSG:4326", GEOMS), "GeoJSON", ids=False)
    assert [f.building_id for f in read_footprints([p]).footprints] == ["1", "2", "3"]
    g = _write(tmp_path / "noid.gpkg", "EPSG:4326", _to("EPSG:4326", GEOMS), "GPKG", ids=False)
    assert [f.building_id for f in read_footprints([g]).footprints] == ["1", "2", "3"]  # GPKG fids start at 1
    both = read_footprints([p, g])
    assert len({f.building_id for f in both.footprints}) == 6  # the second file's ids prefixed by its stem


def test_xbd_label_lnglat_and_pixel_polygons(tmp_path, scene):
    ll = _to("EPSG:4326", GEOMS[:2])
    label = {"metadata": {"img_name": "s.png"}, "features": {
        "lng_lat": [{"properties": {"uid": f"u{k}", "feature_type": "building", "subtype": "destroyed"},
                     "wkt": g.wkt} for k, g in enumerate(ll)],
        "xy": []}}
    p = tmp_path / "s.json"
    p.write_text(json.dumps(label))
    fs = read_footprints([p])
    assert [f.building_id for f in fs.footprints] == ["u0", "u1"]
    label["features"] = {"xy": [{"properties": {"uid": "px1"}, "wkt": "POLYGON ((10 10, 20 10, 20 20, 10 20, 10 10))"}]}
    p.write_text(json.dumps(label))
    fs = read_footprints([p])
    assert fs.footprints[0].is_pixel and fs.footprints[0].image == "s.png"
    bs = assess_buildings([scene], fs)
    b = bs.buildings[0]
    assert b.grade == "destroyed" and b.change_score == pytest.approx(3.0)
    assert b.lat is not None and b.area_m2 == pytest.approx(100.0, rel=0.02)


def test_statistics_against_hand_computed_values(scene):
    fs = FootprintSet(footprints=[Footprint(k, g, "t") for k, g in zip("abc", _to("EPSG:4326", GEOMS), strict=True)])
    bs = assess_buildings([scene], fs)
    a, b, c = bs.buildings
    assert a.stats["change_mean"] == pytest.approx(3.0) and a.stats["change_share"] == pytest.approx(1.0)
    assert a.stats["change_ring"] == pytest.approx(0.5, abs=1e-6)  # the ring sees the 0.5 background
    # b: 200 px at 2.0 and 200 at 0.0 -> mean 1, q90 2, share at threshold 1: 0.5
    assert b.stats["change_mean"] == pytest.approx(1.0)
    assert b.stats["change_q90"] == pytest.approx(2.0)
    assert b.stats["change_share"] == pytest.approx(0.5)
    assert b.stats["post_mean"] == pytest.approx(0.2)
    assert a.area_m2 == pytest.approx(100.0, rel=0.01) and b.area_m2 == pytest.approx(400.0, rel=0.01)
    assert a.mgrs and a.mgrs.startswith("15S")
    # graded like findings: q90 3.0 >= 2.5 t destroyed; 2.0 in [1.5 t, 2.5 t) damaged
    assert (a.grade, b.grade, c.grade) == ("destroyed", "damaged", "not-analysed")
    assert c.scene_name is None and c.score is None
    assert bs.counts()["not-analysed"] == 1


def test_labels_csv_and_label_words(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("building_id,damaged\n1,1\n2,no\n3,yes\n")
    assert read_labels_csv(p) == {"1": "damaged", "2": "not-damaged", "3": "damaged"}
    p.write_text("building_id,grade\n1,Destroyed\n2,minor-damage\n3,no visible damage\n")
    assert read_labels_csv(p) == {"1": "destroyed", "2": "possibly-damaged", "3": "no-visible-damage"}
    p.write_text("id,x\n1,1\n")
    with pytest.raises(InputError, match="building_id,damaged"):
        read_labels_csv(p)
    with pytest.raises(InputError, match="neither"):
        parse_label("maybe")
    assert grade_level("major-damage") == 2 and grade_level("destroyed") == 3


def test_workspace_record_review_trail_and_archive(ws, scene, tmp_path):
    cid = ws.create_case("Joplin")
    aid = ws.create_analysis(cid, [{"path": "s.tif", "name": "s.tif"}], model={"name": "m"}, threshold=None,
                             options={})
    gj = _write(tmp_path / "fp.geojson", "EPSG:4326", _to("EPSG:4326", GEOMS), "GeoJSON")
    out = tmp_path / "out"
    bs = assess_analysis([scene], [str(gj)], out, ws=ws, analysis_id=aid)
    assert (out / "buildings.geojson").is_file() and (out / "buildings.csv").is_file()
    feats = json.loads((out / "buildings.geojson").read_text())["features"]
    assert len(feats) == 3 and feats[0]["properties"]["building_id"] == "a"
    for key in ("score", "grade", "confidence", "change_score", "post_score", "review_status", "analyst",
                "area_m2", "mgrs", "lat", "lon"):
        assert key in feats[0]["properties"]
    rows = ws.buildings(aid)
    assert [r["grade"] for r in rows] == [b.grade for b in bs.buildings]
    ref = rows[1]["ref"]
    v0 = ws.building_version(ref)
    ws.review_building(ref, analyst="kim", status="confirmed", grade="destroyed", notes="roof gone",
                       label="damaged")
    with pytest.raises(Exception, match="reviewed by kim"):
        ws.review_building(ref, analyst="lee", status="rejected", expected_version=v0)
    hist = ws.building_history(ref)
    assert hist[0]["grade_before"] == "damaged" and hist[0]["grade_after"] == "destroyed"
    assert hist[0]["label_after"] == "damaged"
    assert ws.buildings(aid)[1]["grade"] == "destroyed"
    # a re-run keeps the review and the label
    assess_analysis([scene], [str(gj)], out, ws=ws, analysis_id=aid)
    again = ws.buildings(aid)[1]
    assert (again["grade"], again["review_status"], again["label"]) == ("destroyed", "confirmed", "damaged")
    # the case archive carries buildings, trail and calibration
    ws.set_building_labels(aid, {"a": "damaged", "b": "damaged", "c": "not-damaged"}, analyst="kim")
    zp = ws.export_case(cid, tmp_path / "case.zip")
    new_cid = ws.import_case(zp)
    new_aid = ws.list_analyses(new_cid)[0]["id"]
    moved = ws.buildings(new_aid)
    assert [m["building_id"] for m in moved] == ["a", "b", "c"]
    assert moved[1]["grade"] == "destroyed" and moved[1]["label"] == "damaged"
    assert len(ws.building_history(moved[1]["ref"])) == len(ws.building_history(ref))
    assert ws.building_set(new_aid) is not None


def test_cli_calibrate_an_output_folder(tmp_path, scene, capsys):
    from core.cli.main import main

    gj = _write(tmp_path / "fp.geojson", "EPSG:4326", _to("EPSG:4326", GEOMS), "GeoJSON")
    out = tmp_path / "out"
    assess_analysis([scene], [str(gj)], out)
    labels = tmp_path / "labels.csv"
    labels.write_text("building_id,damaged\na,1\nb,0\nc,0\n")
    assert main(["buildings", "calibrate", "--analysis", str(out), "--labels", str(labels)]) == 2
    assert "at least 4" in capsys.readouterr().err  # c lies outside the imagery: 2 usable labels
    assert main(["buildings", "show", "--analysis", str(out)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "buildings: 3" in shown
    # no label yet: the grades are relative, and the command that suggests buildings to label names this folder
    assert "Graded without labels, against each other: " in shown
    assert f"python -m core buildings suggest --analysis {out}" in shown
    assert main(["buildings", "calibrate", "--analysis", str(tmp_path / "nope"), "--labels", str(labels)]) == 2
    bs = load_buildings(folder=out)
    assert len(bs.buildings) == 3


def test_real_joplin_footprints(shared_data):
    from tests.support.data import need

    gj = need(shared_data / "geotiff" / "joplin_tornado_xview2deploy" / "vector" / "joplin.geojson")
    gp = need(shared_data / "geotiff" / "joplin_tornado_xview2deploy" / "vector" / "bldg_polys.gpkg")
    fs = read_footprints([gj, gp])
    assert not fs.errors
    assert len(fs.footprints) == 2823 + 77
    lons = [f.geometry.centroid.x for f in fs.footprints]
    assert -94.51 < min(lons) and max(lons) < -94.47


def test_report_counts_buildings_per_grade(tmp_path, scene):
    from pypdf import PdfReader

    from core.report import ReportContext, write_pdf

    fs = FootprintSet(footprints=[Footprint(k, g, "t") for k, g in zip("abc", _to("EPSG:4326", GEOMS), strict=True)])
    bs = assess_buildings([scene], fs)
    bs.buildings[1].review_status = "rejected"  # not counted
    ctx = ReportContext(title="t", handling="TLP:CLEAR", scenes=[scene], buildings=bs.buildings)
    pdf = write_pdf(ctx, tmp_path / "r.pdf")
    text = " ".join((p.extract_text() or "") for p in PdfReader(pdf).pages)
    text = " ".join(text.split())
    assert "3 building footprint(s) were given; 1 lie in the analysed imagery" in text
    assert "1 rejected by an analyst are not counted" in text
    assert "Graded without labels" not in text  # graded from the findings' bands (absolute), not by the prior
    assert "Destroyed 1 100 m²" in text or "Destroyed 1 100" in text


def test_report_buildings_section_in_korean(tmp_path, scene):
    """The Buildings section of a Korean PDF: its sentence, table heads and grade labels are Korean."""
    from pypdf import PdfReader

    from core.report import ReportContext, write_pdf

    fs = FootprintSet(footprints=[Footprint(k, g, "t") for k, g in zip("abc", _to("EPSG:4326", GEOMS), strict=True)])
    bs = assess_buildings([scene], fs)
    apply_calibration(bs.buildings, None)  # graded by the prior, as the analysis does before any label
    bs.buildings[1].review_status = "rejected"
    ctx = ReportContext(title="t", handling="TLP:CLEAR", scenes=[scene], buildings=bs.buildings)
    pdf = write_pdf(ctx, tmp_path / "r.pdf", lang="ko")
    text = " ".join(" ".join((p.extract_text() or "") for p in PdfReader(pdf).pages).split())
    assert "건물 외곽선 3개가 주어졌습니다" in text and "분석관이 기각한 1개는 집계하지 않습니다" in text, text[:2000]
    assert "건물 등급" in text and "파괴" in text
    assert "레이블 없이 건물끼리 비교해" in text, text[:2000]
    for english in ("building footprint(s) were given", "Building grade", "Footprint area", "Destroyed"):
        assert english not in text


def test_report_package_carries_the_buildings(tmp_path, scene):
    from core.report import ReportContext, write_package

    fs = FootprintSet(footprints=[Footprint(k, g, "t") for k, g in zip("abc", _to("EPSG:4326", GEOMS), strict=True)])
    bs = assess_buildings([scene], fs)
    ctx = ReportContext(title="t", handling="TLP:CLEAR", scenes=[scene], buildings=bs.buildings)
    z = write_package(ctx, tmp_path / "p.zip", formats=["csv", "geojson"])
    with zipfile.ZipFile(z) as zf:
        assert {"buildings.geojson", "buildings.csv"} <= set(zf.namelist())
        rows = zf.read("buildings.csv").decode().splitlines()
        assert len(rows) == 4 and rows[0].startswith("building_id,grade")
