"""Shared builders of the Models page tests: a session opened on the page, small AIDER folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.data import REPO

APP = REPO / "app.py"


def open_models_page() -> AppTest:
    """A new app session switched to the Models page (the environment says which workspace and model)."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.switch_page("pages/models.py").run()
    assert not at.exception, at.exception
    return at


def aider_subset(shared_data: Path, tmp: Path, counts: dict[str, int]) -> dict[str, Path]:
    """Folders of the first ``counts[sub]`` AIDER images of each class ``sub``, as links (the shared data stays
    where it is); skips the test when they are missing."""
    out = {}
    for sub, n in counts.items():
        files = sorted((shared_data / "aider" / sub).glob("*.jpg"))[:n]
        if len(files) < n:
            pytest.skip(f"AIDER {sub} images missing")
        d = tmp / sub
        d.mkdir()
        for f in files:
            (d / f.name).symlink_to(f)
        out[sub] = d
    return out
