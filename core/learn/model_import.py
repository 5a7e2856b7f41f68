"""Checkpoints into the workspace's model list: the card registered for a checkpoint, and an uploaded checkpoint
loaded safely and registered.

:func:`model_info` is what the workspace records about a checkpoint (from its metadata) whether it was trained here
(:mod:`core.learn.jobs`), bundled or uploaded; :func:`import_checkpoint` registers an uploaded file after loading it
with ``weights_only`` (a file carrying pickled code is refused and nothing in it runs).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import IO, Any

from core.file_names import safe_filename
from core.models.checkpoint import load_model
from core.store import Workspace
from core.store.job_uploads import write_upload


def model_info(meta: dict[str, Any], *, source: str, job_id: int | None = None) -> dict[str, Any]:
    """What the workspace registers about a checkpoint: its card, from the checkpoint's metadata."""
    tr = meta.get("training", {}) or {}
    hist = tr.get("history") or []
    cal = meta.get("calibration") or {}
    return {"name": meta.get("name") or "model", "arch": meta.get("arch", "?"), "objective": meta.get("objective"),
            "version": meta.get("version"), "input_size": meta.get("input_size"), "source": source,
            "job_id": job_id, "created": meta.get("created"), "threshold": cal.get("threshold"),
            "calibration": cal, "evaluation": meta.get("evaluation", {}),
            "training": {"epochs": len(hist), "final_loss": hist[-1]["loss"] if hist else None,
                         "seconds": tr.get("seconds"), "samples": tr.get("samples"),
                         "normal": tr.get("normal"), "anomalies": tr.get("anomalies"),
                         "stopped_early": tr.get("stopped_early"), "feature_bank": tr.get("feature_bank")}}


def import_checkpoint(ws: Workspace, filename: str, data: bytes | IO[bytes], *, name: str = "",
                      registered_by: str | None = None) -> int:
    """Register an uploaded checkpoint: written to the workspace, loaded SAFELY (weights only: a file carrying
    pickled code is refused with :class:`~core.errors.CheckpointError` and nothing in it runs), checked against its
    declared architecture, copied into the models folder and registered. Returns the model id."""
    tmp = ws.root / "tmp" / f"upload-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    path = tmp / safe_filename(Path(str(filename)).name, default="model.pt")
    try:
        write_upload(path, data)
        _net, meta, _cal = load_model(path)
        info = model_info(meta, source="uploaded")
        info["name"] = name.strip() or meta.get("name") or Path(str(filename)).stem or "uploaded model"
        return ws.register_model(path, info, copy=True, registered_by=registered_by)
    finally:
        path.unlink(missing_ok=True)
        tmp.rmdir()
