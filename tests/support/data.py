"""Where the repository and the real data are, and skipping clearly when a real-data file is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Root of the repository.
REPO = Path(__file__).resolve().parents[2]
#: The real imagery of ../shared/data (``BDA_SHARED_DATA`` overrides it).
SHARED_DATA = Path(os.environ.get("BDA_SHARED_DATA", REPO.parent / "shared" / "data"))


def need(path: Path) -> Path:
    """Return ``path`` or skip the test with a clear reason when it is absent."""
    if not path.exists():
        pytest.skip(f"real data file missing: {path}")
    return path
