"""Background jobs: model training and evaluation (image sets or an xBD folder) in threads whose state lives in
the workspace database.

A job is a row of the workspace's ``jobs`` table (status, progress, message, result) plus a log (one entry per
epoch: the live loss curve). The thread writes every change there, so a page that is left and reopened, a browser
refresh, or another session sees the same job; if the server process dies, the workspace marks its jobs
``interrupted`` the next time it is opened. One :class:`JobRunner` per workspace folder per process
(:func:`runner`) owns the threads. Cancelling sets a flag in the database that the worker checks between
training steps (or between evaluated files); a cancelled training registers no model and leaves no checkpoint.

Nothing here imports streamlit: the CLI or a notebook can start and follow the same jobs.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import math
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.errors import CheckpointError, CoreError, InputError
from core.file_names import safe_filename
from core.i18n import _
from core.learn.model_import import model_info
from core.learn.training import TrainConfig
from core.models.checkpoint import load_model
from core.store import Workspace
from core.store.jobs import ACTIVE  # noqa: F401 - re-exported: pages and tests read jobs.ACTIVE

log = logging.getLogger(__name__)

TRAIN = "train"
EVALUATE = "evaluate"
_CANCEL_POLL_S = 0.5  #: how often a worker looks at the database's cancel flag


class _Cancelled(Exception):
    """Raised inside a worker when the user cancelled its job."""


class JobRunner:
    """Starts training and evaluation jobs in daemon threads for one workspace folder and tracks them."""

    def __init__(self, root: str | Path) -> None:
        self.ws = Workspace(root)
        self._threads: dict[int, threading.Thread] = {}
        self._stop: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    # -- starting -----------------------------------------------------------------------------------------------
    def start_training(self, cfg: TrainConfig) -> int:
        """Start training ``cfg`` in the background; returns the job id.

        The checkpoint is written into the workspace's models folder (``cfg.out`` is replaced) and registered
        there when training ends. Only one training runs at a time per process (they would share one GPU).
        """
        busy = [j for j in self.alive() if self.ws.get_job(j)["kind"] == TRAIN]
        if busy:
            raise InputError(_("training job #{value} is still running; wait for it to finish or cancel it before "
                               "starting another one").format(value=busy[0]))
        name = cfg.name.strip() or f"{cfg.arch}-{datetime.now(timezone.utc):%Y%m%d-%H%M}"
        stamp = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        out = self.ws.models_dir() / f"{safe_filename(name, default='model')}-{stamp}.pt"
        cfg = dataclasses.replace(cfg, name=name, out=str(out))
        jid = self.ws.create_job(TRAIN, {"config": dataclasses.asdict(cfg)})
        self._spawn(jid, self._train, cfg)
        return jid

    def start_evaluation(self, normal: list[str], anomalous: list[str], *, model_path: str | Path | None = None,
                         device: str = "auto", patch: int | None = None, detector: Any = None) -> int:
        """Evaluate a model (``model_path``; None = the default model) on labelled data in the background.

        ``normal`` / ``anomalous``: files, folders or globs. ``detector``: an already loaded
        :class:`core.detection.detector.Detector` of that model to reuse instead of loading the checkpoint again.
        Returns the job id; the result holds ``auroc``, ROC points ``fpr``/``tpr``, scores and labels.
        """
        if not normal or not anomalous:
            raise InputError(_("evaluation needs both normal and anomalous images (files or folders)"))
        params = {"model_path": str(model_path) if model_path else "", "normal": [str(p) for p in normal],
                  "anomalous": [str(p) for p in anomalous], "device": device, "patch": patch}
        jid = self.ws.create_job(EVALUATE, params)
        self._spawn(jid, self._evaluate, params, detector)
        return jid

    def start_xbd_evaluation(self, root: str | Path, *, model_path: str | Path | None = None, device: str = "auto",
                             tile: int = 256, detector: Any = None, note: str | dict[str, Any] = "") -> int:
        """Evaluate a model on an xBD-layout folder (``images/*_post_disaster.png`` + ``labels/*.json``) in the
        background with :func:`core.learn.evaluation.evaluate_xbd`: building-level AUROC (damaged vs no-damage) and
        ``tile``-px tile-level AUROC. ``note``: a remark about the data kept with the result (e.g. unlabelled images).
        Returns the job id; the result holds both AUROCs, their counts and the building ROC (``fpr``/``tpr``)."""
        root = Path(root)
        if not (root / "images").is_dir():
            raise InputError(_("{root} has no images/ folder; give an xBD folder holding images/ and labels/").format(
                                 root=root))
        if not 32 <= int(tile) <= 4096:
            raise InputError(_("tile size {tile} px is outside 32 … 4096; 256 is the usual").format(tile=tile))
        params = {"model_path": str(model_path) if model_path else "", "xbd": str(root), "device": device,
                  "tile": int(tile), "note": note if isinstance(note, dict) else str(note)}
        jid = self.ws.create_job(EVALUATE, params)
        self._spawn(jid, self._evaluate_xbd, params, detector)
        return jid

    def _spawn(self, jid: int, target: Any, *args: Any) -> None:
        stop = threading.Event()
        t = threading.Thread(target=contextvars.copy_context().run, args=(self._run, jid, stop, target, *args),
                             name=f"bda-job-{jid}", daemon=True)  # in the starter's context: its language
        with self._lock:
            self._threads[jid], self._stop[jid] = t, stop
        t.start()

    # -- following and stopping ---------------------------------------------------------------------------------
    def alive(self) -> list[int]:
        """Ids of jobs whose thread is running in this process."""
        with self._lock:
            return [j for j, t in self._threads.items() if t.is_alive()]

    def is_alive(self, job_id: int) -> bool:
        """Whether the job's thread runs in this process."""
        with self._lock:
            t = self._threads.get(int(job_id))
        return t is not None and t.is_alive()

    def cancel(self, job_id: int) -> None:
        """Ask a job to stop (also works for a job of another process sharing the workspace)."""
        self.ws.request_cancel(job_id)
        with self._lock:
            ev = self._stop.get(int(job_id))
        if ev is not None:
            ev.set()

    def wait(self, job_id: int, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job's thread ends (or ``timeout`` s pass); return the job as stored."""
        with self._lock:
            t = self._threads.get(int(job_id))
        if t is not None:
            t.join(timeout)
        return self.ws.get_job(job_id)

    # -- workers ------------------------------------------------------------------------------------------------
    def _should_stop(self, jid: int, stop: threading.Event) -> Any:
        last = [0.0]

        def check() -> bool:
            if stop.is_set():
                return True
            now = time.monotonic()
            if now - last[0] >= _CANCEL_POLL_S:
                last[0] = now
                if self.ws.get_job(jid)["cancel_requested"]:
                    stop.set()
            return stop.is_set()
        return check

    def _run(self, jid: int, stop: threading.Event, target: Any, *args: Any) -> None:
        try:
            self.ws.update_job(jid, status="running", progress=0.0, message=_("starting"))
            target(jid, self._should_stop(jid, stop), *args)
        except _Cancelled as exc:
            self.ws.update_job(jid, status="cancelled", message=str(exc) or _("cancelled by the user"))
        except CoreError as exc:
            self.ws.update_job(jid, status="failed", message=str(exc))
        except BaseException as exc:  # a worker thread must always leave a final status behind
            log.exception("job %s failed", jid)
            self.ws.update_job(jid, status="failed", message=_(
                "internal error ({kind}: {exc}); see the server log").format(kind=type(exc).__name__, exc=exc))
        finally:
            self.ws.close()  # this thread's database connection

    def _train(self, jid: int, should_stop: Any, cfg: TrainConfig) -> None:
        from core.learn.training import train

        self.ws.update_job(jid, message=_("reading training images"))

        def progress(ev: dict[str, Any]) -> None:
            if ev.get("event") == "embed":  # feature matching: embedding the normal imagery, then the coreset
                self.ws.update_job(jid, progress=0.8 * ev["done"] / max(ev["total"], 1),
                                   message=_("embedding normal imagery: {done}/{total} windows, {cells} cells")
                                   .format(done=ev["done"], total=ev["total"], cells=ev["cells"]))
                return
            if ev.get("event") == "coreset":
                self.ws.update_job(jid, progress=0.8, message=_("choosing the feature bank: {bank} of {cells} normal "
                                                                "cells").format(bank=ev["bank"], cells=ev["cells"]))
                return
            if ev.get("event") != "epoch":
                return
            entry: dict[str, Any] = {k: ev[k] for k in ("epoch", "epochs", "loss", "lr", "seconds", "samples")
                                     if k in ev}
            self.ws.update_job(jid, progress=min(ev["epoch"] / max(ev["epochs"], 1), 0.99),
                               message=_("epoch {epoch}/{epochs} · loss {loss:.4f}").format(
                                   epoch=ev["epoch"], epochs=ev["epochs"], loss=ev["loss"]),
                               log_append=entry)

        meta = train(cfg, progress=progress, should_stop=should_stop)
        out = Path(meta["path"])
        if should_stop():
            out.unlink(missing_ok=True)
            raise _Cancelled(_("cancelled after epoch {history}; no model was saved").format(
                                 history=len(meta['training']['history'])))
        try:
            load_model(out)  # a diverged run (NaN weights or calibration) is refused, not registered
        except CheckpointError:
            out.unlink(missing_ok=True)
            raise
        model_id = self.ws.register_model(out, model_info(meta, source="trained", job_id=jid))
        self.ws.update_job(jid, status="done", progress=1.0, message=_("model #{id} registered").format(id=model_id),
                           result={"model_id": model_id, "path": str(out), "sha256": meta["sha256"],
                                   "name": meta["name"]})

    def _detector(self, jid: int, params: dict[str, Any], detector: Any) -> Any:
        """The job's detector: the one handed over, else its checkpoint loaded."""
        from core.detection.detector import Detector

        if detector is not None:
            return detector
        self.ws.update_job(jid, message=_("loading the model"))
        return Detector.load(params["model_path"] or None, device=params["device"])

    def _scoring_progress(self, jid: int, should_stop: Any) -> Any:
        """A ``progress(k, n, name)`` for the evaluation functions: job progress per image, and the cancel check."""
        def progress(k: int, n: int, name: str) -> None:
            if should_stop():
                raise _Cancelled(_("cancelled after {k} of {n} images").format(k=k, n=n))
            self.ws.update_job(jid, progress=k / max(n, 1),
                               message=_("scoring {name} ({k}/{n})").format(name=name, k=k + 1, n=n))
        return progress

    def _evaluate(self, jid: int, should_stop: Any, params: dict[str, Any], detector: Any) -> None:
        from core.learn.evaluation import evaluate_images, roc_curve

        det = self._detector(jid, params, detector)
        res = evaluate_images(det, params["normal"], params["anomalous"], patch=params["patch"],
                              progress=self._scoring_progress(jid, should_stop))
        fpr, tpr = roc_curve(res["scores"], res["labels"])
        auroc = res["auroc"] if math.isfinite(res["auroc"]) else None
        result = {k: res[k] for k in ("n_normal", "n_anomalous", "unit", "scores", "labels", "skipped")}
        result |= {"auroc": auroc, "fpr": [round(float(v), 6) for v in fpr], "tpr": [round(float(v), 6) for v in tpr],
                   "model": {"name": det.name, "sha256": det.sha256, "arch": det.arch}}
        self.ws.update_job(jid, status="done", progress=1.0, result=result,
                           message="AUROC " + (f"{auroc:.3f}" if auroc is not None else _("n/a (one class is empty)")))


    def _evaluate_xbd(self, jid: int, should_stop: Any, params: dict[str, Any], detector: Any) -> None:
        from core.learn.evaluation import evaluate_xbd, roc_curve

        det = self._detector(jid, params, detector)
        res = evaluate_xbd(det, params["xbd"], tile=params["tile"], progress=self._scoring_progress(jid, should_stop))
        if should_stop():  # asked during the last image
            raise _Cancelled(_("cancelled while scoring the last image; nothing was recorded"))
        fpr, tpr = roc_points(*roc_curve(res["building_scores"], res["building_labels"]))
        b_auroc, t_auroc = (v if math.isfinite(v) else None for v in (res["building_auroc"], res["tile_auroc"]))
        result = {k: res[k] for k in ("n_damaged", "n_undamaged", "n_tiles", "n_damaged_tiles", "images")}
        result |= {"data": "xbd", "folder": params["xbd"], "tile": params["tile"], "note": params.get("note", ""),
                   "building_auroc": b_auroc, "tile_auroc": t_auroc, "fpr": fpr, "tpr": tpr,
                   "model": {"name": det.name, "sha256": det.sha256, "arch": det.arch}}

        def fmt(v: float | None) -> str:
            return f"{v:.3f}" if v is not None else "n/a"
        self.ws.update_job(jid, status="done", progress=1.0, result=result,
                           message=_("building AUROC {b} · tile AUROC {t}").format(b=fmt(b_auroc), t=fmt(t_auroc)))


def roc_points(fpr: Any, tpr: Any, *, max_points: int = 2000) -> tuple[list[float], list[float]]:
    """An ROC curve small enough to store with a job: the points inside straight runs dropped (the drawn curve is
    unchanged), then, if still longer than ``max_points``, an even subsample that keeps both ends."""
    import numpy as np

    f, t = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    if len(f) > 2:
        df, dt = np.diff(f), np.diff(t)
        turn = (df[1:] * dt[:-1] - dt[1:] * df[:-1]) != 0  # the direction changes at the point between
        keep = np.concatenate([[True], turn, [True]])
        f, t = f[keep], t[keep]
    if len(f) > max_points:
        idx = np.unique(np.linspace(0, len(f) - 1, max_points).round().astype(int))
        f, t = f[idx], t[idx]
    return [round(float(v), 6) for v in f], [round(float(v), 6) for v in t]


_RUNNERS: dict[Path, JobRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def runner(root: str | Path) -> JobRunner:
    """The process-wide :class:`JobRunner` of a workspace folder (created on first use)."""
    key = Path(root).expanduser().absolute()
    with _RUNNERS_LOCK:
        r = _RUNNERS.get(key)
        if r is None:
            r = _RUNNERS[key] = JobRunner(key)
        return r


# -- evaluations of a model ------------------------------------------------------------------------------------
def model_evaluations(ws: Workspace, sha256: str) -> list[dict[str, Any]]:
    """Finished evaluation jobs of the model with this sha256, newest first (job dicts with their result; an xBD
    evaluation's result has ``data == "xbd"`` and building / tile AUROCs instead of ``auroc``)."""
    return [j for j in ws.list_jobs(kind=EVALUATE, status="done", limit=500)
            if isinstance(j.get("result"), dict) and j["result"].get("model", {}).get("sha256") == sha256]
