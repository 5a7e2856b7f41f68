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
