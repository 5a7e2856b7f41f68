"""Case archives carry the input images: uploads by default, server-side files on request; an import points the
analyses, the pre-event references and the scene sources at the carried copies in the new case's upload folder,
so the case works after the exporting workspace is gone. Also the CLI (`python -m core case ...`) and a report
from a workspace analysis id (`python -m core report --analysis ID`)."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfReader

from core.cli.main import main
from core.errors import InputError
from core.store import Workspace
from tests.support.store import make_result


def _pair_case(ws: Workspace, server: Path) -> tuple[int, int, dict[str, bytes]]:
    """A case with one analysis of an uploaded post image paired with an uploaded pre image, and one server-side
    input; returns (case id, analysis id, name -> bytes of each input file)."""
    cid = ws.create_case("Harvey 홍수")
    up = ws.uploads_dir(cid)
    up.mkdir(parents=True)
    files = {"post.tif": b"post-bytes" * 100, "pre.tif": b"pre-bytes" * 100}
    for name, data in files.items():
        (up / name).write_bytes(data)
    server.write_bytes(b"server-bytes" * 100)
    files[server.name] = server.read_bytes()
    aid = ws.create_analysis(cid, [{"path": str(up / "post.tif"), "pre_path": str(up / "pre.tif")},
                                   {"path": str(server)}], model={"name": "m"}, threshold=None, options={})
    r = make_result("post.tif")
    r.source_path, r.pre_scene_name = up / "post.tif", "pre.tif"
    r.meta["pre_source"] = str((up / "pre.tif").resolve())
    ws.save_scene_result(aid, r)
    s = make_result(server.name)
    s.source_path = server
    ws.save_scene_result(aid, s)
    ws.finish_analysis(aid)
    return cid, aid, files


def test_uploaded_inputs_travel_and_the_import_points_at_them(tmp_path: Path) -> None:
    src = Workspace(tmp_path / "src")
    cid, _, files = _pair_case(src, tmp_path / "server.tif")
    archive = src.export_case(cid, tmp_path / "case.zip")
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        carried = {c["name"]: zf.read(c["path"]) for c in manifest["inputs"]}
    assert manifest["inputs_included"] == "workspace"
    assert carried == {"post.tif": files["post.tif"], "pre.tif": files["pre.tif"]}  # the server file stays out
    src.close()
    shutil.rmtree(tmp_path / "src")  # the archive must not need the exporting workspace any more

    dest = Workspace(tmp_path / "dest")
    dest.create_case("takes id 1")
    new_cid = dest.import_case(archive)
    (a,) = dest.list_analyses(new_cid)
    folder = dest.uploads_dir(new_cid)
    inputs = dest.analysis_inputs(a["id"])
    assert Path(inputs[0]["path"]) == folder / "post.tif" and Path(inputs[0]["pre_path"]) == folder / "pre.tif"
    # not carried: rebased into the case's upload folder, where it is missing (never a path outside the workspace)
    assert Path(inputs[1]["path"]) == folder / "not-carried" / "server.tif"
    post, server = dest.scene_results(a["id"])
    assert post.source_path == folder / "post.tif" and post.source_path.read_bytes() == files["post.tif"]
    assert Path(post.meta["pre_source"]).read_bytes() == files["pre.tif"]
    assert server.source_path == folder / "not-carried" / "server.tif" and not server.source_path.exists()
    dest.close()
    # the stored references are relative to the workspace: moving the whole folder keeps them valid
    shutil.move(str(tmp_path / "dest"), str(tmp_path / "moved"))
    moved = Workspace(tmp_path / "moved")
    (post, _) = moved.scene_results(a["id"])
    assert post.source_path == moved.uploads_dir(new_cid) / "post.tif" and post.source_path.is_file()
    assert Path(post.meta["pre_source"]).is_file()
    assert Path(moved.analysis_inputs(a["id"])[0]["pre_path"]).is_file()


def test_all_carries_server_files_and_none_carries_nothing(tmp_path: Path) -> None:
    src = Workspace(tmp_path / "src")
    cid, _, files = _pair_case(src, tmp_path / "server.tif")
    everything = src.export_case(cid, tmp_path / "all.zip", inputs="all")
    bare = src.export_case(cid, tmp_path / "none.zip", inputs="none")
    with pytest.raises(InputError, match="inputs must be one of"):
        src.export_case(cid, tmp_path / "x.zip", inputs="some")
    with zipfile.ZipFile(bare) as zf:
        assert json.loads(zf.read("manifest.json"))["inputs"] == []
        assert not [n for n in zf.namelist() if n.startswith("files/inputs/")]
    (tmp_path / "server.tif").unlink()
    dest = Workspace(tmp_path / "dest")
    (a,) = dest.list_analyses(dest.import_case(everything))
    _, server = dest.scene_results(a["id"])
    assert server.source_path.parent == dest.uploads_dir(a["case_id"])
    assert server.source_path.read_bytes() == files["server.tif"]


def test_a_malformed_list_of_inputs_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    src = Workspace(tmp_path / "src")
    cid, _, _ = _pair_case(src, tmp_path / "server.tif")
    good = src.export_case(cid, tmp_path / "good.zip")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "manifest.json":
                m = json.loads(data)
                m["inputs"][0]["path"] = "files/inputs/../../../escape.tif"  # not a listed, verified file
                data = json.dumps(m).encode()
            zout.writestr(info, data)
    dest = Workspace(tmp_path / "dest")
    with pytest.raises(InputError, match="list of input images is malformed"):
        dest.import_case(bad)
    assert dest.list_cases() == [] and not (dest.root / "files" / "uploads").exists()
    assert not any((dest.root / "tmp").iterdir())


def test_cli_exports_imports_and_reports_a_reviewed_pair(shared_data: Path, tiny_model: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    j = shared_data / "geotiff/joplin_tornado_xview2deploy/chips_aligned"
    post, pre = j / "post/0_post.tif", j / "pre/0_pre.tif"
    w1, w2 = tmp_path / "w1", tmp_path / "w2"
    assert main(["analyze", str(post), "--pre", str(pre), "--model", str(tiny_model), "--threshold", "1.5",
                 "--workspace", str(w1), "--case", "Joplin", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    ws = Workspace(w1)
    (a,) = ws.list_analyses()
    (r,) = ws.scene_results(a["id"])
    assert r.findings, "the pair needs a finding to review"
    rejected = r.findings[0].id
    ws.review_finding(rejected, analyst="kim", status="rejected", notes="shadow, not damage")
    ws.close()
    capsys.readouterr()

    assert main(["case", "--workspace", str(w1), "list"]) == 0
    listed = capsys.readouterr().out
    assert "Joplin" in listed and f"analysis {a['id']:>4}" in listed and "1/1 images" in listed
    assert main(["case", "--workspace", str(w1), "export", "Joplin", "--out", str(tmp_path), "--inputs", "all"]) == 0
    archive = Path(capsys.readouterr().out.strip())
    assert archive.is_file() and archive.suffix == ".zip"
    assert main(["case", "--workspace", str(w1), "export", "no such case"]) == 2
    assert "there is no case 'no such case'" in capsys.readouterr().err
    shutil.rmtree(w1)
    shutil.rmtree(tmp_path / "out")

    assert main(["case", "--workspace", str(w2), "import", str(archive)]) == 0
    assert "as case 1 'Joplin' (1 analyses)" in capsys.readouterr().out
    ws2 = Workspace(w2)
    (a2,) = ws2.list_analyses()
    (r2,) = ws2.scene_results(a2["id"])
    assert r2.source_path.is_relative_to(w2) and Path(r2.meta["pre_source"]).is_relative_to(w2)
    ws2.close()
    out = tmp_path / "report"
    assert main(["report", "--workspace", str(w2), "--analysis", str(a2["id"]), "--format", "pdf,csv",
                 "--out", str(out), "--handling", "TLP:CLEAR"]) == 0
    text = "\n".join(p.extract_text() or "" for p in PdfReader(out / "report.pdf").pages)
    assert "0_pre.tif" in text and "0_post.tif" in text and "shadow, not damage" in text
    with open(out / "findings.csv", encoding="utf-8-sig", newline="") as fh:
        rows = {row["finding_id"]: row for row in csv.DictReader(fh)}
    new_id = f"A{a2['id']}-" + rejected.split("-", 1)[1]
    assert rows[new_id]["review_status"] == "rejected" and rows[new_id]["analyst"] == "kim"
    assert main(["report", "--workspace", str(w2), "--analysis", "99"]) == 2
    assert "no analysis with id 99" in capsys.readouterr().err


def test_an_import_never_removes_files_already_in_the_upload_folder(tmp_path: Path) -> None:
    src = Workspace(tmp_path / "src")
    cid, _, files = _pair_case(src, tmp_path / "server.tif")
    archive = src.export_case(cid, tmp_path / "case.zip")
    dest = Workspace(tmp_path / "dest")
    folder = dest.uploads_dir(1)  # the id the imported case will get, with a file left there by other means
    folder.mkdir(parents=True)
    (folder / "post.tif").write_bytes(b"someone else's")
    assert dest.import_case(archive) == 1
    assert (folder / "post.tif").read_bytes() == b"someone else's"
    (a,) = dest.list_analyses(1)
    post = dest.scene_results(a["id"])[0]
    assert post.source_path.parent == folder and post.source_path.name != "post.tif"
    assert post.source_path.read_bytes() == files["post.tif"]
