"""The Ray engine: an analysis' inputs scored on a Ray cluster with Ray Data, stitched on the driver.

Every single-image input is cut into window tasks (:mod:`core.engine.tasks`); ``ray.data.from_items(tasks)
.map_batches(TileScorer, compute=ActorPoolStrategy(size=N), num_gpus=G)`` scores them on N stateful workers (one
model load each, :mod:`core.engine.scorer`), in order (``preserve_order``), streaming, so the driver stitches one
scene at a time (:mod:`core.engine.assemble`) and hands each finished scene to :class:`core.analysis.run.AnalysisRun`,
which saves it at once (so an interrupted run resumes without redoing finished scenes). A worker that dies is
restarted by Ray and its batch retried (Ray Data's actor defaults: ``max_restarts=-1``,
``max_task_retries=-1``). Pre/post pairs are analysed by
the local engine on the driver after the cluster's scenes; inputs that cannot be opened fail at once.

With ``split="scenes"`` a task is a whole input instead, analysed on a worker by the local engine's own code and
written to the run's folder (which the workers must then share): the driver only records results, so it does not
cap the cluster's pace for areas of many files (the window split suits one huge raster).

Without an address Ray starts locally, kept small: ``workers`` CPUs, a 256 MB object store, no dashboard. With an
address (``host:port`` of a running cluster, or "auto"), the workers need this package importable and the input
and model paths readable at the same paths (a shared file system): the ``core`` package is shipped to them as a
runtime-env module.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.analysis.step import OnTiles, analyze_input, failed_result
from core.engine.assemble import SceneAssembler
from core.engine.tasks import ScenePlan, plan_scene, window_tasks
from core.errors import CoreError, InputError
from core.i18n import _
from core.types import Scene, SceneResult

if TYPE_CHECKING:
    from core.analysis.run import AnalysisInput, AnalysisOptions

log = logging.getLogger(__name__)

LOCAL_OBJECT_STORE_MB = 256  #: object store of a Ray started on this machine (tiles stream through it)
BATCH_SIZE = 8  #: tiles per model call, as the local engine (core.detection.pipeline.analyze_scene)

OnStart = Callable[[int, int, "AnalysisInput"], None]


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide a Ray run is."""

    address: str = ""  #: a running cluster ("host:port", "auto"); "" starts Ray on this machine
    workers: int = 0  #: model workers (0: 2 on a local Ray, else one per GPU, else 2)
    gpus_per_worker: float = 0.0
    batch_size: int = BATCH_SIZE

    def check(self) -> None:
        """Raise :class:`InputError` for a negative worker count or GPU share."""
        if self.workers < 0:
            raise InputError(_("--workers must be 0 (automatic) or more, got {n}").format(n=self.workers))
        if not (self.gpus_per_worker >= 0 and math.isfinite(self.gpus_per_worker)):
            raise InputError(_("--gpus-per-worker must be 0 or more, got {n}").format(n=self.gpus_per_worker))


def _quiet_ray() -> None:
    for name in ("ray", "ray.data", "ray._private"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _NEEDS_CHECKPOINT() -> str:  # noqa: N802  (a message, read in the language in use)
    return _("the Ray engine needs the model as a checkpoint file its workers can load; save the model first "
             "(Models page) or use the local engine")


def connect(cfg: RayConfig) -> bool:
    """Connect to the cluster of ``cfg`` (or start Ray here); True when this call started it (and should stop it)."""
    import ray

    if ray.is_initialized():
        return False
    _quiet_ray()
    core_dir = str(Path(__file__).resolve().parents[1])
    try:
        if cfg.address:
            ray.init(address=cfg.address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     runtime_env={"py_modules": [core_dir], "excludes": ["__pycache__", "*.pyc"]})
        else:
            n = cfg.workers or 2
            ray.init(num_cpus=n, num_gpus=None, object_store_memory=LOCAL_OBJECT_STORE_MB * 1024 * 1024,
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        if cfg.address:
            msg = _("could not reach the Ray cluster at {address} ({exc}); check the address (ray status on the "
                    "head node prints it) or run with --engine local").format(address=cfg.address, exc=exc)
        else:
            msg = _("could not start a local Ray ({exc}); run with --engine local").format(exc=exc)
        raise InputError(msg) from None
    return True


def worker_count(cfg: RayConfig) -> int:
    """The number of model workers: ``cfg.workers``, else one per GPU of the cluster (with GPUs asked), else 2."""
    if cfg.workers:
        return cfg.workers
    if cfg.gpus_per_worker > 0:
        import ray

        gpus = float(ray.cluster_resources().get("GPU", 0))  # type: ignore[no-untyped-call]
        return max(1, int(gpus // cfg.gpus_per_worker))
    return 2


def _dataset(tasks: list[dict[str, Any]], det: Any, cfg: RayConfig, n_workers: int) -> Any:
    import ray
    import ray.data

    from core.engine.scorer import TileScorer

    if det.path is None:
        raise InputError(_NEEDS_CHECKPOINT())
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # tiles come back in the order the driver stitches them
    ctx.enable_progress_bars = False  # the CLI and the page draw their own
    ctx.print_on_execution_start = False
    blocks = max(1, math.ceil(len(tasks) / cfg.batch_size))
    ds = ray.data.from_items(tasks, override_num_blocks=blocks)
    # fault tolerance: Ray Data gives its pool actors max_restarts=-1 and max_task_retries=-1 (a worker that dies
    # is started again, its model reloaded, and the batch it held is retried); passing them ourselves is deprecated
    return ds.map_batches(
        TileScorer, batch_size=cfg.batch_size, batch_format="numpy",
        fn_constructor_kwargs={"model_path": str(det.path), "precision_cpu": "bf16" if det.amp else "fp32",
                               "batch_size": cfg.batch_size},
        compute=ray.data.ActorPoolStrategy(size=n_workers), num_cpus=1,
        num_gpus=cfg.gpus_per_worker or None, udf_modifying_row_count=False)


def _scene_dataset(items: list[AnalysisInput], det: Any, options: AnalysisOptions, out_dir: Path, cfg: RayConfig,
                   n_workers: int) -> Any:
    import ray
    import ray.data

    from core.engine.scorer import SceneWorker

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    rows = [{"scene": k, "path": str(Path(i.path).resolve()), "name": i.name} for k, i in enumerate(items)]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    opts = {"threshold": options.threshold, "grade_scale": options.grade_scale, "resample": options.resample}
    return ds.map_batches(
        SceneWorker, batch_size=1, batch_format="numpy",
        fn_constructor_kwargs={"model_path": str(det.path), "out_dir": str(out_dir), "options": opts,
                               "precision_cpu": "bf16" if det.amp else "fp32", "batch_size": cfg.batch_size},
        compute=ray.data.ActorPoolStrategy(size=n_workers), num_cpus=1,
        num_gpus=cfg.gpus_per_worker or None, udf_modifying_row_count=False)


def _run_scenes_on_ray(det: Any, items: list[AnalysisInput], options: AnalysisOptions, out_dir: Path,
                       cfg: RayConfig, k0: int, n: int, on_start: OnStart | None, on_tiles: OnTiles | None
                       ) -> Iterator[tuple[AnalysisInput, SceneResult]]:
    """``--split scenes``: one task per input, analysed whole on a worker (see :class:`SceneWorker`)."""
    import json

    if det.path is None:
        raise InputError(_NEEDS_CHECKPOINT())
    started = connect(cfg)
    try:
        ds = _scene_dataset(items, det, options, out_dir, cfg, worker_count(cfg))
        for row in _rows(ds):
            k = int(row["scene"])
            if on_start is not None:
                on_start(k0 + k, n, items[k])
            res = SceneResult.from_dict(json.loads(str(row["result"])))
            if on_tiles is not None and res.error is None:
                tiles = int(res.meta.get("tiles", 1) or 1)
                on_tiles(tiles, tiles)
            yield items[k], res
    finally:
        if started:
            import ray

            ray.shutdown()


def _rows(ds: Any) -> Iterator[dict[str, Any]]:
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        keys = list(batch)
        for i in range(len(batch["scene"])):
            yield {k: batch[k][i] for k in keys}


def run_inputs(det: Any, inputs: Sequence[AnalysisInput], options: AnalysisOptions, out_dir: Path, *,
               on_start: OnStart | None = None, on_tiles: OnTiles | None = None
               ) -> Iterator[tuple[AnalysisInput, SceneResult]]:
    """Analyse ``inputs`` on Ray, yielding ``(input, result)`` as each scene finishes (see the module doc).

    ``on_start(k, n, input)`` before the k-th result's scene starts, ``on_tiles(done, total)`` as its tiles come
    back. Raises :class:`InputError` when the cluster cannot be reached; a failed input becomes a result with
    ``error`` set, as in the local engine.
    """
    from core.imagery.reader import open_scene

    cfg = RayConfig(address=options.ray_address, workers=options.workers, gpus_per_worker=options.gpus_per_worker)
    cfg.check()
    n = len(inputs)
    k = 0
    if options.ray_split == "scenes":
        singles = [i for i in inputs if not i.pre_path]
        if singles:
            yield from _run_scenes_on_ray(det, singles, options, out_dir, cfg, 0, n, on_start, on_tiles)
        k = len(singles)
        for item in (i for i in inputs if i.pre_path):
            if on_start is not None:
                on_start(k, n, item)
            k += 1
            yield item, analyze_input({"path": item.path, "name": item.name, "pre_path": item.pre_path}, det,
                                      out_dir, threshold=options.threshold,
                                      change_threshold=options.change_threshold, grade_scale=options.grade_scale,
                                      resample=options.resample, progress=on_tiles)
        return
    plans: list[tuple[AnalysisInput, Scene, ScenePlan]] = []
    later: list[AnalysisInput] = []
    for item in inputs:  # open every scene first: bad files fail now, the rest are planned
        if item.pre_path:
            later.append(item)
            continue
        try:
            scene = open_scene(item.path, name=item.name)
        except CoreError as exc:
            if on_start is not None:
                on_start(k, n, item)
            k += 1
            yield item, failed_result(item.name, item.path, str(exc))
            continue
        try:
            plans.append((item, scene, plan_scene(len(plans), scene, det, str(Path(item.path).resolve()),
                                                  options.resample)))
        except CoreError as exc:
            if on_start is not None:
                on_start(k, n, item)
            k += 1
            yield item, failed_result(item.name, item.path, str(exc))
        finally:
            scene.close()  # metadata stays; the workers read the pixels
    if plans:
        yield from _run_on_ray(det, plans, options, out_dir, cfg, k, n, on_start, on_tiles)
        k += len(plans)
    for item in later:
        if on_start is not None:
            on_start(k, n, item)
        k += 1
        res = analyze_input({"path": item.path, "name": item.name, "pre_path": item.pre_path}, det, out_dir,
                            threshold=options.threshold, change_threshold=options.change_threshold,
                            grade_scale=options.grade_scale, resample=options.resample, progress=on_tiles)
        yield item, res


def _run_on_ray(det: Any, plans: list[tuple[AnalysisInput, Scene, ScenePlan]], options: AnalysisOptions,
                out_dir: Path, cfg: RayConfig, k0: int, n: int, on_start: OnStart | None,
                on_tiles: OnTiles | None) -> Iterator[tuple[AnalysisInput, SceneResult]]:
    started = connect(cfg)
    try:
        tasks = [t for _item, _scene, sp in plans for t in window_tasks(sp)]
        ds = _dataset(tasks, det, cfg, worker_count(cfg))
        current = -1
        asm: SceneAssembler | None = None
        failed: str | None = None

        def close_scene() -> tuple[AnalysisInput, SceneResult]:
            nonlocal asm
            item, scene, _plan = plans[current]
            try:
                if failed is not None:
                    raise InputError(failed)
                assert asm is not None
                res = asm.finish()
            except CoreError as exc:
                if asm is not None:
                    asm.__exit__(type(exc), exc, None)
                res = failed_result(item.name, item.path, str(exc))
            except BaseException as exc:
                if asm is not None:
                    asm.__exit__(type(exc), exc, None)
                raise
            asm = None
            return item, res

        try:
            for row in _rows(ds):
                s = int(row["scene"])
                while s != current:  # the next scene starts (scenes without tiles cannot occur: >= 1 window)
                    if current >= 0:
                        yield close_scene()
                    current += 1
                    failed = None
                    item, scene, sp = plans[current]
                    if on_start is not None:
                        on_start(k0 + current, n, item)
                    asm = SceneAssembler(scene, det, sp, out_dir, threshold=options.threshold,
                                         grade_scale=options.grade_scale, batch_size=cfg.batch_size).__enter__()
                if failed is not None:
                    continue
                if row["error"]:
                    failed = f"{plans[current][0].name}: {row['error']}"
                    continue
                assert asm is not None
                asm.add(row)
                if on_tiles is not None:
                    on_tiles(asm.tiles, asm.total)
            if current >= 0:
                yield close_scene()
        finally:
            if asm is not None:  # stopped mid-scene: no partial heatmap stays behind
                asm.__exit__(RuntimeError, RuntimeError("run stopped"), None)
    finally:
        if started:
            import ray

            ray.shutdown()
