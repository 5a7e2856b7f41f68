"""The driver side of a distributed run: scored window tasks in, the per-scene outputs of the local engine out.

:class:`SceneAssembler` takes a scene's scored tiles in row-major order and streams them through the same
``stitching.Stitcher``, blend weights, grid resampler and :class:`~core.detection.heatmap.HeatmapWriter` as
:func:`core.detection.pipeline.analyze_scene`, then writes the overlay and cuts the findings the same way, so
``<name>_heatmap.tif``, ``<name>_overlay.png`` and the :class:`~core.types.SceneResult` are those of the local engine.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from core.detection.band_resample import RowResampler
from core.detection.findings import extract_findings, safe_name
from core.detection.grading import get_scale
from core.detection.heatmap import HeatmapWriter, write_overlay_png
from core.detection.pipeline import GDAL_CACHE_MB, MAX_FINDINGS, scene_provenance
from core.detection.stitching import Stitcher
from core.detection.verdict import canonical_threshold, share_above, verdict_of
from core.engine.tasks import ScenePlan, task_window
from core.errors import InputError
from core.geo import georef as geo
from core.i18n import _
from core.types import Scene, SceneResult


class SceneAssembler:
    """Stitch one scene's scored tiles into its heatmap GeoTIFF; :meth:`finish` gives its SceneResult.

    Open with ``with``: a scene left unfinished (an error, the run stopped) leaves no partial heatmap behind.
    """

    def __init__(self, scene: Scene, det: Any, sp: ScenePlan, out_dir: str | Path, *, threshold: float | None = None,
                 grade_scale: str = "copernicus-ems", batch_size: int = 8) -> None:
        cal = det.calibration
        self.thr = canonical_threshold(cal.threshold if threshold is None else threshold)  # as analyze_scene
        get_scale(grade_scale)
        self.scene, self.det, self.sp, self.grade_scale, self.batch_size = scene, det, sp, grade_scale, batch_size
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        plan = sp.plan
        self.total = len(plan.windows)
        self.tiles = 0
        self.raw_sum, self.valid_total = 0.0, 0
        self.read_s = self.model_s = 0.0
        self.workers: dict[int, dict[str, float]] = {}  #: per worker pid: model load s, peak RSS MB
        self.driver_s = 0.0  #: time the driver spent stitching, writing and cutting findings
        self.devices: set[str] = set()
        self._t0 = time.perf_counter()
        self._plan = plan  # the local engine's stitching weights (blend, or a cover plan's exact), per window
        self.heatmap_path = self.out / f"{safe_name(scene.name)}_heatmap.tif"
        self.writer = HeatmapWriter(self.heatmap_path, scene.width, scene.height, scene.georef,
                                    tags={"threshold": self.thr, "source": scene.name,
                                          "model": getattr(det, "name", "")})
        self._stack = contextlib.ExitStack()
        self._resampler: RowResampler | None = None
        self._stitcher: Stitcher | None = None

    def __enter__(self) -> SceneAssembler:
        plan = self.sp.plan
        self._stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
        self._stack.enter_context(self.writer)
        self._resampler = None if plan.factor == 1.0 else RowResampler(
            plan.grid_h, plan.grid_w, self.scene.height, self.scene.width, self.writer)
        self._stitcher = Stitcher(plan.grid_h, plan.grid_w, self._resampler or self.writer)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stack.__exit__(exc_type, exc, tb)

    def add(self, row: dict[str, Any]) -> None:
        """Blend one scored task (a row of :class:`core.engine.scorer.TileScorer`'s output) into the heatmap."""
        assert self._stitcher is not None, "use SceneAssembler as a context manager"
        t0 = time.perf_counter()
        win = task_window(row)
        cmap = np.asarray(row["map"], dtype=np.float32).reshape(win.height, win.width)
        self._stitcher.add(win, cmap, self._plan.tile_weights(win), np.isfinite(cmap))
        n = int(row["n_valid"])
        self.raw_sum += float(row["score"]) * n
        self.valid_total += n
        self.tiles += 1
        self.read_s += float(row.get("read_s", 0.0))
        self.model_s += float(row.get("model_s", 0.0))
        w = self.workers.setdefault(int(row.get("worker", 0)), {"load_s": 0.0, "peak_rss_mb": 0.0})
        w["load_s"] = float(row.get("load_s", 0.0))
        w["peak_rss_mb"] = max(w["peak_rss_mb"], float(row.get("peak_rss_mb", 0.0)))
        self.devices.add(str(row.get("device", "")))
        self.driver_s += time.perf_counter() - t0

    def finish(self) -> SceneResult:
        """Close the heatmap, write the overlay, cut the findings: the scene's result, as the local engine's."""
        assert self._stitcher is not None, "use SceneAssembler as a context manager"
        t_fin = time.perf_counter()
        scene, det, plan = self.scene, self.det, self.sp.plan
        cal = det.calibration
        if self.tiles != self.total:
            raise InputError(_("{name}: only {done} of {total} tiles came back from the workers; analyse it again "
                               "(or with --engine local)").format(name=scene.name, done=self.tiles, total=self.total))
        self._stitcher.finish()
        if self._resampler is not None:
            self._resampler.finish()
        if self.valid_total == 0:
            raise InputError(_("{name} has no valid pixels (everything is nodata, transparent or exactly "
                               "black); nothing to analyse").format(name=scene.name))
        raw_image = self.raw_sum / self.valid_total
        image_score = float(cal.image(raw_image))
        self.writer.set_tags(image_score=repr(image_score), image_score_raw=repr(raw_image))
        self._stack.close()  # the heatmap is renamed into place here
        preview, pscale = self.writer.preview, self.writer.preview_scale
        assert preview is not None
        overlay_path = write_overlay_png(self.out / f"{safe_name(scene.name)}_overlay.png", preview, self.thr)
        gsd = scene.gsd_m or (geo.gsd_m(scene.georef, scene.width, scene.height) if scene.georef else None)
        findings = extract_findings(preview, pscale, self.thr, georef=scene.georef, scene_name=scene.name,
                                    grade_scale=self.grade_scale, provenance=scene_provenance(scene, det, gsd),
                                    full_size=(scene.width, scene.height), max_findings=MAX_FINDINGS)
        bounds = geo.bounds_wgs84(scene.georef, scene.width, scene.height) if scene.georef else None
        total_s = time.perf_counter() - self._t0
        self.driver_s += time.perf_counter() - t_fin
        verdict = verdict_of(len(findings))  # the one rule (core.detection.verdict), as the local engine
        timing = {"total_s": total_s, "model_s": self.model_s, "read_s": self.read_s, "read_wait_s": 0.0,
                  "tiles": self.tiles, "batches": -(-self.tiles // self.batch_size),
                  "model_share": self.model_s / total_s if total_s > 0 else 0.0,
                  "tiles_per_s": self.tiles / total_s if total_s > 0 else 0.0}
        meta: dict[str, Any] = {
            "timing": timing, "tiles": self.tiles, "tile_size": plan.tile, "overlap": plan.overlap,
            "batch_size": self.batch_size, "threshold": self.thr, "image_threshold": cal.image_threshold,
            "grade_scale": self.grade_scale, "image_score_raw": raw_image, "preview_scale": pscale,
            "heatmap_stats": self.writer.stats, "findings_capped": len(findings) >= MAX_FINDINGS,
            "resample": None if plan.factor == 1.0 else {"factor": plan.factor, "grid": [plan.grid_h, plan.grid_w],
                                                         "scene_gsd_m": gsd, "model_gsd_m": det.gsd_m},
            "model": det.info(), "share_above_threshold": share_above(preview, self.thr),
            "warnings": list(scene.meta.get("warnings", [])) + list(self.sp.warnings),
            "engine": {"name": "ray", "workers": len(self.workers), "devices": sorted(self.devices),
                       "driver_s": self.driver_s, "per_worker": {str(k): v for k, v in self.workers.items()}},
        }
        if isinstance(scene.meta.get("gps"), dict):
            meta["gps"] = dict(scene.meta["gps"])
        return SceneResult(scene_name=scene.name, width=scene.width, height=scene.height, image_score=image_score,
                           verdict=verdict, georef=scene.georef, bounds_wgs84=bounds,
                           heatmap_path=self.heatmap_path, overlay_path=overlay_path, findings=findings,
                           source_path=Path(self.sp.path).resolve(), capture_time=scene.capture_time, gsd_m=gsd,
                           meta=meta)
