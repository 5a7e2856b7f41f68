"""Models page, Evaluate tab, xBD mode (Streamlit AppTest): a labelled xBD folder (server folder inside
BDA_SERVER_PATHS, or an uploaded zip) evaluated as a background job; the page shows the building and tile AUROCs that
core.learn.evaluation.evaluate_xbd measures on the same data, the building ROC, and the model card records them. Folders
outside the allowed ones, without labels or not in the xBD layout are refused with a message."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.detection.detector import Detector
from core.errors import InputError
from core.learn import jobs
from core.learn.evaluation import evaluate_xbd
from core.server_files import xbd_folders
from core.server_files.paths import ENV_SERVER_PATHS
from core.store import Workspace
from tests.support.models import open_models_page
from ui import models_xbd

torch.set_num_threads(1)
TILES = ("218", "228", "220")  #: 8 damaged and 123 undamaged graded buildings; tiles with and without damage


def _copy_xbd(src: Path, dest: Path, tiles=TILES, *, labels: bool = True) -> Path:
    """Post + pre images (and their labels) of a few Harvey tiles copied into an xBD layout at ``dest``."""
    (dest / "images").mkdir(parents=True)
    if labels:
        (dest / "labels").mkdir()
    for t in tiles:
        for phase in ("pre", "post"):
            stem = f"hurricane-harvey_00000{t}_{phase}_disaster"
            wanted = [("images", ".png")] + ([("labels", ".json")] if labels else [])
            for sub, ext in wanted:
                f = src / sub / f"{stem}{ext}"
                if not f.is_file():
                    pytest.skip(f"xBD Harvey file missing: {f}")
                (dest / sub / f.name).write_bytes(f.read_bytes())
    return dest


@pytest.fixture(scope="module")
def harvey(shared_data) -> Path:
    h = shared_data / "xbd" / "harvey"
    if not (h / "images").is_dir() or not (h / "labels").is_dir():
        pytest.skip(f"xBD Harvey sample missing at {h}")
    return h


@pytest.fixture(scope="module")
def expected(harvey, tiny_model, tmp_path_factory) -> dict:
    """evaluate_xbd of the tiny model on the three-tile copy: what the page must show."""
    folder = _copy_xbd(harvey, tmp_path_factory.mktemp("xbd-expected") / "harvey3")
    return evaluate_xbd(Detector.load(tiny_model, device="cpu"), folder)


@pytest.fixture
def allowed(tmp_path, monkeypatch) -> Path:
    """The only BDA_SERVER_PATHS folder."""
    d = tmp_path / "allowed"
    d.mkdir()
    monkeypatch.setenv(ENV_SERVER_PATHS, str(d))
    return d


@pytest.fixture
def page(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("BDA_MODEL", str(tiny_model))

    def open_xbd_tab() -> AppTest:
        at = open_models_page()
        next(r for r in at.radio if r.label == "Evaluate on").set_value("xbd").run()
        assert not at.exception, at.exception
        return at
    return open_xbd_tab


def _submit(at: AppTest, folder: str = "", upload: tuple[str, bytes] | None = None) -> AppTest:
    if folder:
        next(t for t in at.text_input if t.label == "xBD folder on the server").input(folder)
    if upload is not None:
        next(u for u in at.file_uploader if u.label.startswith("…or a .zip")).upload(*upload)
    next(b for b in at.button if b.label == "Start xBD evaluation").click().run()
    assert not at.exception, at.exception
    return at


def _finish(ws_root: Path) -> dict:
    ws = Workspace(ws_root)
    [job] = ws.list_jobs(kind=jobs.EVALUATE)
    done = jobs.runner(ws.root).wait(job["id"], timeout=300)
    assert done["status"] == "done", done["message"]
    return done


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_xbd_folder_evaluated_from_the_page_shows_what_evaluate_xbd_measures(page, harvey, allowed, expected,
                                                                               tmp_path):
    folder = _copy_xbd(harvey, allowed / "harvey3")
    at = _submit(page(), str(folder))
    assert _errors(at) == []
    job = _finish(tmp_path / "ws")
    assert job["params"]["xbd"] == str(folder) and job["params"]["tile"] == 256
    res = job["result"]
    assert res["building_auroc"] == pytest.approx(expected["building_auroc"], abs=1e-9)
    assert res["tile_auroc"] == pytest.approx(expected["tile_auroc"], abs=1e-9)
    at.run()  # the page's next refresh
    assert not at.exception, at.exception
    assert any(m.value.startswith(f"**xBD evaluation job #{job['id']}** · done") for m in at.markdown)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Building AUROC"] == f"{expected['building_auroc']:.3f}"
    assert shown["Tile AUROC"] == f"{expected['tile_auroc']:.3f}"
    assert any(f"{expected['n_damaged']} damaged vs {expected['n_undamaged']} undamaged buildings in 3 post images"
               in c.value and f"{expected['n_tiles']} tiles of 256 px, {expected['n_damaged_tiles']} with damage"
               in c.value and "folder harvey3" in c.value for c in at.caption)
    [roc] = at.get("plotly_chart")
    spec = json.loads(roc.proto.spec)
    assert spec["layout"]["title"]["text"] == f"Building ROC · AUROC {expected['building_auroc']:.3f}"
    curve = spec["data"][0]
    assert curve["name"] == "buildings" and (curve["x"][0], curve["y"][-1]) == (0, 1)
    # recorded on the model: the default model's card lists the evaluation in its xBD table
    tables = [d.value for d in at.dataframe if "building AUROC" in d.value.columns]
    assert len(tables) == 1
    row = tables[0].iloc[0]
    assert row["folder"] == "harvey3" and row["building AUROC"] == pytest.approx(expected["building_auroc"])
    assert row["tile AUROC"] == pytest.approx(expected["tile_auroc"])
    assert (row["damaged"], row["undamaged"], row["images"]) == (8, 123, 3)


def test_an_uploaded_zip_of_an_xbd_folder_is_unpacked_found_and_evaluated(page, harvey, expected, tmp_path):
    folder = _copy_xbd(harvey, tmp_path / "src" / "harvey3")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f"event/harvey3/{f.relative_to(folder)}")  # the xBD folder one level down
    at = _submit(page(), upload=("harvey3.zip", buf.getvalue()))
    assert _errors(at) == []
    job = _finish(tmp_path / "ws")
    staged = Path(job["params"]["xbd"])
    assert staged.name == "harvey3" and (tmp_path / "ws" / "files" / "uploads") in staged.parents
    assert job["result"]["building_auroc"] == pytest.approx(expected["building_auroc"], abs=1e-9)
    assert job["result"]["images"] == 3


def test_a_server_folder_outside_the_allowed_folders_is_refused(page, harvey, allowed, tmp_path):
    at = _submit(page(), str(harvey))
    msg = " ".join(_errors(at))
    assert "outside the folders" in msg and str(allowed) in msg and ENV_SERVER_PATHS in msg
    assert Workspace(tmp_path / "ws").list_jobs() == []


def test_a_folder_without_labels_gets_a_clear_message(page, harvey, allowed, tmp_path):
    no_labels = _copy_xbd(harvey, allowed / "nolabels", TILES[:1], labels=False)
    at = _submit(page(), str(no_labels))
    msg = " ".join(_errors(at))
    assert "has no labels/ folder" in msg and "labels/<tile>_post_disaster.json" in msg
    empty_labels = _copy_xbd(harvey, allowed / "emptylabels", TILES[:1], labels=False)
    (empty_labels / "labels").mkdir()
    at = _submit(page(), str(empty_labels))
    msg = " ".join(_errors(at))
    assert "none of the 1 post images" in msg and "hurricane-harvey_00000218_post_disaster.json" in msg
    assert "needs the xBD labels" in msg
    assert Workspace(tmp_path / "ws").list_jobs() == []


def test_neither_or_both_sources_are_refused(page, harvey, allowed, tmp_path):
    at = _submit(page())
    assert any("Give an xBD folder" in e for e in _errors(at))
    at = _submit(page(), str(allowed), upload=("x.zip", b"PK"))
    assert any("not both" in e for e in _errors(at))
    assert Workspace(tmp_path / "ws").list_jobs() == []


# -- the checks behind the form ---------------------------------------------------------------------------------
def test_check_xbd_folder_counts_posts_and_notes_unlabelled_ones(harvey, allowed):
    folder = _copy_xbd(harvey, allowed / "x", TILES[:2])
    (folder / "labels" / "hurricane-harvey_00000228_post_disaster.json").unlink()
    xf = xbd_folders.check_xbd_folder(f" '{folder}' ")
    assert xf.root == folder and xf.posts == 2 and xf.unlabelled == ["hurricane-harvey_00000228_post_disaster.png"]
    assert "1 of 2 post images have no label JSON" in models_xbd.note_text(models_xbd.unlabelled_note(xf))
    with pytest.raises(InputError, match="name the folder above it"):
        xbd_folders.check_xbd_folder(str(folder / "images"))
    with pytest.raises(InputError, match="does not exist"):
        xbd_folders.check_xbd_folder(str(allowed / "nowhere"))
    with pytest.raises(InputError, match="'..'"):
        xbd_folders.check_xbd_folder(f"{folder}/../../outside")
    (folder / "images" / "hurricane-harvey_00000218_post_disaster.png").unlink()
    (folder / "images" / "hurricane-harvey_00000228_post_disaster.png").unlink()
    with pytest.raises(InputError, match=r"no post-event images \(\*_post_disaster.png\)"):
        xbd_folders.check_xbd_folder(str(folder))


def test_links_out_of_the_allowed_folders_are_refused(harvey, allowed):
    imgs = allowed / "linked" / "images"
    imgs.mkdir(parents=True)
    (allowed / "linked" / "labels").symlink_to(harvey / "labels")  # labels/ itself leads out
    post = "hurricane-harvey_00000218_post_disaster.png"
    (imgs / post).write_bytes((harvey / "images" / post).read_bytes())
    with pytest.raises(InputError, match="outside the folders"):
        xbd_folders.check_xbd_folder(str(allowed / "linked"))
    own = _copy_xbd(harvey, allowed / "own", TILES[:1])
    label = own / "labels" / "hurricane-harvey_00000218_post_disaster.json"
    label.unlink()
    label.symlink_to(harvey / "labels" / label.name)  # one label file leads out
    with pytest.raises(InputError, match="outside the folders"):
        xbd_folders.check_xbd_folder(str(own))
    (allowed / "link-to-harvey").symlink_to(harvey)  # the named folder itself leads out
    with pytest.raises(InputError, match="a link to"):
        xbd_folders.check_xbd_folder(str(allowed / "link-to-harvey"))


def test_find_xbd_root_wants_exactly_one_xbd_folder(tmp_path):
    for sub in ("a", "b"):
        for d in ("images", "labels"):
            (tmp_path / "two" / sub / d).mkdir(parents=True)
    with pytest.raises(InputError, match="holds 2 xBD folders"):
        xbd_folders.find_xbd_root(tmp_path / "two")
    (tmp_path / "none" / "images").mkdir(parents=True)
    with pytest.raises(InputError, match="no folder with both images/ and labels/"):
        xbd_folders.find_xbd_root(tmp_path / "none")
    assert xbd_folders.find_xbd_root(tmp_path / "two" / "a") == tmp_path / "two" / "a"


def test_an_uploaded_zip_without_an_xbd_folder_leaves_nothing_behind(tmp_path, ws):
    class Upload(io.BytesIO):
        name = "photos.zip"

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("photos/a.png", b"png")
    with pytest.raises(InputError, match="no folder with both images/ and labels/"):
        xbd_folders.stage_xbd_upload(ws, Upload(buf.getvalue()))
    uploads = ws.root / "files" / "uploads"
    assert not uploads.exists() or os.listdir(uploads) == []
    not_zip = Upload(b"x")
    not_zip.name = "labels.json"
    with pytest.raises(InputError, match="is not a .zip"):
        xbd_folders.stage_xbd_upload(ws, not_zip)
