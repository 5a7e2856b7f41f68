"""The app's own log lines (``ui.server_log``): ``BDA_LOG_LEVEL`` sets what reaches the server log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from ui import server_log


@pytest.fixture
def fresh_loggers() -> Iterator[None]:
    """The ``core`` and ``ui`` loggers without the handler a test installs, as they were before it."""
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate)
             for n in ("core", "ui")}
    for n in saved:
        logging.getLogger(n).handlers = [h for h in logging.getLogger(n).handlers
                                         if not getattr(h, server_log._MARK, False)]
    yield
    for n, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(n)
        lg.handlers, lg.level, lg.propagate = handlers, level, propagate


def test_info_lines_reach_stderr_when_asked(fresh_loggers: None, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(server_log.ENV_LEVEL, "info")
    server_log.configure()
    server_log.configure()  # once per process: a second call adds no second handler
    logging.getLogger("ui.uploads").info("upload %r written", "a.tif")
    logging.getLogger("core.analysis").debug("not at INFO")
    err = capsys.readouterr().err
    assert err.count("INFO ui.uploads: upload 'a.tif' written") == 1 and "not at INFO" not in err


def test_the_default_keeps_only_warnings_and_a_wrong_level_says_so(
        fresh_loggers: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(server_log.ENV_LEVEL, "chatty")
    server_log.configure()
    logging.getLogger("ui.uploads").info("quiet")
    logging.getLogger("core.x").warning("loud")
    err = capsys.readouterr().err
    assert "'CHATTY' is not one of DEBUG, INFO, WARNING, ERROR; using WARNING" in err
    assert "quiet" not in err and "WARNING core.x: loud" in err
