"""Findings CSV and GeoJSON: stable columns, formula neutralisation, RFC 7946 geometry on real Joplin findings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from shapely.geometry import shape

from core.errors import ReportError
from core.report import FINDING_COLUMNS, ReportContext, columns_doc, feature_collection, write_csv, write_geojson
from core.report.columns import COLUMN_NAMES
from core.report.tables import clean_geometry, neutralise_cell
from core.types import Finding


def _finding(fid: str, **kw: object) -> Finding:
    base = {"id": fid, "scene_name": "s.tif", "polygon_px": [(0, 0), (10, 0), (10, 10), (0, 10)],
            "bbox_px": (0, 0, 10, 10), "area_px": 100.0, "score_mean": 2.5, "score_max": 3.0, "threshold": 2.0,
            "confidence": 0.7, "grade": "damaged"}
    return Finding(**(base | kw))


def _read(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    with open(path, encoding=encoding, newline="") as fh:
        return list(csv.DictReader(fh))


def _ring_area(ring: list[list[float]]) -> float:
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring[:-1], ring[1:], strict=True))


def test_columns_are_stable_and_documented() -> None:
    names = [c.name for c in FINDING_COLUMNS]
    assert len(names) == len(set(names))
    for ems in ("obj_id", "damage_gra", "det_method", "src_name", "src_date", "sensor_gsd", "or_src_id", "notation"):
        assert ems in names
    for ours in ("finding_id", "mgrs", "lat", "lon", "area_m2", "score_mean", "score_max", "threshold", "confidence",
                 "grade_scale", "review_status", "analyst", "notes", "pre_src_name", "pre_src_date", "model_name",
                 "model_version", "model_sha256", "processed_at"):
        assert ours in names
    doc = columns_doc()
    assert all(c.name in doc and c.description in doc for c in FINDING_COLUMNS)


def test_formula_cells_are_neutralised_but_numbers_stay_numbers(tmp_path: Path) -> None:
    fs = [_finding("-2+3", notes="=cmd|' /C calc'!A0", analyst="+1", centroid_lon=-12.5, centroid_lat=-33.25,
                   area_m2=12.0),
          _finding("ok-1", notes="@SUM(A1:A9)", analyst="\tTAB", review_status="confirmed"),
          _finding("ok-2", notes="-12.5", analyst="a=b is fine", grade="destroyed")]
    out = write_csv(fs, tmp_path / "f.csv")
    rows = {r["obj_id"]: r for r in _read(out)}
    assert list(_read(out)[0].keys()) == list(COLUMN_NAMES)
    by_id = {r["finding_id"]: r for r in rows.values()}
    assert by_id["'-2+3"]["notes"] == "'=cmd|' /C calc'!A0"
    assert by_id["'-2+3"]["analyst"] == "'+1"
    assert by_id["'-2+3"]["lon"] == "-12.5" and by_id["'-2+3"]["lat"] == "-33.25"
    assert float(by_id["'-2+3"]["lon"]) == -12.5
    assert by_id["ok-1"]["notes"] == "'@SUM(A1:A9)" and by_id["ok-1"]["analyst"] == "'\tTAB"
    assert by_id["ok-2"]["notes"] == "'-12.5"  # text column: neutralised even when it looks numeric
    assert by_id["ok-2"]["analyst"] == "a=b is fine"
    assert by_id["ok-2"]["score_max"] == "3.0" and by_id["ok-2"]["lat"] == ""
    assert neutralise_cell("\rx") == "'\rx" and neutralise_cell("plain") == "plain"


def test_csv_bom_and_unicode(tmp_path: Path) -> None:
    fs = [_finding("k", notes="건물 붕괴 확인 / Разрушено / Κατεστραμμένο")]
    raw = write_csv(fs, tmp_path / "bom.csv", bom=True).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert _read(tmp_path / "bom.csv", "utf-8-sig")[0]["notes"] == "건물 붕괴 확인 / Разрушено / Κατεστραμμένο"
    assert not write_csv(fs, tmp_path / "nobom.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_csv_from_real_context(report_ctx: ReportContext, tmp_path: Path) -> None:
    rows = _read(write_csv(report_ctx, tmp_path / "f.csv"))
    everything = report_ctx.findings()
    assert len(rows) == len(everything)
    assert [int(r["obj_id"]) for r in rows] == list(range(1, len(rows) + 1))
    rejected = [r for r in rows if r["review_status"] == "rejected"]
    assert len(rejected) == 1 and rows[-1] is rejected[0]  # rejected rows last
    a = report_ctx.scenes[0]
    row = next(r for r in rows if r["finding_id"] == a.findings[0].id)
    assert row["mgrs"] == a.findings[0].mgrs and row["notes"] == "건물 붕괴 확인"
    assert abs(float(row["lat"]) - a.findings[0].centroid_lat) < 1e-6
    assert row["pre_src_name"] == "0_pre.tif" and row["model_sha256"] == report_ctx.model_info["sha256"]
    assert row["det_method"].startswith("automatic extraction") and "confirmed" in row["notation"]
    assert row["damage_gra"] in ("Destroyed", "Damaged", "Possibly damaged")
    noref = [r for r in rows if r["scene_name"] == "fire_image0196.jpg"]
    assert noref and all(r["lat"] == "" and r["mgrs"] == "" for r in noref)
    kept = _read(write_csv(report_ctx, tmp_path / "k.csv", include_rejected=False))
    assert len(kept) == len(everything) - 1


def test_geojson_is_rfc7946_and_inside_the_imagery(report_ctx: ReportContext, tmp_path: Path) -> None:
    fc = json.loads(write_geojson(report_ctx, tmp_path / "f.geojson").read_text(encoding="utf-8"))
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    georef = [f for f in report_ctx.findings() if f.geometry is not None]
    assert len(fc["features"]) == len(georef) > 0
    bounds = {s.scene_name: s.bounds_wgs84 for s in report_ctx.scenes}
    for feat in fc["features"]:
        assert feat["type"] == "Feature" and list(feat["properties"]) == list(COLUMN_NAMES)
        geom = feat["geometry"]
        assert geom["type"] == "Polygon"
        w, s, e, n = bounds[feat["properties"]["scene_name"]]
        for k, ring in enumerate(geom["coordinates"]):
            assert len(ring) >= 4 and ring[0] == ring[-1]
            assert (_ring_area(ring) > 0) == (k == 0)  # exterior CCW, holes CW
            for lon, lat in ring:
                assert w - 1e-6 <= lon <= e + 1e-6 and s - 1e-6 <= lat <= n + 1e-6
        assert shape(geom).is_valid
        p = feat["properties"]
        assert isinstance(p["obj_id"], int) and isinstance(p["lat"], float) and isinstance(p["location_approx"], bool)
        assert fc["bbox"][0] <= p["lon"] <= fc["bbox"][2]
    _, left_out = feature_collection(report_ctx)
    assert {f.scene_name for f in left_out} == {"fire_image0196.jpg"}


def test_clockwise_and_unclosed_rings_are_repaired() -> None:
    cw_open = {"type": "Polygon", "coordinates": [[[10.0, 50.0], [10.0, 50.001], [10.001, 50.001], [10.001, 50.0]]]}
    g = clean_geometry(cw_open)
    ring = g["coordinates"][0]
    assert ring[0] == ring[-1] and _ring_area(ring) > 0
    assert clean_geometry({"type": "Polygon", "coordinates": [[[200.0, 0.0], [201, 0], [201, 1], [200, 0]]]}) is None
    assert clean_geometry({"type": "Point", "coordinates": [1, 2]}) is None
    assert clean_geometry({"type": "Polygon", "coordinates": [[[float("nan"), 0], [1, 0], [1, 1], [0, 0]]]}) is None


def test_unusable_input_raises_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        write_csv([_finding("a")], tmp_path / "missing" / "f.csv")
    with pytest.raises(ReportError, match="Finding"):
        write_csv([{"id": "a"}], tmp_path / "f.csv")  # type: ignore[list-item]
    with pytest.raises(ReportError, match="folder"):
        write_geojson([_finding("a")], tmp_path)
    with pytest.raises(ReportError, match="no analysed scenes"):
        write_csv(ReportContext(title="t", handling="TLP:CLEAR", scenes=[]), tmp_path / "f.csv")


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = write_csv([_finding("a")], tmp_path / "f.csv")
    before = target.read_bytes()
    with pytest.raises(ReportError):
        write_csv([_finding("b"), "not a finding"], target)  # type: ignore[list-item]
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]


def test_report_inputs_have_findings_on_the_imagery(report_ctx: ReportContext) -> None:
    """The fixture is what the tests assume: findings on each georeferenced tile, inside its bounds."""
    a, b, c = report_ctx.scenes
    assert len(a.findings) >= 5 and len(b.findings) >= 2 and c.georef is None
    for sr in (a, b):
        w, s, e, n = sr.bounds_wgs84
        for f in sr.findings:
            assert w <= f.centroid_lon <= e and s <= f.centroid_lat <= n and f.mgrs
