"""The Streamlit shell: every page renders, the sidebar (case, model, device, threshold), settings, input helpers.

The app runs in-process with Streamlit's AppTest against a temporary workspace (``BDA_WORKSPACE``) and a small
FCDD model trained here on real Joplin pre-event tiles (``BDA_MODEL``), so no bundled weights are needed.
Fixtures defined here are imported by the other app test modules.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import tomllib
import torch
from streamlit.testing.v1 import AppTest

from core.detection.detector import model_family
from core.errors import CheckpointError, InputError
from core.server_files.paths import ENV_SERVER_PATHS, check_server_path
from core.store import Workspace
from tests.support.app import APP, new_app, texts, train_small
from tests.support.data import REPO
from ui import model_cache, uploads
from ui import state as S

torch.set_num_threads(1)

PAGES = ["pages/analyze.py", "pages/map.py", "pages/report.py", "pages/models.py"]


# -- every page ------------------------------------------------------------------------------------------------
def test_every_page_renders_without_exception(app_env: Path) -> None:
    at = new_app().run()
    assert not at.exception, texts(at.exception)
    assert at.title[0].value == "Analyze"  # the default page
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, f"{page}: {texts(at.exception)}"
        assert not at.error, f"{page}: {texts(at.error)}"


def test_the_first_model_load_comes_after_the_page_then_fills_in_the_sidebar(app_env: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """On a fresh server the page draws while the model loads in the background; after the page the run waits for
    the model (behind the sidebar's spinner) and then draws the device, model and threshold in the sidebar."""
    monkeypatch.setattr(model_cache, "_MODELS", OrderedDict())  # as on a fresh server: no model loaded yet
    assert not model_cache.model_loaded("", "auto")
    at = new_app().run()
    assert not at.exception, texts(at.exception)
    assert [t.value for t in at.title] == ["Analyze"]
    assert at.get("file_uploader") and model_cache.model_loaded("", "auto")
    assert at.sidebar.slider(key=S.W_THRESHOLD) is not None and at.session_state[S.MODEL_SLOT] is None
    assert not [c for c in texts(at.sidebar.caption) if "Loading the model" in c]


def test_first_request_to_a_page_goes_through_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  small_model: Path) -> None:
    monkeypatch.setenv("BDA_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv(model_cache.ENV_MODEL, str(small_model))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.switch_page("pages/report.py").run()  # legacy mode: the page file runs first, on its own
    assert not at.exception
    assert at.title[0].value == "Analyze"  # sent through app.py: navigation, sidebar, default page
    assert at.sidebar.selectbox(key=S.W_MODEL) is not None
    assert at.session_state[S.SHELL] is True


def test_report_page_without_analysis_says_what_to_do(app_env: Path) -> None:
    at = new_app().run()
    at.switch_page("pages/report.py").run()
    assert not at.exception
    assert any("analyse images on the Analyze page" in t for t in texts(at.info))


# -- sidebar ---------------------------------------------------------------------------------------------------
def test_sidebar_case_model_device_threshold(app_env: Path, small_model: Path) -> None:
    at = new_app().run()
    ws = Workspace(app_env)
    cases = ws.list_cases()
    assert len(cases) == 1 and at.session_state[S.CASE_ID] == cases[0]["id"]  # first use creates a case
    model = at.sidebar.selectbox(key=S.W_MODEL)
    assert model.value == "" and "BDA_MODEL" in model.options[model.index]
    assert at.sidebar.selectbox(key=S.W_DEVICE).value == "auto"
    if not torch.cuda.is_available():
        assert any("CPU" in w and "slower" in w for w in texts(at.sidebar.warning))
    det = model_cache.get_detector("", "auto")
    assert det.path == small_model
    slider = at.sidebar.slider(key=S.W_THRESHOLD)
    assert slider.value == pytest.approx(round(det.calibration.threshold, 2))
    slider.set_value(0.7).run()
    assert at.session_state[S.THRESHOLD] == pytest.approx(0.7)
    at.run()  # the choice survives reruns
    assert at.sidebar.slider(key=S.W_THRESHOLD).value == pytest.approx(0.7)


def test_new_case_becomes_current(app_env: Path) -> None:
    at = new_app().run()
    at.sidebar.text_input(key=S.W_NEW_CASE).input("Joplin tornado")
    at.sidebar.button[0].click().run()  # the form's submit button
    assert not at.exception
    ws = Workspace(app_env)
    names = {c["id"]: c["name"] for c in ws.list_cases()}
    assert names[at.session_state[S.CASE_ID]] == "Joplin tornado"
    case_box = at.sidebar.selectbox(key=S.W_CASE)
    assert "Joplin tornado" in case_box.options[case_box.index]


def test_registered_models_are_offered_with_their_family(app_env: Path, shared_data: Path, tmp_path: Path) -> None:
    hsc = train_small(shared_data, tmp_path / "hsc-small.pt", arch="hsc-resnet18")
    ws = Workspace(app_env)
    ws.register_model(hsc, {"name": "hsc-small", "arch": "hsc-resnet18"})
    at = new_app().run()
    box = at.sidebar.selectbox(key=S.W_MODEL)
    labels = box.options  # as displayed
    assert any("hsc-small" in lab and "HSC" in lab for lab in labels), labels
    box.set_value(str(hsc)).run()
    assert not at.exception and not at.error
    assert at.session_state[S.MODEL_PATH] == str(hsc)
    assert any("HSC" in c for c in texts(at.sidebar.caption))


def test_unusable_model_is_an_error_not_a_traceback(app_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    monkeypatch.setenv(model_cache.ENV_MODEL, str(bad))
    at = new_app().run()
    assert not at.exception
    assert any(t.startswith("Model:") for t in texts(at.sidebar.error))


def test_model_family_names() -> None:
    assert model_family("fcdd-vgg11") == "FCDD"
    assert model_family("fcdd-vgg16") == "Deeper FCDD"
    assert model_family("hsc-resnet50") == "HSC"
    assert model_family("fcdd-unknown") == "fcdd-unknown"  # from the registry's facts, not the name's prefix
    assert model_family("") == "model"


# -- settings and house rules ----------------------------------------------------------------------------------
def test_streamlit_config_is_offline_and_allows_large_uploads() -> None:
    text = (REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8")
    cfg = tomllib.loads(text)
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"]["maxUploadSize"] >= 2048
    assert cfg["server"]["fileWatcherType"] == "none"
    assert cfg["client"]["showSidebarNavigation"] is False  # app.py draws the menu; no list of pages/ files first
    assert cfg["server"]["address"] == "127.0.0.1"  # issue 12: no longer every interface by default
    assert not re.search(r"https?://", text), "nothing in the settings may point at the network"


def test_state_keys_are_declared_once() -> None:
    keys = [v for k, v in vars(S).items() if k.isupper() and isinstance(v, str)]
    assert len(keys) == len(set(keys)), "two names share one session-state key"
    assert set(S.DEFAULTS) <= set(keys)


def test_core_never_imports_streamlit() -> None:
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "core").rglob("*.py")
                 if re.search(r"^\s*(import|from)\s+streamlit", p.read_text(encoding="utf-8"), re.M)]
    assert offenders == []


def test_core_never_imports_the_dashboard() -> None:
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "core").rglob("*.py")
                 if re.search(r"^\s*(import|from)\s+(ui|pages)\b", p.read_text(encoding="utf-8"), re.M)]
    assert offenders == []


@pytest.mark.slow  # imports the dashboard in a fresh interpreter
def test_the_shell_and_page_widgets_load_without_torch() -> None:
    """The menu and the sidebar's case list draw before the model (and torch, seconds to import) is loaded."""
    code = ("import sys, ui.shell, ui.sidebar, ui.model_cache, ui.analyze_inputs, ui.analyze_run, ui.analyze_results, "
            "ui.uploads, ui.compare, ui.images, ui.placement, ui.area_fit, core.analysis.run, "
            "core.server_files.typed_paths, core.server_files.xbd_folders; "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_pages_folder_holds_only_the_apps_pages() -> None:
    """Streamlit lists every file of pages/ before app.py's menu is drawn: helpers live in ui/, not there."""
    menu = re.findall(r'"(pages/\w+\.py)"', (REPO / "app.py").read_text(encoding="utf-8"))
    present = sorted(f"pages/{p.name}" for p in (REPO / "pages").iterdir() if p.name != "__pycache__")
    assert menu and present == sorted(menu)


# -- input helpers ---------------------------------------------------------------------------------------------
def test_save_upload_writes_safe_unique_names(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    case = ws.create_case("c")
    data = os.urandom(3 * (1 << 20) + 17)  # several chunks
    a = uploads.save_upload(ws, case, io.BytesIO(data), "../../etc/passwd.tif")
    b = uploads.save_upload(ws, case, io.BytesIO(b"x"), "../../etc/passwd.tif")
    folder = ws.uploads_dir(case)
    assert a.parent == folder and b.parent == folder and a != b
    assert a.read_bytes() == data and b.read_bytes() == b"x"
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]


class _Upload(io.BytesIO):
    """What Streamlit's uploader returns: the bytes with a name and a file id."""

    def __init__(self, data: bytes, name: str, file_id: str) -> None:
        super().__init__(data)
        self.name, self.file_id = name, file_id


class _RunStopped(Exception):
    """Stands for Streamlit stopping a run at a session-state access (the next run was asked for)."""


def test_an_upload_whose_hand_over_was_stopped_is_staged_by_the_next_run(tmp_path: Path) -> None:
    """Every session-state access can stop a run. An upload written to disk whose run stopped before the page
    took it (staged it) was marked done and never staged: lost on a busy server. The next run hands it over,
    without writing it again, and a later run does not hand it over twice."""
    ws = Workspace(tmp_path / "ws")
    case = ws.create_case("c")
    ctx = type("Ctx", (), {"ws": ws, "case_id": case})()
    S.put(S.SAVED_UPLOADS, {})
    S.put(S.UPLOAD_ERRORS, [])
    taken: list[Path] = []

    def stage(name: str, path: Path) -> None:
        taken.append(path)
        if len(taken) == 1:
            raise _RunStopped

    f = _Upload(b"\x89PNG data", "a.png", "id-1")
    with pytest.raises(_RunStopped):
        uploads.save_uploads(ctx, [f], stage, types=["png"])  # type: ignore[arg-type]
    uploads.save_uploads(ctx, [f], stage, types=["png"])  # type: ignore[arg-type]
    uploads.save_uploads(ctx, [f], stage, types=["png"])  # type: ignore[arg-type]
    assert len(taken) == 2 and taken[0] == taken[1]
    assert [p.name for p in ws.uploads_dir(case).iterdir()] == ["a.png"]


def test_check_server_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SERVER_PATHS, raising=False)
    f = tmp_path / "img.tif"
    f.write_bytes(b"II*\x00")
    assert check_server_path(f" '{f}' ") == f
    for bad, words in (("", "type the full path"), ("relative/x.tif", "not an absolute path"),
                       (str(tmp_path / "missing.tif"), "does not exist"), (str(tmp_path), "not a file"),
                       (f"{f}\n/etc/passwd", "control characters"),
                       ("~no_such_user_here_42/x.tif", "home folder this server does not know")):
        with pytest.raises(InputError, match=words):
            check_server_path(bad)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv(ENV_SERVER_PATHS, str(allowed))
    with pytest.raises(InputError, match=f"outside the folders.*{ENV_SERVER_PATHS}"):
        check_server_path(str(f))


def test_a_failed_model_load_is_kept_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A load runs in the background; its failure is remembered (shown on every run, never retried in a loop)
    until the checkpoint file changes."""
    monkeypatch.setattr(model_cache, "_MODELS", OrderedDict())
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    fut = model_cache.start_loading(str(bad), "cpu")
    assert fut.exception(timeout=120) is not None and isinstance(fut.exception(), CheckpointError)
    assert model_cache.model_loaded(str(bad), "cpu")
    assert model_cache.start_loading(str(bad), "cpu") is fut  # not loaded again on the next run
    os.utime(bad, (bad.stat().st_atime, bad.stat().st_mtime + 5))  # the file was replaced in place
    assert not model_cache.model_loaded(str(bad), "cpu")
    assert model_cache.start_loading(str(bad), "cpu") is not fut
