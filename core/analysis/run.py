"""``AnalysisRun``: the one lifecycle of an analysis, called by the Analyze page and ``python -m core analyze``.

:meth:`AnalysisRun.start` records the inputs, the model and every option in the workspace (status ``running``);
:meth:`AnalysisRun.run` analyses the inputs one by one, saves each result as soon as it exists and finishes the
analysis ``done`` (or ``interrupted`` when the run stops before the last input); :meth:`AnalysisRun.resume` takes an
interrupted analysis over with the options it was recorded with. Without a workspace (the CLI's ``--no-workspace``)
the same run only writes its files. A failed input becomes a result with ``error`` set; the others still run.

The options name the engine: ``local`` analyses the inputs one by one in this process; ``ray`` scores them on a
Ray cluster (:mod:`core.engine.ray_engine`, imported only then) and hands each finished scene to the same loop, so
saving, resuming and the callbacks are one code path. A run of two or more georeferenced scenes ends with the area
outputs (:mod:`core.engine.area`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.analysis.guidance import EVENT_MODES
from core.analysis.step import OnTiles, analyze_input
from core.detection.grading import check_threshold, get_scale
from core.engine import ENGINES
from core.errors import CoreError, InputError
from core.i18n import _
from core.types import SceneResult

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # core.detection.detector imports torch; the page imports this module before any model is loaded
    from core.buildings import BuildingSet
    from core.detection.detector import Detector
    from core.store import Workspace


@dataclass(frozen=True)
class AnalysisInput:
    """One image or raster to analyse, with the pre-event image it is compared with (if any)."""

    path: str
    name: str = ""  #: unique within the analysis; the file name when empty
    pre_path: str | None = None
    origin: str = ""  #: where it came from ("upload", "server path", "cli", ...)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", Path(self.path).name)

    def record(self) -> dict[str, Any]:
        """The input as the workspace stores it."""
        out: dict[str, Any] = {"path": self.path, "name": self.name}
        if self.pre_path:
            out["pre_path"] = self.pre_path
        if self.origin:
            out["origin"] = self.origin
        return out

    @classmethod
    def from_record(cls, item: dict[str, Any]) -> AnalysisInput:
        """An input as the workspace returns it (see :meth:`record`)."""
        pre = item.get("pre_path")
        return cls(path=str(item["path"]), name=str(item.get("name") or ""), pre_path=str(pre) if pre else None,
                   origin=str(item.get("origin") or ""))


@dataclass(frozen=True)
class AnalysisOptions:
    """Every choice an analysis is made with; all of them are recorded, so a resumed run makes the same ones."""

    threshold: float | None = None  #: single images' findings threshold (None: the model's calibrated default)
    change_threshold: float | None = None  #: pairs' change threshold (None: each pair's calibrated default)
    grade_scale: str = "copernicus-ems"
    resample: bool = True  #: bring georeferenced inputs to the model's ground sample distance
    event_type: str = "other"  #: kind of event (guidance.EVENT_MODES): which mode suits it, said in the report
    device: str = ""  #: the device the run used, as shown to people (filled in by :meth:`AnalysisRun.start`)
    out: str = ""  #: folder of the run's files when not the workspace's analysis folder (the CLI's --out)
    origin: str = ""  #: which face started it ("dashboard", "cli")
    footprints: tuple[str, ...] = ()  #: building footprint files: each building scored and graded (core.buildings)

    engine: str = "local"  #: "local" (this process) or "ray" (a Ray cluster, core.engine.ray_engine)
    ray_address: str = ""  #: the Ray cluster ("" starts Ray on this machine)
    workers: int = 0  #: Ray model workers (0: automatic)
    gpus_per_worker: float = 0.0  #: GPUs each Ray worker asks for
    ray_split: str = "windows"  #: Ray tasks: "windows" (stitched here) or "scenes" (whole inputs on the workers)
    area: bool = True  #: write the area outputs (mosaic, merged findings) when two or more scenes are georeferenced

    def __post_init__(self) -> None:
        object.__setattr__(self, "footprints", tuple(str(p) for p in self.footprints))

    def check(self) -> None:
        """Raise :class:`InputError` for an unknown grading scale or engine, or a threshold that is not a positive
        number."""
        get_scale(self.grade_scale)
        if self.engine not in ENGINES:
            raise InputError(_("unknown engine {engine!r}; use one of {engines}").format(
                engine=self.engine, engines=", ".join(ENGINES)))
        if self.ray_split not in ("windows", "scenes"):
            raise InputError(_("unknown split {split!r}; use windows or scenes").format(split=self.ray_split))
        if self.workers < 0 or not self.gpus_per_worker >= 0:
            raise InputError(_("workers and GPUs per worker must be 0 or more"))
        if self.event_type not in EVENT_MODES:
            raise InputError(_("unknown event type {event_type!r}; use one of {value}").format(
                                 event_type=self.event_type, value=', '.join(EVENT_MODES)))
        for t in (self.threshold, self.change_threshold):
            if t is not None:
                check_threshold(t)

    def record(self) -> dict[str, Any]:
        """The options as the workspace stores them (the threshold has a column of its own)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "threshold"}

    @classmethod
    def from_record(cls, threshold: float | None, options: dict[str, Any]) -> AnalysisOptions:
        """The options of a stored analysis; options it predates keep their defaults."""
        names = {f.name for f in dataclasses.fields(cls)} - {"threshold"}
        return cls(threshold=threshold, **{k: v for k, v in options.items() if k in names})


_ENGINE_FIELDS = ("engine", "ray_address", "workers", "gpus_per_worker", "ray_split")

OnInput = Callable[[int, int, AnalysisInput], None]
OnResult = Callable[[AnalysisInput, SceneResult], None]


class AnalysisRun:
    """One analysis being made: build it with :meth:`start` or :meth:`resume`, then call :meth:`run` once."""

    def __init__(self, det: Detector, inputs: Sequence[AnalysisInput], options: AnalysisOptions, out_dir: Path, *,
                 ws: Workspace | None = None, analysis_id: int | None = None) -> None:
        self.det, self.inputs, self.options, self.out_dir = det, list(inputs), options, out_dir
        self.ws, self.analysis_id = ws, analysis_id
        self.status = "running"
        self.buildings: BuildingSet | None = None  #: set by :meth:`run` when the options name footprints
        self.area: dict[str, Any] | None = None  #: the area summary written at the end (core.engine.area)
        self.area_error: str | None = None  #: why the area outputs could not be written

    @classmethod
    def start(cls, det: Detector, inputs: Sequence[AnalysisInput], options: AnalysisOptions, *,
              ws: Workspace | None = None, case_id: int | None = None,
              out_dir: str | Path | None = None, created_by: str | None = None) -> AnalysisRun:
        """Record a new analysis of ``inputs`` in case ``case_id`` of ``ws`` (model, threshold, every option, and
        ``created_by``: the logged-in user who started it, None without accounts); its files go to ``out_dir`` or
        else the workspace's folder of the analysis. Without ``ws`` nothing is recorded and ``out_dir`` is
        required. Raises :class:`InputError` for what the store refuses (no inputs, a name
        twice, ...)."""
        from core.detection.detector import device_label

        if not inputs:
            raise InputError(_("an analysis needs at least one input image or raster"))
        options.check()
        label = device_label(det.device) if options.engine == "local" else \
            f"Ray cluster {options.ray_address}" if options.ray_address else "Ray on this machine"
        options = dataclasses.replace(options, device=options.device or label,
                                      out=str(out_dir) if out_dir is not None else options.out)
        if ws is None:
            if out_dir is None:
                raise InputError(_("an analysis without a workspace needs an output folder"))
            return cls(det, inputs, options, Path(out_dir))
        if case_id is None:
            raise InputError(_("an analysis recorded in a workspace needs a case"))
        aid = ws.create_analysis(case_id, [i.record() for i in inputs], model=det.info(),
                                 threshold=options.threshold, options=options.record(), created_by=created_by)
        return cls(det, inputs, options, Path(out_dir) if out_dir is not None else ws.analysis_dir(aid), ws=ws,
                   analysis_id=aid)

    @classmethod
    def resume(cls, ws: Workspace, analysis_id: int, det: Detector, *, threshold: float | None = None,
               change_threshold: float | None = None, out_dir: str | Path | None = None,
               engine: dict[str, Any] | None = None) -> AnalysisRun:
        """Take over analysis ``analysis_id`` (interrupted, or finished with inputs left) to analyse the inputs it
        has no result for, with its recorded options; a threshold given here replaces the recorded one, and
        ``engine`` ({"engine", "ray_address", "workers", "gpus_per_worker"}, any of them) the recorded engine."""
        analysis = ws.get_analysis(analysis_id)
        options = AnalysisOptions.from_record(analysis["threshold"], analysis["options"])
        if threshold is not None:
            options = dataclasses.replace(options, threshold=threshold)
        if change_threshold is not None:
            options = dataclasses.replace(options, change_threshold=change_threshold)
        if engine:
            options = dataclasses.replace(options, **{k: v for k, v in engine.items() if k in _ENGINE_FIELDS})
        options.check()
        pending = [AnalysisInput.from_record(i) for i in ws.resume_analysis(analysis_id)]
        out = Path(out_dir) if out_dir is not None else Path(options.out) if options.out else \
            ws.analysis_dir(analysis_id)
        return cls(det, pending, options, out, ws=ws, analysis_id=int(analysis["id"]))

    def run(self, on_input: OnInput | None = None, on_tiles: OnTiles | None = None,
            on_result: OnResult | None = None) -> list[SceneResult]:
        """Analyse every input in order: ``on_input(k, n, input)`` before each, ``on_tiles(done, total)`` while
        it runs, ``on_result(input, result)`` once its result is saved. Finishes the analysis ``done``, or
        ``interrupted`` when the run stops before the last input (an error, the page left, Ctrl-C)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        o = self.options
        results: list[SceneResult] = []
        self.status = "interrupted"
        try:
            with contextlib.closing(self._analysed(on_input, on_tiles)) as analysed:  # closed at once when stopped
                for item, res in analysed:
                    if self.ws is not None and self.analysis_id is not None:
                        self.ws.save_scene_result(self.analysis_id, res, input_name=item.name)
                    results.append(res)
                    if on_result is not None:
                        on_result(item, res)
            self.status = "done"
            if o.area:
                self._write_area(results)
            if o.footprints:
                self.assess_buildings(results)
        finally:
            if self.ws is not None and self.analysis_id is not None:
                self.ws.finish_analysis(self.analysis_id, self.status)
        return results

    def assess_buildings(self, ran: list[SceneResult]) -> BuildingSet:
        """Score and grade every footprint of the options over every analysed input (a resumed run's earlier
        inputs included), keeping earlier labels, reviews and calibration; writes buildings.geojson/.csv."""
        from core.buildings import assess_analysis

        results = self.ws.scene_results(self.analysis_id) if self.ws is not None and self.analysis_id is not None \
            else ran
        self.buildings = assess_analysis(results, list(self.options.footprints), self.out_dir,
                                         grade_scale=self.options.grade_scale, ws=self.ws,
                                         analysis_id=self.analysis_id)
        return self.buildings

    def _analysed(self, on_input: OnInput | None, on_tiles: OnTiles | None
                  ) -> Generator[tuple[AnalysisInput, SceneResult], None, None]:
        """Each input with its result, as the run's engine makes them (the Ray engine only imported for it)."""
        o = self.options
        if o.engine == "ray":
            from core.engine.ray_engine import run_inputs

            yield from run_inputs(self.det, self.inputs, o, self.out_dir, on_start=on_input, on_tiles=on_tiles)
            return
        for k, item in enumerate(self.inputs):
            if on_input is not None:
                on_input(k, len(self.inputs), item)
            yield item, analyze_input({"path": item.path, "name": item.name, "pre_path": item.pre_path}, self.det,
                                      self.out_dir, threshold=o.threshold, change_threshold=o.change_threshold,
                                      grade_scale=o.grade_scale, resample=o.resample, progress=on_tiles)

    def _write_area(self, results: list[SceneResult]) -> None:
        """The area outputs over every result of the analysis (a resumed run's earlier ones included); a failure
        there is reported in :attr:`area_error`, never losing the scenes' results."""
        from rasterio.errors import RasterioError

        from core.engine.area import write_area_outputs

        if self.ws is not None and self.analysis_id is not None:
            results = self.ws.scene_results(self.analysis_id)
        o = self.options
        try:
            self.area = write_area_outputs(results, self.out_dir, engine={
                "engine": o.engine, "address": o.ray_address, "workers": o.workers,
                "gpus_per_worker": o.gpus_per_worker})
        except (CoreError, OSError, RasterioError, ValueError) as exc:
            log.warning("area outputs of %s not written: %s", self.out_dir, exc)
            self.area_error = _("the area mosaic and merged findings could not be written ({exc})").format(exc=exc)
