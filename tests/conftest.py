"""Shared fixtures: the real data (skipping clearly when it is absent), a tiny trained model, a workspace, the
report inputs. Helpers live in tests/support/."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app import app_env, small_model  # noqa: F401 - fixtures of the AppTest tests
from tests.support.data import SHARED_DATA
from tests.support.report import report_ctx  # noqa: F401 - the session fixture of the report tests


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; tests that need real imagery skip with the reason when it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set BDA_SHARED_DATA or check out shared/ beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model(shared_data, tmp_path_factory) -> Path:
    """A real fcdd-resnet18 trained for a few steps on Joplin pre tiles (confetti anomalies): fast, calibrated."""
    from core.learn.training import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-model") / "tiny.pt"
    train(TrainConfig(arch="fcdd-resnet18", normal=[str(shared_data / "geotiff/joplin_tornado_xview2deploy/pre")],
                      out=str(out), input_size=64, epochs=1, steps_per_epoch=3, batch_size=4, optimizer="adam",
                      name="tiny", device="cpu"))
    return out


@pytest.fixture(autouse=True, scope="session")
def _component_scan_once() -> Iterator[None]:
    """Every new AppTest scans all installed packages for Streamlit components (~0.1-0.2 s of CPU each time, the
    same answer every time in one session): scan once per session."""
    from streamlit.components.v2 import manifest_scanner

    mp = pytest.MonkeyPatch()
    mp.setattr(manifest_scanner, "scan_component_manifests", functools.cache(manifest_scanner.scan_component_manifests))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords hashed with argon2id at its cheapest parameters in tests (argon2's own test profile): the users'
    default, 64 MiB and 3 passes, costs ~0.1-0.3 s per hash or login. A test that asks for the fixture
    ``production_hashes`` sees the parameters users get."""
    if "production_hashes" in request.fixturenames:
        return
    from argon2 import PasswordHasher, profiles

    from core.store import users

    monkeypatch.setattr(users, "_HASHER", PasswordHasher.from_parameters(profiles.CHEAPEST))
    monkeypatch.setattr(users, "_DUMMY", [])


@pytest.fixture()
def production_hashes() -> None:
    """Opt out of :func:`_cheap_password_hashes`: passwords are hashed as for users."""


@pytest.fixture()
def ws(tmp_path: Path):
    """A fresh workspace in a temp folder, closed after the test."""
    from core.store import Workspace

    w = Workspace(tmp_path / "ws")
    yield w
    w.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reads the real data (through the ``shared_data`` fixture, directly or via another
    fixture such as ``tiny_model``) or drives a browser as ``slow``: the fast lane, ``pytest -m "not slow"``, runs
    on synthetic fixtures only."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()) or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
