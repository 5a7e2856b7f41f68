"""Checkpoint files: weights plus JSON-safe metadata, loaded without ever unpickling code.

Layout of a checkpoint (a ``torch.save`` zip): ``{"format": FORMAT, "meta_json": str, "state_dict": {name: Tensor}}``.
Loading uses ``torch.load(weights_only=True)``, which refuses any pickled object that is not a tensor or a plain
container, so a hostile file is rejected before anything in it runs. The structure is then checked key by key.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from core.atomic_files import file_sha256
from core.errors import CheckpointError, ModelError
from core.i18n import _

FORMAT = "bda-workbench-checkpoint/1"
MAX_CHECKPOINT_BYTES = 2 * 1024**3


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    """Write a checkpoint atomically (temp file + rename); return its sha256.

    ``meta`` must be JSON-serialisable: it is stored as a JSON string, never as pickled Python objects.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(_("checkpoint metadata is not JSON-safe: {exc}").format(exc=exc)) from exc
    payload = {"format": FORMAT, "meta_json": meta_json,
               "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return file_sha256(path)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load and validate a checkpoint file; return ``(state_dict, meta)``.

    Raises :class:`CheckpointError` for a missing, empty, truncated, oversized, pickled-code-carrying or
    wrongly-structured file. Nothing inside the file is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(_("model file not found: {path}").format(path=path))
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(_("model file {name} is empty (0 bytes); upload the .pt file again").format(
                                  name=path.name))
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(_("model file {name} is {value:.1f} GB, larger than the 2 GB limit").format(
                                  name=path.name, value=size / 1e9))
    if not zipfile.is_zipfile(path):
        raise CheckpointError(_("{name} is not a PyTorch checkpoint (not a torch.save zip archive); it may be "
                                "truncated or a different file type").format(name=path.name))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(_("{name} was refused: it contains Python objects or code that a weights-only "
                                "checkpoint must not carry. Nothing in it was run. Use a checkpoint written by "
                                "`python -m core train`.").format(name=path.name)) from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise CheckpointError(_("{name} could not be read: it is truncated or corrupt ({name2}). Copy or upload "
                                "the file again.").format(name=path.name, name2=exc.__class__.__name__)) from exc
    return validate_payload(obj, path.name)


def validate_payload(obj: Any, name: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Check the structure of a loaded checkpoint payload and decode its metadata."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(_("{name} is not a BDA workbench checkpoint (expected format {format!r}); train one "
                                "with `python -m core train` or upload a file made by it").format(
                                  name=name, format=FORMAT))
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(_("{name} has no valid weights (state_dict must map names to tensors)").format(
                                  name=name))
    try:
        meta = json.loads(obj.get("meta_json", ""))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(_("{name} has unreadable metadata: {exc}").format(name=name, exc=exc)) from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("arch"), str):
        raise CheckpointError(_("{name} metadata lacks the architecture name ('arch')").format(name=name))
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(_("{name} has weights that are not finite numbers (NaN or infinity) in "
                                "{value}{value2}: training diverged or the file was damaged. Every image would "
                                "score nan and be called normal; retrain the model (e.g. with a lower learning "
                                "rate) or use another checkpoint.").format(
                                  name=name, value=', '.join(bad[:3]),
                                  value2=" " + _("and others") if len(bad) > 3 else ""))
    if meta.get("calibration") is not None:
        check_calibration(meta["calibration"], name)
    return state, meta


_CALIBRATION_KEYS = ("pixel_q50", "pixel_q99", "image_q50", "image_q99", "threshold", "image_threshold")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_calibration(cal: Any, name: str = "checkpoint") -> None:
    """Refuse (:class:`CheckpointError`) calibration statistics that are missing, not finite numbers, or not
    increasing (q99 above q50): scores calibrated with them would be nan, infinite or inverted."""
    def what(why: str) -> str:
        return _("{name} has unusable score calibration ({why}); recalibrate it by retraining with "
                 "`python -m core train`, or use another checkpoint").format(name=name, why=why)

    if not isinstance(cal, dict):
        raise CheckpointError(what(_("not a table of numbers")))
    missing = [k for k in _CALIBRATION_KEYS if k not in cal]
    if missing:
        raise CheckpointError(what(_("missing {keys}").format(keys=", ".join(missing))))
    quantiles = [v for k in ("pixel_quantiles", "image_quantiles") if isinstance(cal.get(k), dict)
                 for v in cal[k].values()]
    if not all(_finite(cal[k]) for k in _CALIBRATION_KEYS) or not all(_finite(v) for v in quantiles):
        raise CheckpointError(what(_("values that are not finite numbers (NaN or infinity)")))
    if not (cal["pixel_q99"] > cal["pixel_q50"] and cal["image_q99"] > cal["image_q50"]):
        raise CheckpointError(what(_("its 99th percentiles are not above its medians")))


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any], str]:
    """Build the network a checkpoint describes and load its weights; return ``(net, meta, sha256)``.

    A checkpoint whose weights do not fit its declared architecture (e.g. edited metadata, or weights of another
    arch) raises :class:`CheckpointError`.
    """
    from core.models import build_model

    state, meta = read_checkpoint(path)
    name = Path(path).name
    source = trunk_source_name(meta, name)
    try:
        net = build_model(meta["arch"], pretrained=source)
    except ModelError as exc:
        raise CheckpointError(_("{name}: {exc}").format(name=name, exc=exc)) from exc
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except (RuntimeError, ModelError) as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(_("{name} does not match architecture {arch!r}: its weights belong to a different "
                                "network ({value})").format(name=name, arch=meta['arch'], value=first[:200])) from exc
    # only trunk tensors may come from the installed source; everything else must be in the file
    lacking = [k for k in missing if source == "none" or not k.startswith("backbone.")]
    if unexpected or lacking:
        keys = ", ".join((unexpected or lacking)[:3])
        raise CheckpointError(_("{name} does not match architecture {arch!r}: its weights belong to a different "
                                "network ({value} keys: {keys})").format(
                                  name=name, arch=meta['arch'], value='unexpected' if unexpected else 'missing',
                                  keys=keys))
    net.eval()
    return net, meta, file_sha256(path)


def trunk_source_name(meta: dict[str, Any], name: str = "checkpoint") -> str:
    """The offline trunk source a checkpoint names (``meta["trunk_source"]``), checked; ``"none"`` when absent.

    Only the registered sources are accepted (a file never makes the loader read a path it names), and the recorded
    sha256 must be the installed source's, so a checkpoint always runs on the trunk it was trained on.
    """
    from core.models.pretrained import SOURCES

    info = meta.get("trunk_source")
    if info is None:
        return "none"
    src = SOURCES.get(info.get("name") if isinstance(info, dict) else None)  # type: ignore[arg-type]
    if src is None:
        raise CheckpointError(_("{name} needs the trunk source {info!r}, which this installation does not know; "
                                "known offline sources: {value}").format(
                                  name=name, info=info, value=', '.join(SOURCES)))
    if info.get("sha256") != src.sha256:
        raise CheckpointError(_("{name} was trained on another version of {name2} (sha256 {value}…, installed "
                                "{value2}…); use the matching package version").format(
                                  name=name, name2=src.name, value=str(info.get('sha256'))[:16],
                                  value2=src.sha256[:16]))
    return src.name
