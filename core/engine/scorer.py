"""The model worker of a distributed run: loads the model once, then scores batches of window tasks.

Ray Data runs one :class:`TileScorer` per worker (``map_batches`` with a callable class on an actor pool): the
constructor loads the checkpoint (on the worker's GPU when it has one, in bf16 there), every call reads the batch's
windows from the files, pads them like the local engine, scores them and returns calibrated score maps (NaN where
the pixels are not valid) with the raw image scores. It imports torch (through the detector) but never Ray.
"""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict
from typing import Any

import numpy as np

from core.detection.tile_grid import pad_to
from core.engine.tasks import task_plan, task_window


class TileScorer:
    """Stateful scorer: ``TileScorer(model_path, precision_cpu)(batch) -> scored batch`` (see module doc)."""

    def __init__(self, model_path: str, precision_cpu: str = "auto", batch_size: int = 8) -> None:
        t0 = time.perf_counter()
        import torch

        from core.detection.detector import Detector

        cuda = torch.cuda.is_available()
        # on a GPU bf16 is the rule (auto); on a CPU the driver's choice, so both engines compute alike
        self.det = Detector.load(model_path, device="cuda" if cuda else "cpu", batch_size=max(1, batch_size),
                                 precision="auto" if cuda else precision_cpu)
        self.pid = os.getpid()
        self.load_s = time.perf_counter() - t0  #: import + model load of this worker (a fixed cost per worker)
        self._scene: Any = None
        self._scene_path: str | None = None

    def _open(self, path: str, name: str) -> Any:
        if path != self._scene_path:
            from core.imagery.reader import open_scene

            if self._scene is not None:
                self._scene.close()
                self._scene, self._scene_path = None, None
            self._scene = open_scene(path, name=name)
            self._scene_path = path
        return self._scene

    def _read(self, task: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        from core.detection.scene_grid import GridReader

        scene = self._open(str(task["path"]), str(task["name"]))
        rgb, valid = GridReader(scene, task_plan(task)).read(task_window(task))
        tile = int(task["tile"])
        return pad_to(rgb, valid, int(task.get("tile_h", tile)), int(task.get("tile_w", tile)))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """Score the tasks of ``batch`` (columns of :func:`core.engine.tasks.window_tasks`)."""
        n = len(batch["row"])
        tasks = [{k: batch[k][i] for k in batch} for i in range(n)]
        maps: list[np.ndarray] = [np.zeros((0, 0), np.float32)] * n
        scores = np.full(n, np.nan, np.float32)
        n_valid = np.zeros(n, np.int64)
        errors = [""] * n
        read_s = np.zeros(n, np.float64)
        model_s = np.zeros(n, np.float64)
        groups: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]] = defaultdict(list)
        for i, t in enumerate(tasks):
            t0 = time.perf_counter()
            try:
                rgb, valid = self._read(t)
            except Exception as exc:  # noqa: BLE001 - the driver marks the scene failed with this message
                errors[i] = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(str(t["name"])) else str(exc)
                continue
            read_s[i] = time.perf_counter() - t0
            groups[(int(t.get("tile_h", t["tile"])), int(t.get("tile_w", t["tile"])))].append((i, rgb, valid))
        cal = self.det.calibration
        for members in groups.values():
            t0 = time.perf_counter()
            raw, raw_scores = self.det.predict(np.stack([m[1] for m in members]))
            cmaps = np.asarray(cal.pixel(raw), dtype=np.float32)
            share = (time.perf_counter() - t0) / len(members)
            for (i, _, valid), cmap, score in zip(members, cmaps, raw_scores, strict=True):
                h, w = int(tasks[i]["height"]), int(tasks[i]["width"])
                v = valid[:h, :w]
                maps[i] = np.where(v, cmap[:h, :w], np.float32(np.nan)).astype(np.float32)
                scores[i] = score
                n_valid[i] = int(v.sum())
                model_s[i] = share
        out: dict[str, Any] = {k: batch[k] for k in ("scene", "tile_no", "row", "col", "height", "width")}
        out |= {"map": maps, "score": scores, "n_valid": n_valid, "error": np.asarray(errors, dtype=object),
                "read_s": read_s, "model_s": model_s, "worker": np.full(n, self.pid, np.int64),
                "device": np.asarray([str(self.det.device)] * n, dtype=object),
                "load_s": np.full(n, self.load_s, np.float64),
                "peak_rss_mb": np.full(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, np.float64)}
        return out


class SceneWorker:
    """Stateful whole-scene worker (``--split scenes``): each task is one input, analysed on the worker by the local
    engine's own code (:func:`core.analysis.step.analyze_input`), its outputs written to the run's folder (a shared file
    system); the driver only records the results, so it never caps the cluster's pace."""

    def __init__(self, model_path: str, out_dir: str, options: dict[str, Any], precision_cpu: str = "auto",
                 batch_size: int = 8) -> None:
        self.scorer = TileScorer(model_path, precision_cpu=precision_cpu, batch_size=batch_size)
        self.out_dir, self.options = out_dir, options

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """Analyse the inputs of ``batch`` (columns scene, path, name); a column ``result`` of SceneResult JSON."""
        import json

        from core.analysis.step import analyze_input

        o = self.options
        out = []
        for i in range(len(batch["path"])):
            res = analyze_input({"path": str(batch["path"][i]), "name": str(batch["name"][i])}, self.scorer.det,
                                self.out_dir, threshold=o.get("threshold"), grade_scale=o["grade_scale"],
                                resample=bool(o["resample"]))
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            worker = {str(self.scorer.pid): {"load_s": self.scorer.load_s, "peak_rss_mb": rss}}
            res.meta["engine"] = {"name": "ray", "split": "scenes", "workers": 1, "driver_s": 0.0,
                                  "devices": [str(self.scorer.det.device)], "per_worker": worker}
            out.append(json.dumps(res.to_dict(), default=str))
        return {"scene": batch["scene"], "result": np.asarray(out, dtype=object)}
