"""Models page inputs: server folders, globs and weights files typed on the page stay inside ``BDA_SERVER_PATHS``
(links and '..' cannot lead out, '/' cannot be scanned whole), and uploads are streamed to disk in chunks."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.errors import InputError
from core.learn import jobs
from core.server_files import typed_paths
from core.server_files.paths import ENV_SERVER_PATHS
from core.store import Workspace
from core.store.job_uploads import save_job_uploads
from tests.support.models import open_models_page

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def flood(shared_data) -> list[Path]:
    files = sorted((shared_data / "aider" / "flooded_areas").glob("*.jpg"))[:6]
    if len(files) < 6:
        pytest.skip("AIDER flooded_areas images missing")
    return files


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """allowed/ (the only BDA_SERVER_PATHS folder) with images, and outside/ next to it with one image."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    for d in (allowed / "flood" / "deep", outside):
        d.mkdir(parents=True)
    for f in (allowed / "flood" / "a.jpg", allowed / "flood" / "deep" / "b.png", outside / "secret.jpg"):
        f.write_bytes(b"not really an image")
    monkeypatch.setenv(ENV_SERVER_PATHS, str(allowed))
    return {"allowed": allowed, "outside": outside}


def _refused(text: str, *words: str) -> str:
    with pytest.raises(InputError) as err:
        typed_paths.check_image_source(text, "Normal images")
    msg = str(err.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_folders_files_and_globs_inside_the_allowed_folder_are_accepted(tree):
    a = tree["allowed"]
    for spec in (a / "flood", a / "flood" / "a.jpg", f"{a}/flood/**/*.png", f"{a}/*/a.jpg", f"{a}/flood/**"):
        assert typed_paths.check_image_source(f" '{spec}' ", "Normal images") == str(spec)


def test_paths_outside_the_allowed_folders_are_refused_with_what_is_allowed(tree):
    msg = _refused("/", "outside the folders", str(tree["allowed"]), ENV_SERVER_PATHS)
    assert "Normal images" in msg
    _refused(str(tree["outside"]), "outside the folders")
    _refused(str(tree["outside"] / "secret.jpg"), "outside the folders")
    _refused(f"{tree['outside']}/**/*.jpg", "outside the folders")  # a glob's fixed folder is what counts
    _refused("/**/*.jpg", "outside the folders")


def test_dot_dot_and_relative_paths_are_refused(tree):
    _refused(f"{tree['allowed']}/flood/../../outside", "'..'")
    _refused(f"{tree['allowed']}/*/../../outside/*.jpg", "'..'")  # a glob cannot be resolved before it runs
    _refused("flood/*.jpg", "not an absolute path")
    _refused("~no-such-user-here/flood", "unknown home folder")
    _refused(f"{tree['allowed']}/flood\x00/x", "control characters")
    _refused("  ", "type the full path")


def test_links_out_of_the_allowed_folders_are_refused(tree):
    a, out = tree["allowed"], tree["outside"]
    (a / "via-dir").symlink_to(out, target_is_directory=True)
    _refused(str(a / "via-dir"), "a link to", str(out))  # the folder itself is a link out
    os.remove(a / "via-dir")
    (a / "flood" / "deep" / "escape").symlink_to(out, target_is_directory=True)
    _refused(str(a / "flood"), "a link to", "outside the folders")  # a link below a named folder
    _refused(f"{a}/flood/**/*.jpg", "a link to")  # a recursive glob follows links, so the look does too
    os.remove(a / "flood" / "deep" / "escape")
    (a / "flood" / "stolen.jpg").symlink_to(out / "secret.jpg")
    _refused(str(a / "flood"), "stolen.jpg", "a link to")
    _refused(str(a / "flood" / "stolen.jpg"), "a link to")


def test_links_between_allowed_folders_are_fine(tree, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    (other / "c.jpg").write_bytes(b"x")
    (tree["allowed"] / "flood" / "c.jpg").symlink_to(other / "c.jpg")
    monkeypatch.setenv(ENV_SERVER_PATHS, f"{tree['allowed']}{os.pathsep}{other}")
    assert typed_paths.check_image_source(str(tree["allowed"] / "flood"), "x") == str(tree["allowed"] / "flood")


def test_missing_empty_and_huge_folders_are_refused(tree, monkeypatch):
    a = tree["allowed"]
    _refused(str(a / "nope"), "does not exist")
    (a / "empty").mkdir()
    (a / "empty" / "notes.txt").write_text("x")
    _refused(str(a / "empty"), "no images")
    _refused(f"{a}/flood/*.tif", "no images")
    monkeypatch.setattr(typed_paths, "MAX_SCAN_ENTRIES", 20)
    big = a / "big"
    big.mkdir()
    for i in range(25):
        (big / f"{i}.jpg").write_bytes(b"x")
    _refused(str(big), "more than 20 files and folders")


@pytest.mark.slow  # walks / until the entry limit
def test_without_allowed_folders_the_root_is_still_not_scanned_whole(monkeypatch):
    monkeypatch.delenv(ENV_SERVER_PATHS, raising=False)
    _refused("/", "more than 100,000 files and folders")
    assert "not set" in typed_paths.allowed_note() and ENV_SERVER_PATHS in typed_paths.allowed_note()


def test_link_loops_and_deep_trees_end_the_look(tree, monkeypatch):
    flood = tree["allowed"] / "flood"
    (flood / "p.jpg").symlink_to(flood / "q.jpg")
    (flood / "q.jpg").symlink_to(flood / "p.jpg")
    # a looping link is no image: skipped, as the job does
    assert typed_paths.check_image_source(str(flood), "x") == str(flood)
    _refused(str(flood / "p.jpg"), "link loop")
    loop = tree["allowed"] / "loop"
    loop.mkdir()
    (loop / "x.jpg").write_bytes(b"x")
    (loop / "a").symlink_to(loop, target_is_directory=True)
    (loop / "b").symlink_to(loop, target_is_directory=True)  # two links: the paths double at every level
    monkeypatch.setattr(typed_paths, "MAX_SCAN_ENTRIES", 2000)
    _refused(f"{loop}/**/*.jpg", "more than 2,000 files and folders")
    _refused(str(loop), "more than 2,000")
    monkeypatch.setattr(typed_paths, "MAX_DEPTH", 3)
    deep = tree["allowed"] / "d1" / "d2" / "d3" / "d4" / "d5"
    deep.mkdir(parents=True)
    (deep / "x.jpg").write_bytes(b"x")
    _refused(str(tree["allowed"] / "d1"), "more than 3 levels")


def test_weights_file_obeys_the_same_rule(tree):
    w = tree["allowed"] / "w.pth"
    w.write_bytes(b"x")
    assert typed_paths.check_weights_file(str(w)) == w
    with pytest.raises(InputError, match="outside the folders"):
        typed_paths.check_weights_file(str(tree["outside"] / "secret.jpg"))
    (tree["allowed"] / "w-link.pth").symlink_to(tree["outside"] / "secret.jpg")
    with pytest.raises(InputError, match="a link to"):
        typed_paths.check_weights_file(str(tree["allowed"] / "w-link.pth"))
    with pytest.raises(InputError, match="not a file"):
        typed_paths.check_weights_file(str(tree["allowed"]))


class _ChunkOnly(io.BytesIO):
    """An upload that can only be read in bounded chunks: a second full copy in memory would fail here."""

    name = "x"

    def getvalue(self) -> bytes:
        raise AssertionError("getvalue() copies the whole upload")

    def read(self, size: int | None = -1) -> bytes:
        assert size is not None and 0 < size <= 1 << 20, f"read({size}) is not a bounded chunk"
        return super().read(size)


def test_uploads_are_streamed_to_disk_in_chunks_and_zips_unpacked(ws):
    big = os.urandom(3 * (1 << 20) + 5)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("inner/a.jpg", b"jpeg bytes")
    ups = []
    for name, data in (("../../x.jpg", big), ("x.jpg", b"second"), ("set.zip", zbuf.getvalue())):
        u = _ChunkOnly(data)
        u.name = name
        u.read(7)  # a stream not at its start is still written whole
        ups.append(u)
    dest = save_job_uploads(ws, "train-normal", ups)
    assert dest is not None and dest.parent == ws.root / "files" / "uploads"
    assert (dest / "x.jpg").read_bytes() == big and (dest / "x-2.jpg").read_bytes() == b"second"
    assert (dest / "set" / "inner" / "a.jpg").read_bytes() == b"jpeg bytes"
    assert not (dest / "set.zip").exists()
    assert save_job_uploads(ws, "train-normal", []) is None


def test_a_refused_zip_leaves_no_folder_behind(ws):
    bad = io.BytesIO(b"PK not a zip")
    bad.name = "broken.zip"
    with pytest.raises(InputError, match="not a readable zip"):
        save_job_uploads(ws, "train-normal", [bad])
    assert list((ws.root / "files" / "uploads").iterdir()) == []


# -- on the page ----------------------------------------------------------------------------------------------------
@pytest.fixture
def page(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("BDA_MODEL", str(tiny_model))

    return open_models_page


def _text(at: AppTest, prefix: str):
    return next(t for t in at.text_input if t.label.startswith(prefix))


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _nothing_staged(root: Path) -> None:
    ws = Workspace(root)
    try:
        assert ws.list_jobs() == []
    finally:
        ws.close()
    uploads = root / "files" / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_page_refuses_a_training_folder_outside_the_allowed_ones(page, tree, flood, tmp_path):
    at = page()
    assert any(str(tree["allowed"]) in c.value and ENV_SERVER_PATHS in c.value for c in at.caption)
    next(u for u in at.file_uploader if u.label.startswith("Normal images")).upload("up.jpg", flood[0].read_bytes())
    for bad in ("/", str(tree["outside"]), f"{tree['allowed']}/../outside"):
        _text(at, "…or a folder of normal images").input(bad)
        _button(at, "Start training").click().run()
        assert not at.exception, at.exception
        errors = [e.value for e in at.error]
        assert errors and errors[0].startswith("Training: Normal images:"), errors
        _nothing_staged(tmp_path / "ws")  # the upload given with it was not written either
    _text(at, "…or a folder of normal images").input(str(tree["allowed"] / "flood"))
    _text(at, "…or a folder of anomalies").input(str(tree["outside"]))
    _button(at, "Start training").click().run()
    assert any("Anomalies:" in e.value and "outside the folders" in e.value for e in at.error)
    _nothing_staged(tmp_path / "ws")


def test_page_refuses_an_evaluation_folder_outside_the_allowed_ones(page, tree, tmp_path):
    at = page()
    _text(at, "…or a server folder of normal images").input(str(tree["allowed"] / "flood"))
    _text(at, "…or a server folder of anomalous images").input(f"{tree['outside']}/*.jpg")
    _button(at, "Start evaluation").click().run()
    assert not at.exception, at.exception
    assert any(e.value.startswith("Evaluation: Anomalous images:") and ENV_SERVER_PATHS in e.value for e in at.error)
    _nothing_staged(tmp_path / "ws")


def test_page_trains_on_an_allowed_folder_and_on_streamed_uploads(page, tree, flood, tmp_path, shared_data,
                                                                 monkeypatch):
    normal = tree["allowed"] / "normal"
    normal.mkdir()
    for f in flood[:4]:
        (normal / f.name).symlink_to(f)  # links into another allowed folder: fine
    monkeypatch.setenv(ENV_SERVER_PATHS, f"{tree['allowed']}{os.pathsep}{shared_data}")
    at = page()
    next(s for s in at.selectbox if s.label == "Architecture").set_value("fcdd-resnet18")
    for label, value in (("Epochs", 1), ("Input size (px)", 64), ("Steps per epoch", 2), ("Batch size", 2)):
        next(n for n in at.number_input if n.label == label).set_value(value)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        for f in flood[4:6]:
            z.write(f, f"more/{f.name}")
    up = next(u for u in at.file_uploader if u.label.startswith("Normal images"))
    up.upload(flood[0].name, flood[0].read_bytes()).upload("more.zip", zbuf.getvalue())
    _text(at, "…or a folder of normal images").input(f"{normal}/*.jpg")
    _button(at, "Start training").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    ws = Workspace(tmp_path / "ws")
    [job] = ws.list_jobs(kind=jobs.TRAIN)
    done = jobs.runner(ws.root).wait(job["id"], timeout=300)
    assert done["status"] == "done", done["message"]
    staged, glob_spec = done["params"]["config"]["normal"]
    assert glob_spec == f"{normal}/*.jpg"
    assert (Path(staged) / flood[0].name).read_bytes() == flood[0].read_bytes()
    assert (Path(staged) / "more" / "more" / flood[5].name).read_bytes() == flood[5].read_bytes()
    ws.close()
    shutil.rmtree(normal)
