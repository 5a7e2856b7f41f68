"""Server paths on a team server (issue 12): with accounts, ``BDA_SERVER_PATHS`` unset opens no server file, and set,
it never opens the workspace; a single analyst's machine keeps the plain rules. Every kind of typed path: input
images, training image folders, backbone weights, basemaps, and what a case export may carry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import InputError
from core.mapping.basemaps import check_basemap
from core.server_files.paths import ENV_SERVER_PATHS, check_server_path, serve_team, server_path_allowed
from core.server_files.typed_paths import allowed_note, check_image_source, check_weights_file

GEOJSON = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "road"},
     "geometry": {"type": "LineString", "coordinates": [[-94.5, 37.0], [-94.4, 37.1]]}}]}


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A data folder with an image, a weights file, an image folder and a vector layer; a workspace beside it with
    another case's upload and an uploaded basemap."""
    data, ws = tmp_path / "data", tmp_path / "ws"
    (data / "normal").mkdir(parents=True)
    files = {"image": data / "tile.tif", "weights": data / "trunk.pth", "folder": data / "normal",
             "layer": data / "roads.geojson", "upload": ws / "files" / "uploads" / "case-2" / "theirs.tif",
             "uploaded_layer": ws / "files" / "basemaps" / "roads.geojson", "ws": ws}
    files["upload"].parent.mkdir(parents=True)
    files["uploaded_layer"].parent.mkdir(parents=True)
    for key in ("image", "weights", "upload"):
        files[key].write_bytes(b"II*\x00 bytes")
    (data / "normal" / "a.png").write_bytes(b"\x89PNG")
    for key in ("layer", "uploaded_layer"):
        files[key].write_text(json.dumps(GEOJSON))
    return files


@pytest.fixture
def team(layout: dict[str, Path]) -> Iterator[dict[str, Path]]:
    serve_team(layout["ws"])
    try:
        yield layout
    finally:
        serve_team(None)


def _every_check(f: dict[str, Path], key: str) -> list[object]:
    """Each way a typed path is checked, for the file or folder ``key``."""
    return [lambda: check_server_path(str(f[key])), lambda: check_image_source(str(f[key]), "Normal images"),
            lambda: check_weights_file(str(f[key])), lambda: check_basemap(str(f[key]))]


def test_without_folders_a_team_server_opens_no_server_file(team: dict[str, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SERVER_PATHS, raising=False)
    for key in ("image", "weights", "folder", "layer"):
        for check in _every_check(team, key):
            with pytest.raises(InputError, match="opens none of its folders"):
                check()  # type: ignore[operator]
    assert not server_path_allowed(team["image"])  # a case export carries none
    assert "opens none of its folders" in allowed_note()
    assert check_basemap(str(team["uploaded_layer"]), also=(team["ws"],)).kind == "vector"  # uploads still draw


def test_with_folders_a_team_server_never_opens_the_workspace(team: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_SERVER_PATHS, str(tmp_path))  # the data folder and the workspace below it
    with pytest.raises(InputError, match="inside the workspace"):
        check_server_path(str(team["upload"]))
    with pytest.raises(InputError, match="inside the workspace"):
        check_image_source(str(team["upload"].parent), "Normal images")
    with pytest.raises(InputError, match="inside the workspace"):
        check_basemap(str(team["uploaded_layer"]))
    link = tmp_path / "data" / "innocent.tif"
    link.symlink_to(team["upload"])
    with pytest.raises(InputError, match="inside the workspace"):
        check_server_path(str(link))  # through a link too
    assert check_server_path(str(team["image"])) == team["image"]
    assert check_image_source(str(team["folder"]), "Normal images") == str(team["folder"])
    assert check_weights_file(str(team["weights"])) == team["weights"]
    assert check_basemap(str(team["layer"])).kind == "vector"
    assert server_path_allowed(team["image"]) and not server_path_allowed(team["upload"])


def test_a_single_analysts_machine_keeps_the_plain_rules(layout: dict[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SERVER_PATHS, raising=False)
    serve_team(None)
    assert check_server_path(str(layout["image"])) == layout["image"]
    assert check_server_path(str(layout["upload"])) == layout["upload"]
    assert "is not set: any folder" in allowed_note()
