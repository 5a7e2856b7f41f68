"""Shared fixtures: where the real data lives, and skipping clearly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BDA_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; tests that need real imagery skip with the reason when it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set BDA_SHARED_DATA or check out shared/ beside the repo)")
    return SHARED_DATA


def need(path: Path) -> Path:
    """Return ``path`` or skip the test with a clear reason when it is absent."""
    if not path.exists():
        pytest.skip(f"real data file missing: {path}")
    return path


@pytest.fixture(scope="session")
def tiny_model(shared_data, tmp_path_factory) -> Path:
    """A real fcdd-resnet18 trained for a few steps on Joplin pre tiles (confetti anomalies): fast, calibrated."""
    from core.training import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-model") / "tiny.pt"
    train(TrainConfig(arch="fcdd-resnet18", normal=[str(shared_data / "geotiff/joplin_tornado_xview2deploy/pre")],
                      out=str(out), input_size=64, epochs=1, steps_per_epoch=3, batch_size=4, optimizer="adam",
                      name="tiny", device="cpu"))
    return out


@pytest.fixture()
def ws(tmp_path: Path):
    """A fresh workspace in a temp folder, closed after the test."""
    from core.store import Workspace

    w = Workspace(tmp_path / "ws")
    yield w
    w.close()
