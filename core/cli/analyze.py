"""``python -m core analyze``: run the pipeline over inputs and write what ``report`` (core/cli/report.py) reads.

analyze writes per input ``<name>_heatmap.tif`` and ``<name>_overlay.png``, and for the run ``findings.geojson``,
``findings.csv``, ``summary.json`` (per input: score, CRS, WGS84 bounds, outputs, findings count, error) and
``analysis.json`` (every SceneResult, from which ``report`` rebuilds PDFs without recomputing anything).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.analysis.guidance import EVENT_MODES, mode_advice
from core.analysis.run import AnalysisInput, AnalysisOptions, AnalysisRun
from core.cli.outpaths import out_dir
from core.detection.grading import SCALES
from core.detection.verdict import broad_anomaly_note, judge
from core.engine import ENGINES, ENV_RAY_ADDRESS, ray_address_from_env
from core.errors import InputError
from core.i18n import _
from core.i18n import say as message_text
from core.store.analyses import CLI_CASE
from core.types import SceneResult

if TYPE_CHECKING:  # both import more than the CLI's --help needs
    from core.detection.detector import Detector
    from core.store import Workspace


def add_analyze(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the analyze sub-command."""
    p = sub.add_parser("analyze", help=_("heatmaps and graded findings for images / rasters"))
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=_("image or raster files to analyse"))
    p.add_argument("--model", default=None, help=_("checkpoint (default: the bundled model)"))
    p.add_argument("--out", default=None, help=_("output folder (default: out/, or the resumed analysis' folder)"))
    p.add_argument("--threshold", type=float, default=None,
                   help=_("finding threshold in calibrated units (default: the model's calibration)"))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                   help=_("auto: bf16 on GPUs and CPUs with native bf16 (default; $BDA_PRECISION), fp32 to force it"))
    p.add_argument("--change-threshold", type=float, default=None,
                   help=_("threshold of the findings of pre/post pairs, in calibrated change units (default: the "
                          "model's change calibration)"))
    p.add_argument("--grade-scale", default="copernicus-ems", choices=list(SCALES),
                   help=_("damage grade scale of the findings"))
    p.add_argument("--event-type", default="other", choices=list(EVENT_MODES),
                   help=_("kind of event: says whether the post image alone can show its damage (wildfire, tsunami "
                          "and earthquake need a pre-event image); recorded and stated in the report"))
    p.add_argument("--no-resample", action="store_true", help=_("do not resample inputs to the model's training GSD"))
    p.add_argument("--pre", nargs="*", default=[], metavar="PRE", help=_("pre-event images to compare against"))
    p.add_argument("--footprints", nargs="*", default=[], metavar="PATH",
                   help=_("building footprints (GeoJSON, GeoPackage, Shapefile .shp or .zip, FlatGeobuf, xBD label "
                          "JSON; any CRS): every building gets a score, an EMS grade and a confidence in "
                          "buildings.geojson / buildings.csv"))
    p.add_argument("--workspace", default=None, help=_("workspace folder (default: $BDA_WORKSPACE or the user's)"))
    p.add_argument("--case", default=CLI_CASE, help=_("case (created when missing) the analysis is filed under; "
                                                      "default: {name!r}").format(name=_(CLI_CASE)))
    p.add_argument("--no-workspace", action="store_true", help=_("do not record the analysis in the workspace"))
    p.add_argument("--resume", type=int, default=None, metavar="ID",
                   help=_("continue an interrupted analysis of the workspace (inputs it did not finish)"))
    p.add_argument("--quiet", action="store_true", help=_("no progress bars"))
    p.add_argument("--no-area", action="store_true",
                   help=_("no area outputs (area/: heatmap mosaic VRT + COG, findings merged across scene seams, "
                          "area summary), otherwise written when two or more scenes are georeferenced"))
    g = p.add_argument_group(_("engine"), _("where the tiles are scored: this process, or a Ray cluster"))
    g.add_argument("--engine", choices=list(ENGINES), default=None,
                   help=_("local (default) or ray; a resumed analysis keeps its recorded engine unless given"))
    g.add_argument("--address", default=None, metavar="ADDR",
                   help=_("Ray cluster address, host:port or auto (default: ${env}; none: Ray starts on this "
                          "machine)").format(env=ENV_RAY_ADDRESS))
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help=_("Ray model workers (default: one per GPU with --gpus-per-worker, else 2)"))
    g.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                   help=_("GPUs each Ray worker asks for (default 0: CPU workers; 1 puts one worker on each GPU)"))
    g.add_argument("--split", choices=["windows", "scenes"], default=None,
                   help=_("Ray tasks: windows (default; tiles stitched by this process, for few or huge rasters) or "
                          "scenes (whole inputs analysed and written by the workers, for areas of many files; the "
                          "output folder must be shared with them)"))


def _bar(total: int, desc: str, quiet: bool, unit: str = "", position: int = 1) -> Any:
    """A progress bar on stderr. Into a file or a pipe (a batch job's log) it redraws every 10 s, not 10 times a
    second: each redraw is another carriage-return line in the log."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit or _("tile"), leave=position == 0, disable=quiet, file=sys.stderr,
                position=position, mininterval=0.1 if sys.stderr.isatty() else 10.0)


def _summary_row(r: SceneResult) -> dict[str, Any]:
    v = judge(r)
    return {"name": r.scene_name, "score": r.image_score, "verdict": v.verdict, "threshold": v.threshold,
            "rule": v.rule,
            "crs": r.georef.crs if r.georef else None, "bounds_wgs84": r.bounds_wgs84,
            "outputs": {"heatmap": r.heatmap_path and Path(r.heatmap_path).name,
                        "overlay": r.overlay_path and Path(r.overlay_path).name,
                        "change": r.change_path and Path(r.change_path).name},
            "findings": len(r.findings), "error": r.error, "source": str(r.source_path) if r.source_path else None,
            "pre": r.pre_scene_name, "coregistration": r.meta.get("coregistration") if r.pre_scene_name else None,
            "change_threshold": (r.meta.get("change") or {}).get("threshold") if r.pre_scene_name else None}


def _items(inputs: list[str], pre: list[str]) -> list[AnalysisInput]:
    """The inputs with unique names and their pre-event pairs."""
    from core.file_names import unique_name

    pairs: dict[str, str] = {}
    if pre:
        from core.change.scene import pair_inputs

        pairs = pair_inputs(inputs, pre)
    items: list[AnalysisInput] = []
    taken: set[str] = set()
    for path in inputs:
        name = unique_name(Path(path).name, taken)
        taken.add(name)
        items.append(AnalysisInput(path=str(Path(path).resolve()), name=name, pre_path=pairs.get(path)))
    return items


def run_with_progress(run: AnalysisRun, quiet: bool = True) -> list[SceneResult]:
    """Run an analysis with one line per input, an overall bar (inputs) and a tile bar per input on stderr, then
    each result's summary."""
    from tqdm import tqdm

    bar: Any = None
    overall = _bar(len(run.inputs), _("overall"), quiet, unit=_("input"), position=0)

    def say(text: str) -> None:  # above the progress bars, never inside one of their lines
        tqdm.write(text, file=sys.stderr)

    def on_input(k: int, n: int, item: AnalysisInput) -> None:
        nonlocal bar
        if bar is not None:
            bar.close()
        say(f"[{k + 1}/{n}] {item.name}")
        bar = _bar(0, item.name, quiet)

    def on_tiles(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    def report(item: AnalysisInput, res: SceneResult) -> None:
        if bar is not None:
            bar.close()
        overall.update(1)
        if res.error:
            say("    " + _("error: {message}").format(message=res.error_text()))
        elif res.pre_scene_name:
            from core.change.texts import coregistration_text

            thr = (res.meta.get("change") or {}).get("threshold", float("nan"))
            say("    " + _("compared with {pre}: {n} change findings at {threshold} (the post image alone: "
                          "{post_only})").format(pre=res.pre_scene_name, n=len(res.findings), threshold=f"{thr:.2f}",
                                                 post_only=res.meta.get("post_only_findings"))
                + f"\n    {coregistration_text(res.meta.get('coregistration') or {})}")
        else:
            say("    " + _("image score {score}; {rule}").format(score=f"{res.image_score:.2f}", rule=judge(res).rule))
        broad = None if res.error or res.pre_scene_name else broad_anomaly_note(res.meta.get("share_above_threshold"))
        for w in ([] if res.error else [*res.meta.get("warnings", []), *([broad] if broad else [])]):
            say("    " + _("note: {message}").format(message=message_text(w)))

    try:
        return run.run(on_input=on_input, on_tiles=on_tiles, on_result=report)
    finally:
        overall.close()


def write_run_outputs(results: list[SceneResult], det: Detector, out: Path, threshold: float | None,
                      workspace: dict[str, Any] | None = None) -> None:
    """findings.geojson, findings.csv, summary.json and analysis.json for a run; ``workspace`` ({"root",
    "analysis_id"}) names where the run is recorded, so that ``report`` can take the analysts' reviews from it."""
    from core.atomic_files import atomic_write_text
    from core.report import write_csv, write_geojson

    ok = [r for r in results if r.error is None]
    findings = [f for r in ok for f in r.findings]
    write_geojson(findings, out / "findings.geojson")
    write_csv(findings, out / "findings.csv")
    info = det.info()
    summary = {"model": info, "threshold": threshold if threshold is not None else det.calibration.threshold,
               "processed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "inputs": [_summary_row(r) for r in results]}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    method = "set by the analyst" if threshold is not None else "model calibration default (99.9th percentile of " \
        "held-out normal pixels)"
    atomic_write_text(out / "analysis.json", json.dumps({"model": info, "threshold": summary["threshold"],
                                                         "threshold_method": method, "workspace": workspace,
                                                         "results": [r.to_dict() for r in results]}, default=str))


def engine_options(a: argparse.Namespace) -> dict[str, Any]:
    """The engine fields of :class:`AnalysisOptions` the command line gives (only those given, for a resume)."""
    out: dict[str, Any] = {}
    if a.engine is not None:
        out["engine"] = a.engine
    if a.address is not None or (a.engine == "ray" and ray_address_from_env()):
        out["ray_address"] = a.address if a.address is not None else ray_address_from_env()
    if a.workers is not None:
        out["workers"] = a.workers
    if a.gpus_per_worker is not None:
        out["gpus_per_worker"] = a.gpus_per_worker
    if a.split is not None:
        out["ray_split"] = a.split
    if a.engine == "local" and (a.address is not None or a.workers is not None or a.gpus_per_worker is not None
                                or a.split is not None):
        raise InputError(_("--address, --workers, --gpus-per-worker and --split are options of --engine ray; "
                           "drop them or use --engine ray"))
    for k in ("workers", "gpus_per_worker"):
        if k in out and out[k] < 0:
            raise InputError(_("{option} must be 0 or more, got {value}").format(option="--" + k.replace("_", "-"),
                                                                                 value=out[k]))
    return out


def _case_id(ws: Workspace, name: str) -> int:
    for c in ws.list_cases():
        if c["name"] == name:
            return int(c["id"])
    return ws.create_case(name)


def cmd_analyze(a: argparse.Namespace) -> int:
    """Analyse inputs (or resume an interrupted analysis); exit 1 if any input failed."""
    from core.detection.detector import Detector
    from core.store import Workspace

    ws = None
    if a.resume is not None:
        ws = Workspace(a.workspace)
        det = Detector.load(a.model or ws.get_analysis(a.resume)["model"].get("path"), device=a.device,
                            precision=a.precision)
        run = AnalysisRun.resume(ws, a.resume, det, threshold=a.threshold, change_threshold=a.change_threshold,
                                 out_dir=out_dir(a.out) if a.out else None, engine=engine_options(a))
        print(_("resuming analysis {id}: {n} input(s) left").format(id=run.analysis_id, n=len(run.inputs)),
              file=sys.stderr)
    else:
        if not a.inputs:
            raise InputError(_("give at least one INPUT image or raster (or --resume ID)"))
        items = _items(a.inputs, a.pre)
        det = Detector.load(a.model, device=a.device, precision=a.precision)
        options = AnalysisOptions(threshold=a.threshold, change_threshold=a.change_threshold,
                                  grade_scale=a.grade_scale, resample=not a.no_resample, origin="cli",
                                  event_type=a.event_type, area=not a.no_area,
                                  footprints=tuple(str(Path(p).resolve()) for p in a.footprints),
                                  **engine_options(a))
        out = out_dir(a.out or "out").resolve()
        if a.no_workspace:
            run = AnalysisRun.start(det, items, options, out_dir=out)
        else:
            ws = Workspace(a.workspace)
            run = AnalysisRun.start(det, items, options, ws=ws, case_id=_case_id(ws, a.case), out_dir=out)
            print(_("analysis {id} in workspace {root} (resume with --resume {id})").format(
                id=run.analysis_id, root=ws.root), file=sys.stderr)
    if not a.quiet:
        advice, warn = mode_advice(run.options.event_type, has_pre=any(i.pre_path for i in run.inputs))
        print(_("warning: {message}").format(message=advice) if warn else advice, file=sys.stderr)
    ran = run_with_progress(run, quiet=a.quiet)
    # with a workspace, a resumed run reports every input (earlier runs' included), not only this run's
    results = ws.scene_results(run.analysis_id) if ws is not None and run.analysis_id is not None else ran
    write_run_outputs(results, det, run.out_dir, run.options.threshold,
                      {"root": str(ws.root), "analysis_id": run.analysis_id} if ws is not None else None)
    failed = [r for r in results if r.error]
    n_find = sum(len(r.findings) for r in results)
    print(_("analysed {done}/{total} inputs, {n} findings -> {out}").format(
        done=len(results) - len(failed), total=len(results), n=n_find, out=run.out_dir))
    if run.area is not None:
        f = run.area["findings"]
        m = run.area.get("mosaic") or {}
        if m.get("skipped"):
            print(_("area: {merged} findings ({joined} joined across scene seams from {per_scene}); the scenes cover "
                    "{cover:.1%} of the area's extent, so no area mosaic was made: each scene's heatmap GeoTIFF is "
                    "in the output folder").format(merged=f["merged"], joined=f["joined_across_seams"],
                                                   per_scene=f["per_scene"], cover=float(m.get("cover", 0.0))))
        else:
            print(_("area: mosaic {path} ({crs}), {merged} findings ({joined} joined across scene seams from "
                    "{per_scene})").format(path=run.out_dir / "area" / (m.get("cog") or m.get("vrt") or "?"),
                                           crs=run.area["crs"], merged=f["merged"], joined=f["joined_across_seams"],
                                           per_scene=f["per_scene"]))
    elif run.area_error:
        print(_("warning: {message}").format(message=run.area_error), file=sys.stderr)
    if run.buildings is not None:
        from core.cli.buildings import analysis_ref, print_buildings

        recorded = ws is not None and run.analysis_id is not None
        print_buildings(run.buildings, ref=analysis_ref(str(run.analysis_id), a.workspace) if recorded
                        else str(run.out_dir))
        if run.buildings.errors:
            return 1
    return 1 if failed else 0


def load_analysis(folder: str | Path) -> tuple[dict[str, Any], list[SceneResult]]:
    """Read an analyze output folder back (model info, SceneResults)."""
    p = Path(folder) / "analysis.json"
    if not p.is_file():
        raise InputError(_("{folder} is not an analysis folder (no analysis.json); run `python -m core analyze` "
                           "first").format(folder=folder))
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        return d, [SceneResult.from_dict(r) for r in d["results"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(_("{p} is damaged and cannot be read ({exc})").format(p=p, exc=exc)) from exc


def recorded_in(folder: Path) -> tuple[Path, int] | None:
    """(workspace root, analysis id) where the run written to ``folder`` is recorded, when that workspace and
    analysis still exist: its findings there carry the analysts' reviews, analysis.json does not."""
    try:
        ref = json.loads((folder / "analysis.json").read_text(encoding="utf-8")).get("workspace")
        root, aid = Path(ref["root"]), int(ref["analysis_id"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if not (root / "workspace.sqlite3").is_file():
        return None
    from core.store import Workspace

    with Workspace(root) as ws:
        return (root, aid) if any(x["id"] == aid for x in ws.list_analyses()) else None

