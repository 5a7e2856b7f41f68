"""The server's own log lines: what the app's ``core`` and ``ui`` modules say, at ``$BDA_LOG_LEVEL``.

Streamlit configures only its own loggers; without this the app's lines below WARNING go nowhere. An operator sets
``BDA_LOG_LEVEL=INFO`` to see each upload arrive, be written and be staged (what to read when an analyst says a
file vanished), ``DEBUG`` for more. Unknown values fall back to WARNING with one line saying so.
"""

from __future__ import annotations

import logging
import os

ENV_LEVEL = "BDA_LOG_LEVEL"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_MARK = "_bda_handler"


def configure() -> None:
    """Send the ``core`` and ``ui`` loggers to stderr at ``$BDA_LOG_LEVEL`` (default WARNING); once per process."""
    raw = os.environ.get(ENV_LEVEL, "").strip().upper()
    level = raw if raw in _LEVELS else "WARNING"
    for name in ("core", "ui"):
        logger = logging.getLogger(name)
        if any(getattr(h, _MARK, False) for h in logger.handlers):
            continue
        handler = logging.StreamHandler()
        setattr(handler, _MARK, True)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    if raw and raw not in _LEVELS:
        log = logging.getLogger("ui")
        log.warning("%s=%r is not one of %s; using WARNING", ENV_LEVEL, raw, ", ".join(_LEVELS))
