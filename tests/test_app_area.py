"""The Map page shows a run's area mosaic; the Analyze page offers the Ray cluster only when one is configured
(``BDA_RAY_ADDRESS``) and records the choice. Generated GeoTIFF tiles, the bundled model, AppTest sessions."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.cli.main import main
from core.engine import ENV_RAY_ADDRESS
from core.store import Workspace
from tests.support.area import write_area
from tests.support.data import REPO
from ui import state as S

APP = REPO / "app.py"
pytestmark = pytest.mark.slow  # analyses and app sessions


@pytest.fixture(scope="module")
def area_ws(tmp_path_factory):
    """A workspace whose case 'Area' holds one CLI analysis of two adjacent generated tiles (area outputs)."""
    tmp = tmp_path_factory.mktemp("area")
    tiles = write_area(tmp / "tiles", 1, 2, 256, seed=2)
    rc = main(["analyze", *map(str, tiles), "--workspace", str(tmp / "ws"), "--case", "Area",
               "--out", str(tmp / "out"), "--quiet"])
    assert rc == 0
    with Workspace(tmp / "ws") as ws:
        case = next(c["id"] for c in ws.list_cases() if c["name"] == "Area")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BDA_WORKSPACE", str(tmp / "ws"))
        mp.delenv(ENV_RAY_ADDRESS, raising=False)
        yield {"root": tmp / "ws", "case": case, "tiles": tiles, "out": tmp / "out"}


def _page(case_id: int, page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state[S.CASE_ID] = case_id
    at.run()
    assert not at.exception, at.exception
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_map_page_shows_the_area_mosaic(area_ws):
    assert (area_ws["out"] / "area" / "area_heatmap.tif").is_file()
    at = _page(area_ws["case"], "pages/map.py")
    comps = [c for c in at.get("component_instance") if c.proto.component_name.endswith("st_folium")]
    script = json.loads(comps[0].proto.json_args)["script"]
    assert "Area mosaic (one heatmap of the area)" in script
    # imagery of both tiles, both scene heatmaps and the mosaic
    assert script.count("L.imageOverlay") == 5
    assert any("Area mosaic: area_heatmap.tif" in c.value for c in at.caption)


def test_engine_choice_only_when_a_cluster_is_configured(area_ws, monkeypatch):
    staged = [{"path": str(area_ws["tiles"][0]), "name": area_ws["tiles"][0].name, "origin": "server path"}]

    def analyze_page() -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.session_state[S.CASE_ID] = area_ws["case"]
        at.session_state[S.STAGED] = list(staged)
        at.run()
        at.switch_page("pages/analyze.py").run()
        assert not at.exception, at.exception
        return at

    assert not [r for r in analyze_page().radio if r.label == "Run on"]
    monkeypatch.setenv(ENV_RAY_ADDRESS, "10.0.0.5:6379")
    at = analyze_page()
    choice = next(r for r in at.radio if r.label == "Run on")
    assert choice.value == "local" and choice.options == ["this machine", "the Ray cluster (10.0.0.5:6379)"]
