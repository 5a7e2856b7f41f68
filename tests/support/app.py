"""Streamlit AppTest support: the app in a test session, a small real model for it, a fresh workspace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from core.server_files.paths import ENV_SERVER_PATHS
from tests.support.data import REPO, need
from ui.model_cache import ENV_MODEL

APP = REPO / "app.py"
JOPLIN = Path("geotiff") / "joplin_tornado_xview2deploy"


def train_small(shared_data: Path, out: Path, arch: str = "fcdd-resnet18") -> Path:
    """A tiny model (a few steps at 64 px) on the real Joplin pre-event tiles: enough to run the app."""
    from core.learn.training import TrainConfig, train  # torch: only for the tests that use the model

    pre = need(shared_data / JOPLIN / "pre")
    train(TrainConfig(arch=arch, normal=[str(pre)], out=str(out), input_size=64, epochs=1, steps_per_epoch=3,
                      batch_size=4, optimizer="adam", device="cpu", name=out.stem), progress=lambda _: None)
    return out


@pytest.fixture(scope="session")
def small_model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small model of :func:`train_small`, trained once per test session."""
    return train_small(shared_data, tmp_path_factory.mktemp("model") / "app-test-fcdd.pt")


def server_like_reruns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``app.py`` on every AppTest run, as a server does.

    With a ``pages/`` folder beside the entry script Streamlit starts in its legacy multipage mode and runs a page
    file on its own until the first ``st.navigation`` call switches that mode off for the life of the process.
    AppTest switches it back on before every run, so from the second run on it would run the page file alone
    (no sidebar). The first-request case itself is covered by ``test_first_request_to_a_page_goes_through_app``.
    """
    original = PagesManager.__init__

    def init(self: PagesManager, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, small_model: Path) -> Path:
    """A fresh workspace folder and the small model as the default model; returns the workspace folder."""
    server_like_reruns(monkeypatch)
    root = tmp_path / "workspace"
    monkeypatch.setenv("BDA_WORKSPACE", str(root))
    monkeypatch.setenv(ENV_MODEL, str(small_model))
    monkeypatch.delenv(ENV_SERVER_PATHS, raising=False)
    return root


def new_app() -> AppTest:
    """A new browser session of the app."""
    return AppTest.from_file(str(APP), default_timeout=120)


def texts(elements) -> list[str]:
    """The values of AppTest elements as the browser shows them: markdown's backslash escapes (names and messages
    are escaped before they go into markdown, :mod:`ui.markdown_text`) taken out."""
    return [_ESCAPED.sub(r"\1", str(e.value)) for e in elements]


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  #: a backslash before ASCII punctuation (CommonMark)
