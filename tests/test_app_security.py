"""Security findings of issue 12 seen through the pages (in-process Streamlit AppTest): hostile upload names
(finding 9), an imported case whose heatmaps stayed on another machine (finding 5), the sidebar case staying put
(finding 4)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.store import Workspace
from tests.support.app import new_app, texts
from tests.support.store import make_result
from ui import state as S

torch.set_num_threads(1)

RLO = "\u202e"


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# -- 9: hostile upload names -----------------------------------------------------------------------------------------
def test_a_nul_or_bidi_name_never_loses_the_batch(app_env: Path) -> None:
    at = new_app().run()
    names = ["a.png", "bad\x00name.png", f"evil{RLO}gnp.exe.png", "tab\tand\nnewline.png", "b.png", "run.exe"]
    at.file_uploader[0].set_value([(n, _png(i), "image/png") for i, n in enumerate(names)]).run()
    assert not at.exception, texts(at.exception)
    staged = [s["name"] for s in at.session_state[S.STAGED]]
    assert staged == ["a.png", "bad name.png", "evilgnp.exe.png", "tab and newline.png", "b.png"]
    assert any(t.startswith("run.exe: not a file this uploader takes") for t in texts(at.error)), texts(at.error)
    at.button(key="run_analysis").click().run()
    assert not at.exception, texts(at.exception)
    ws = Workspace(app_env)
    (a,) = ws.list_analyses()
    results = ws.scene_results(a["id"])
    assert sorted(r.scene_name for r in results) == sorted(staged)
    shown = " ".join(texts(at.markdown) + texts(at.caption) + texts(at.error) + texts(at.success))
    assert "\x00" not in shown and RLO not in shown


# -- 5: an imported case whose command-line run wrote outside its workspace ----------------------------------------
def test_an_imported_cli_case_opens_cleanly(app_env: Path, small_model: Path, shared_data: Path,
                                            tmp_path: Path) -> None:
    from core.cli.main import main

    chip = shared_data / "geotiff/joplin_tornado_xview2deploy/chips_aligned/post/0_post.tif"
    other = tmp_path / "their-workspace"
    assert main(["analyze", str(chip), "--model", str(small_model), "--workspace", str(other), "--case", "Theirs",
                 "--out", str(tmp_path / "outside"), "--quiet"]) == 0
    theirs = Workspace(other)
    archive = theirs.export_case(theirs.list_cases()[0]["id"], tmp_path / "theirs.zip")
    ws = Workspace(app_env)
    cid = ws.import_case(archive)
    (a,) = ws.list_analyses(cid)
    (r,) = ws.scene_results(a["id"])
    assert r.heatmap_path is None  # it stayed on the other machine

    at = new_app().run()
    assert at.session_state[S.CASE_ID] == cid
    for page in ("pages/analyze.py", "pages/map.py", "pages/report.py", "pages/analyze.py"):
        at.switch_page(page).run()
        assert not at.exception, f"{page}: {texts(at.exception)}"
        assert not at.error, f"{page}: {texts(at.error)}"
    assert any("heatmap of 0_post.tif is missing" in t for t in texts(at.warning)), texts(at.warning)


# -- 4: the case a session works in changes only when its user changes it -------------------------------------------
def test_the_sidebar_case_stays_put_when_cases_change_elsewhere(app_env: Path) -> None:
    """The browser remembers a selectbox choice by its label: a label that an analysis changes (it held the count
    of analyses) was not found again, and the box fell back to its first option, the newest case. So the labels
    of the case and analysis pickers must not change when analyses are made or finish."""
    ws = Workspace(app_env)
    mine = ws.create_case("Mine")
    ws.create_case("Another team")
    at = new_app().run()
    at.sidebar.selectbox(key=S.W_CASE).select(mine).run()
    assert at.session_state[S.CASE_ID] == mine
    case_labels = at.sidebar.selectbox(key=S.W_CASE).options
    analysis_labels: list[str] = []
    for step in range(3):
        # an analysis in this case, by this session or another, and a newer case of another team
        aid = ws.create_analysis(mine, [{"path": f"/data/x{step}.tif"}], model={"name": "m"}, threshold=None,
                                 options={})
        at.switch_page("pages/analyze.py").run()
        running = at.selectbox(key=S.W_ANALYSIS).options
        ws.save_scene_result(aid, make_result(f"x{step}.tif"))
        ws.finish_analysis(aid)
        ws.create_case(f"Newer {step}")
        for page in ("pages/map.py", "pages/report.py", "pages/analyze.py"):
            at.switch_page(page).run()
            assert not at.exception, texts(at.exception)
            assert at.session_state[S.CASE_ID] == mine, (step, page)
            assert at.sidebar.selectbox(key=S.W_CASE).value == mine, (step, page)
        labels = at.sidebar.selectbox(key=S.W_CASE).options
        assert [x for x in labels if x in case_labels] == case_labels  # the same labels, newer cases added
        assert at.selectbox(key=S.W_ANALYSIS).options == running  # finishing the run changed no label
        assert running[1:] == analysis_labels
        analysis_labels = running


# -- 10: widgets keep their place from run to run ------------------------------------------------------------------
def _positions(at) -> dict[str, tuple[int, ...]]:
    """Where each labelled element sits in the page's element tree (its delta path)."""
    out: dict[str, tuple[int, ...]] = {}

    def walk(node, path: tuple[int, ...]) -> None:
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for k, child in children.items():
                walk(child, (*path, k))
        elif isinstance(getattr(node, "label", None), str):
            out.setdefault(node.label, path)

    walk(at._tree, ())
    return out


WATCHED = ["Import a case archive (.zip)", "Model", "Device", "Analyst", "Upload images (JPEG, PNG, TIFF, GeoTIFF; "
           "xBD label .json with its .png)"]


def test_sidebar_widgets_stay_at_one_position_through_export_and_import(app_env: Path, tmp_path: Path) -> None:
    """A widget drawn at another position than in the run before is shown twice while the next run is under
    way (the old copy is removed only when that run ends): on a busy machine the browser test found two
    "Import a case archive (.zip)" uploaders. Preparing an archive (a download button appears), importing one
    (a note appears) must move no widget of the sidebar or the page."""
    at = new_app().run()
    before = _positions(at)
    assert all(label in before for label in WATCHED), sorted(before)
    ws = Workspace(app_env)
    archive = ws.export_case(at.session_state[S.CASE_ID], tmp_path / "case.zip")
    at.button(key="w_export_case").click().run()
    assert not at.exception, texts(at.exception)
    assert any(b.label.startswith("Download case-") for b in at.get("download_button"))
    prepared = _positions(at)
    uploader = next(u for u in at.file_uploader if u.label == "Import a case archive (.zip)")
    uploader.set_value([("case.zip", archive.read_bytes(), "application/zip")]).run()
    assert not at.exception, texts(at.exception)
    assert any("Imported case.zip" in t for t in texts(at.success)), texts(at.success)
    imported = _positions(at)
    after = _positions(at.run())
    for label in WATCHED:
        assert before[label] == prepared[label] == imported[label] == after[label], label


# -- names are text, never markdown --------------------------------------------------------------------------------
_LINK_OR_IMAGE = re.compile(r"!\[|(?<!\\)\]\(")  #: markdown's "![" or "](" with its bracket not escaped


def test_a_name_with_markdown_is_shown_as_text_on_every_page(app_env: Path) -> None:
    """Streamlit renders markdown in captions, alerts, toasts and headings, and a markdown image makes the browser
    fetch its URL: an upload named ``![beacon](https:x.y).png`` made every browser that showed the name call that host.
    Every element that renders markdown gets the name escaped."""
    at = new_app().run()
    names = ["![beacon](https:x.y).png", "![beacon](https:x.y) broken.png"]
    at.file_uploader[0].set_value([(names[0], _png(1), "image/png"), (names[1], b"not an image", "image/png")]).run()
    assert [s["name"] for s in at.session_state[S.STAGED]] == names
    at.button(key="run_analysis").click().run()
    assert not at.exception, texts(at.exception)
    for page in ("pages/analyze.py", "pages/map.py", "pages/report.py"):
        if page != "pages/analyze.py":
            at.switch_page(page).run()
        assert not at.exception, f"{page}: {texts(at.exception)}"
        rendered = [str(e.value) for kind in (at.markdown, at.caption, at.error, at.warning, at.info, at.success,
                                              at.subheader, at.toast) for e in kind]  # the markdown as sent
        shown = [t for t in rendered if "beacon" in t]
        assert page != "pages/analyze.py" or shown, "the test needs the names shown on the Analyze page"
        raw = [t for t in shown if _LINK_OR_IMAGE.search(t)]
        assert not raw, f"{page}: a name went into markdown unescaped: {raw}"
