"""Hostile case archives (issue 12, finding 1): an archive cannot make this workspace read, show or re-export a
file of this server. Import rebases every input reference outside the workspace into the case's upload folder;
export carries server-side files only when they pass the BDA_SERVER_PATHS rules at export time, and never other
files of the workspace (its database, other cases' uploads)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from core.cli.main import main
from core.server_files.paths import ENV_SERVER_PATHS
from core.store import Workspace
from tests.support.store import make_result

SECRET = b"root:x:0:0:secret of this server\n"


def _case(ws: Workspace, server: Path) -> int:
    """A case with one analysis of an uploaded image and one server-side image; returns the case id."""
    cid = ws.create_case("Joplin")
    up = ws.uploads_dir(cid)
    up.mkdir(parents=True)
    (up / "post.tif").write_bytes(b"post" * 100)
    server.write_bytes(b"server" * 100)
    aid = ws.create_analysis(cid, [{"path": str(up / "post.tif")}, {"path": str(server)}], model={"name": "m"},
                             threshold=None, options={})
    for path in (up / "post.tif", server):
        r = make_result(path.name)
        r.source_path = path
        ws.save_scene_result(aid, r)
    ws.finish_analysis(aid)
    return cid


def _tamper(archive: Path, out: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of ``archive`` whose rows.json was changed by ``edit``, with the manifest's size and sha256 of it
    fixed, as an attacker would."""
    with zipfile.ZipFile(archive) as zin:
        rows = json.loads(zin.read("rows.json"))
        edit(rows)
        data = json.dumps(rows).encode()
        manifest = json.loads(zin.read("manifest.json"))
        manifest["rows"] = {"path": "rows.json", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        with zipfile.ZipFile(out, "w") as zout:
            for info in zin.infolist():
                body = {"rows.json": data, "manifest.json": json.dumps(manifest).encode()}.get(info.filename)
                zout.writestr(info, body if body is not None else zin.read(info))
    return out


def _carried_bytes(archive: Path) -> list[bytes]:
    with zipfile.ZipFile(archive) as zf:
        return [zf.read(n) for n in zf.namelist() if n.startswith("files/inputs/")]


def test_an_archive_naming_server_files_is_rebased_and_never_re_exports_them(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SERVER_PATHS, raising=False)  # the most open rules: any readable server file
    secret = tmp_path / "passwd"
    secret.write_bytes(SECRET)
    src = Workspace(tmp_path / "src")
    good = src.export_case(_case(src, tmp_path / "server.tif"), tmp_path / "good.zip", inputs="none")
    dest = Workspace(tmp_path / "dest")
    dest.create_case("other team")
    other = dest.uploads_dir(1)
    other.mkdir(parents=True)
    (other / "theirs.tif").write_bytes(b"another case's upload")

    def point_at_secrets(rows: dict) -> None:
        item = rows["analyses"][0]
        item["inputs"][0]["path"] = str(secret)
        item["inputs"][1]["path"] = "@workspace/files/uploads/case-1/theirs.tif"
        item["inputs"][1]["pre_path"] = "@workspace/workspace.sqlite3"
        scene = json.loads(item["scenes"][0]["result_json"])
        scene["source_path"] = "/etc/passwd"
        scene["heatmap_path"] = "@analysis/../../../../passwd"
        scene["meta"]["pre_source"] = "@workspace/../passwd"
        item["scenes"][0]["result_json"] = json.dumps(scene)

    cid = dest.import_case(_tamper(good, tmp_path / "evil.zip", point_at_secrets))
    (a,) = dest.list_analyses(cid)
    folder = dest.uploads_dir(cid) / "not-carried"
    paths = [Path(i[k]) for i in dest.analysis_inputs(a["id"]) for k in ("path", "pre_path") if i.get(k)]
    first = dest.scene_results(a["id"])[0]
    paths += [first.source_path, Path(first.meta["pre_source"])]
    assert all(p.parent == folder and not p.exists() for p in paths), paths
    assert first.heatmap_path is None
    archive = dest.export_case(cid, tmp_path / "out.zip", inputs="all")
    assert _carried_bytes(archive) == []
    assert main(["case", "--workspace", str(dest.root), "export", str(cid), "--out", str(tmp_path / "cli.zip"),
                 "--inputs", "all"]) == 0
    assert _carried_bytes(tmp_path / "cli.zip") == []


def test_export_carries_server_files_only_inside_bda_server_paths(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "allowed").mkdir()
    ws = Workspace(tmp_path / "ws")
    cid = _case(ws, tmp_path / "data" / "server.tif")
    monkeypatch.setenv(ENV_SERVER_PATHS, str(tmp_path / "allowed"))
    assert _carried_bytes(ws.export_case(cid, tmp_path / "a.zip", inputs="all")) == [b"post" * 100]
    monkeypatch.setenv(ENV_SERVER_PATHS, str(tmp_path / "data"))
    assert sorted(_carried_bytes(ws.export_case(cid, tmp_path / "b.zip", inputs="all"))) == [b"post" * 100,
                                                                                           b"server" * 100]


def test_export_never_carries_other_workspace_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SERVER_PATHS, raising=False)
    ws = Workspace(tmp_path / "ws")
    first = ws.create_case("first")
    theirs = ws.uploads_dir(first)
    theirs.mkdir(parents=True)
    (theirs / "theirs.tif").write_bytes(b"first case's upload")
    cid = ws.create_case("second")
    ws.create_analysis(cid, [{"path": str(ws.db_path)}, {"path": str(theirs / "theirs.tif")}],
                       model={"name": "m"}, threshold=None, options={})
    assert _carried_bytes(ws.export_case(cid, tmp_path / "x.zip", inputs="all")) == []
