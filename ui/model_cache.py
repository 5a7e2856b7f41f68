"""The models this server has loaded, shared by all sessions, and the sidebar's list of models to choose from.

A model loads in a background thread (torch is imported then: seconds on a fresh server), so a page draws before
it; whoever needs the model waits for it behind the "Loading the model…" spinner (:func:`get_detector`), and that
wait yields to the analyst's next click or upload (see :func:`wait`). Loads are keyed by checkpoint, device and
the file's modification time (a file replaced in place is loaded again); a failed load is kept like a loaded one,
so its error is shown on every run instead of the load being retried on every rerun.

Environment: ``BDA_MODEL`` names the checkpoint used as the default model instead of the bundled
``assets/models/patchcore-vgg16.pt`` (a deployment's own model, or a small test model).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from core.assets import DEFAULT_MODEL, bundled_models, card_title
from core.i18n import _
from core.store import Workspace
from ui import state as S

if TYPE_CHECKING:  # core.detection.detector imports torch: imported by the loading thread, after the page drew
    from core.detection.detector import Detector

#: Environment variable naming the default model's checkpoint.
ENV_MODEL = "BDA_MODEL"
#: How many loaded models (checkpoint x device) this server keeps.
MAX_MODELS = 4
#: How often a wait for a model looks for the analyst's next interaction (seconds).
POLL_S = 0.1

#: (checkpoint, device, file mtime) -> the load of that model, running or done (see :func:`start_loading`).
_MODELS: OrderedDict[tuple[str, str, float], Future[Detector]] = OrderedDict()
_LOCK = threading.Lock()
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bda-model-load")  # one load at a time: CPU-bound


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the sidebar's model list."""

    key: str  #: checkpoint path as text ("" = the default model)
    label: str
    path: Path | None  #: None = the default model
    arch: str = ""


def default_model_path() -> Path | None:
    """``$BDA_MODEL`` when set, else the bundled default checkpoint when it exists, else None."""
    env = os.environ.get(ENV_MODEL, "").strip()
    if env:
        return Path(env).expanduser()
    return DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None


def model_choices(ws: Workspace) -> list[ModelChoice]:
    """The default model (``$BDA_MODEL`` or the bundled one), the other bundled models, and every registered model
    whose file exists."""
    out: list[ModelChoice] = []
    default = default_model_path()
    if default is not None:
        src = "BDA_MODEL" if os.environ.get(ENV_MODEL, "").strip() else "bundled"
        out.append(ModelChoice("", _("Default model ({source}: {name})").format(
            source=src if src == "BDA_MODEL" else _("bundled"), name=default.name), None))
    seen = {str(default.resolve())} if default is not None and default.exists() else set()
    for path in bundled_models():  # the other bundled models: Deeper FCDD, HSC, feature matching, ...
        if str(path.resolve()) not in seen:
            seen.add(str(path.resolve()))
            out.append(ModelChoice(str(path), _("{title} (bundled: {name})").format(title=card_title(path),
                                                                                 name=path.name), path))
    for m in ws.list_models():
        if not m.get("exists"):
            continue
        path = Path(m["path"])
        if str(path.resolve()) in seen:
            continue
        seen.add(str(path.resolve()))
        arch = str(m.get("info", {}).get("arch", ""))
        from core.detection.detector import model_family  # torch: only once a trained model is registered

        out.append(ModelChoice(str(path), f"{m['name']} · {model_family(arch)} ({arch or '?'})", path, arch))
    return out


def _load(path: str, device: str) -> Detector:
    """Load a checkpoint ("" = the default model) on a device: runs in the loading thread."""
    from core.detection.detector import Detector  # torch is imported here, in the background

    return Detector.load(path or None, device=device)


def _mtime(path: Path | None) -> float:
    try:
        return path.stat().st_mtime if path is not None else 0.0
    except OSError:
        return 0.0


def _cache_key(model_key: str, device: str) -> tuple[str, str, float]:
    path = Path(model_key) if model_key else default_model_path()
    return ("", device, 0.0) if path is None else (str(path), device, _mtime(path))


def start_loading(model_key: str, device: str) -> Future[Detector]:
    """The load of a model choice ("" = default) on ``device``: started in the background unless this server has
    it already (loaded, loading, or failed to load)."""
    key = _cache_key(model_key, device)
    with _LOCK:
        fut = _MODELS.get(key)
        if fut is None:
            fut = _POOL.submit(_load, key[0], key[1])
            _MODELS[key] = fut
            done = [k for k, f in _MODELS.items() if f.done() and k != key]
            for old in done[:max(0, len(_MODELS) - MAX_MODELS)]:  # the oldest loaded ones go first
                del _MODELS[old]
        else:
            _MODELS.move_to_end(key)
        return fut


def model_loaded(model_key: str, device: str) -> bool:
    """Whether this server has finished loading that model on that device (then nothing waits for it; a failed
    load counts as finished: its error is known)."""
    with _LOCK:
        fut = _MODELS.get(_cache_key(model_key, device))
    return fut is not None and fut.done()


def wait(fut: Future[Detector]) -> None:
    """Wait for a load, yielding to the session's next interaction: reading the session state lets Streamlit stop
    this run for the rerun a click or an upload asks for (the load goes on in its thread), so nothing the analyst
    does while the model loads is held back or lost."""
    while not fut.done():
        try:
            fut.exception(timeout=POLL_S)
        except TimeoutError:
            pass
        S.SHELL in st.session_state  # noqa: B015 - a Streamlit yield point (see the docstring)


def get_detector(model_key: str, device: str) -> Detector:
    """The :class:`Detector` of a model choice ("" = default) on ``device``, loaded once per server and shared by
    all sessions; the first time behind the "Loading the model…" spinner at the caller's place. Raises
    :class:`CoreError` (``""`` without a default model: the "bundled model missing" error)."""
    fut = start_loading(model_key, device)
    if not fut.done():
        with st.spinner(_("Loading the model…")):
            wait(fut)
    return fut.result()
