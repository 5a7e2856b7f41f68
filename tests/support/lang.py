"""Language isolation for tests of translations: only $BDA_LANG (or an explicit ``use()``) decides."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import i18n


@pytest.fixture(autouse=True)
def no_front_end(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No language from an app session that ran earlier in this process (AppTest installs the app's lookup)."""
    monkeypatch.setattr(i18n, "_resolver", [])
    token = i18n._current.set(None)
    yield
    i18n._current.reset(token)
