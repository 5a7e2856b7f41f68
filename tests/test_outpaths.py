"""``--out`` paths: a folder behaves like a folder (created when missing), a file name names the file, and an
existing file in the way is a clear error (issue 16: ``case export NAME --out exports/`` wrote a file 'exports')."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from core.cli.main import main
from core.cli.outpaths import names_folder, out_dir, out_file
from core.errors import InputError
from tests.support.store import make_result, new_analysis


def test_out_file_and_out_dir(tmp_path: Path) -> None:
    assert names_folder(f"{tmp_path}/exports/", (".zip",)) and names_folder(str(tmp_path), (".zip",))
    assert names_folder(tmp_path / "exports", (".zip",))  # no .zip: a folder, not a file without extension
    assert not names_folder(tmp_path / "a" / "case.ZIP", (".zip",))
    assert out_file(f"{tmp_path}/new/", "m.pt", (".pt",)) == tmp_path / "new" / "m.pt"
    assert (tmp_path / "new").is_dir()
    assert out_file(tmp_path / "deep" / "x.pt", "m.pt", (".pt",)) == tmp_path / "deep" / "x.pt"
    assert (tmp_path / "deep").is_dir() and not (tmp_path / "deep" / "x.pt").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="existing file, not a folder"):
        out_dir(tmp_path / "file")
    with pytest.raises(InputError, match="part of that path is a file"):
        out_dir(tmp_path / "file" / "sub")


def test_case_export_into_a_new_folder(ws, tmp_path: Path, capsys) -> None:
    aid = new_analysis(ws, ["a.tif"])
    ws.save_scene_result(aid, make_result("a.tif"), input_name="a.tif")
    ws.finish_analysis(aid)
    root = str(ws.root)
    out = tmp_path / "exports"
    assert main(["case", "--workspace", root, "export", "case", "--out", f"{out}/"]) == 0
    (archive,) = out.iterdir()  # written into the folder it created, with its dated name
    assert archive.suffix == ".zip" and archive.name.startswith("case-") and zipfile.is_zipfile(archive)
    assert capsys.readouterr().out.strip() == str(archive)
    # without the slash too, as long as it does not end in .zip; and a .zip path is the archive itself
    assert main(["case", "--workspace", root, "export", "case", "--out", str(tmp_path / "other")]) == 0
    assert [p.suffix for p in (tmp_path / "other").iterdir()] == [".zip"]
    assert main(["case", "--workspace", root, "export", "case", "--out", str(tmp_path / "n" / "mine.zip")]) == 0
    assert zipfile.is_zipfile(tmp_path / "n" / "mine.zip")
    (tmp_path / "blocker").write_text("not a folder")
    assert main(["case", "--workspace", root, "export", "case", "--out", f"{tmp_path / 'blocker'}/"]) == 2
    assert "existing file, not a folder" in capsys.readouterr().err


def test_report_out_is_a_folder(ws, tmp_path: Path, capsys) -> None:
    aid = new_analysis(ws, ["a.tif"])
    ws.save_scene_result(aid, make_result("a.tif", geo=False), input_name="a.tif")
    ws.finish_analysis(aid)
    out = tmp_path / "reports" / "one"
    assert main(["report", "--workspace", str(ws.root), "--analysis", str(aid), "--format", "csv",
                 "--out", f"{out}/"]) == 0
    assert (out / "findings.csv").is_file()
    (tmp_path / "f").write_text("x")
    assert main(["report", "--workspace", str(ws.root), "--analysis", str(aid), "--format", "csv",
                 "--out", str(tmp_path / "f")]) == 2
    assert "existing file, not a folder" in capsys.readouterr().err
