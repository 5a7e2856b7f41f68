"""``python -m core report``: the BDA report (PDF, CSV, GeoJSON, zip package) of an analysis, rebuilt from what
``analyze`` wrote (an output folder with ``analysis.json``) or from a workspace analysis with its reviews; nothing is
recomputed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.analysis.guidance import EVENT_MODES
from core.cli.analyze import load_analysis, recorded_in
from core.cli.outpaths import out_dir
from core.errors import InputError
from core.i18n import LANGS, _
from core.types import SceneResult


def add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the report sub-command."""
    p = sub.add_parser("report", help=_("write the BDA report of an analysis"))
    p.add_argument("--analysis", required=True, metavar="DIR|ID",
                   help=_("an analyze output folder (with analysis.json), or the id of an analysis in the workspace "
                          "(its findings as reviewed: rejected ones left out of the counts)"))
    p.add_argument("--workspace", default=None, help=_("workspace folder of an analysis ID (default: "
                                                       "$BDA_WORKSPACE or the user's)"))
    p.add_argument("--format", default="pdf,csv,geojson,zip", help=_("comma list of pdf,csv,geojson,zip"))
    p.add_argument("--out", default=None, help=_("output folder (default: the analysis folder)"))
    p.add_argument("--title", default=None, help=_("report title (default: 'Damage assessment report', translated)"))
    p.add_argument("--lang", default=None, choices=list(LANGS),
                   help=_("language of the PDF report and this command's messages (default: $BDA_LANG, else en); "
                          "CSV/GeoJSON fields stay English"))
    p.add_argument("--event", default="", help=_("event name shown in the report"))
    p.add_argument("--event-type", default="other", choices=list(EVENT_MODES),
                   help=_("kind of event: the method section says whether the post image alone suits it"))
    p.add_argument("--aoi", default="", help=_("area of interest shown in the report"))
    p.add_argument("--analyst", default="", help=_("analyst named in the report"))
    p.add_argument("--handling", default="UNCLASSIFIED", help=_("handling / classification line on every page"))
    p.add_argument("--organisation", default="", help=_("organisation named in the report"))
    p.add_argument("--summary", default="", help=_("analyst's summary notes for the executive summary"))
    p.add_argument("--phase2", default="", help=_("phase 2 (functional damage) notes"))
    p.add_argument("--phase3", default="", help=_("phase 3 (target-system assessment) notes"))
    p.add_argument("--bom", action="store_true", help=_("write the CSV with a UTF-8 byte-order mark (for Excel)"))


def _report_source(a: argparse.Namespace) -> tuple[dict[str, Any], list[SceneResult], Path, Path]:
    """Model info, results, default output folder and the analysis' own folder (where its area outputs are) of
    ``--analysis``: an output folder or a workspace id."""
    from core.report import analysis_model_info

    ref = str(a.analysis)
    recorded = None if not Path(ref).is_dir() else recorded_in(Path(ref))
    if (ref.strip().isdigit() and not Path(ref).is_dir()) or recorded is not None:
        from core.store import Workspace

        ws = Workspace(a.workspace if recorded is None else recorded[0])
        analysis = ws.get_analysis(int(ref) if recorded is None else recorded[1])
        if recorded is not None:
            print(_("reporting analysis {id} of the workspace {root}, with its reviews").format(
                id=analysis["id"], root=ws.root), file=sys.stderr)
        results = ws.scene_results(analysis["id"])
        if not any(r.error is None for r in results):
            raise InputError(_("analysis {id} of the workspace {root} has no analysed image yet; run or resume it "
                               "first.").format(id=analysis['id'], root=ws.root))
        folder = Path(analysis["options"].get("out") or ws.analysis_dir(analysis["id"]))
        return (analysis_model_info(analysis["model"], analysis["threshold"], results), results,
                ws.analysis_dir(analysis["id"]) / "report" if recorded is None else Path(ref),
                folder if recorded is None else Path(ref))
    d, results = load_analysis(ref)
    by_analyst = str(d.get("threshold_method", "")).startswith("set by")
    return (analysis_model_info(dict(d.get("model", {})), d.get("threshold") if by_analyst else None, results),
            results, Path(ref), Path(ref))


def _basemap_sources(a: argparse.Namespace) -> list[str]:
    """The shown offline basemaps of the case of a workspace ``--analysis`` (none for an output folder)."""
    ref = str(a.analysis)
    recorded = None if not Path(ref).is_dir() else recorded_in(Path(ref))
    if not (ref.strip().isdigit() and not Path(ref).is_dir()) and recorded is None:
        return []
    from core.mapping.basemaps import case_sources
    from core.store import Workspace

    ws = Workspace(a.workspace if recorded is None else recorded[0])
    analysis = ws.get_analysis(int(ref) if recorded is None else recorded[1])
    return case_sources(ws, int(analysis["case_id"]))


def cmd_report(a: argparse.Namespace) -> int:
    """Write the report files of an analysis folder or a workspace analysis."""
    from core.report import ReportContext, pre_sources_of, write_csv, write_geojson, write_package, write_pdf

    fmts = {f.strip().lower() for f in a.format.split(",") if f.strip()}
    bad = fmts - {"pdf", "csv", "geojson", "zip"}
    if bad:
        raise InputError(_("unknown report format(s) {value}; use pdf, csv, geojson, zip").format(
                             value=', '.join(sorted(bad))))
    from core.report.area import area_of, write_area_csv, write_area_geojson

    model, results, default_out, folder = _report_source(a)
    out = out_dir(a.out) if a.out else out_dir(default_out)
    ctx = ReportContext(title=a.title or _("Damage assessment report"), event=a.event, aoi=a.aoi, analyst=a.analyst,
                        handling=a.handling,
                        organisation=a.organisation, summary_notes=a.summary, phase2_notes=a.phase2,
                        phase3_notes=a.phase3, model_info=model, scenes=[r for r in results if r.error is None],
                        pre_sources=pre_sources_of(results), event_type=a.event_type,
                        basemap_sources=_basemap_sources(a), area=area_of(results, folder))
    _add_buildings(ctx, a)
    written = []
    pdf = None
    if "pdf" in fmts:
        pdf = write_pdf(ctx, out / "report.pdf")
        written.append(pdf)
    if "csv" in fmts:
        written.append(write_csv(ctx, out / "findings.csv", bom=a.bom))
    if "geojson" in fmts:
        written.append(write_geojson(ctx, out / "findings.geojson"))
    if ctx.area is not None:  # several georeferenced scenes: their findings merged across scene seams too
        if "csv" in fmts:
            written.append(write_area_csv(ctx.area, out / "area_findings.csv", bom=a.bom))
        if "geojson" in fmts:
            written.append(write_area_geojson(ctx.area, out / "area_findings.geojson"))
    if "zip" in fmts:
        written.append(write_package(ctx, out / "report_package.zip", pdf_path=pdf))
    for w in written:
        print(w)
    return 0


def _add_buildings(ctx: Any, a: argparse.Namespace) -> None:
    """The analysis' buildings into the report context when it was analysed with footprints."""
    from core.buildings import load_buildings
    from core.cli.buildings import _source

    try:
        ws, aid, folder = _source(a)
        bset = load_buildings(folder=folder, ws=ws, analysis_id=aid)
    except InputError:
        return  # analysed without footprints
    ctx.buildings, ctx.building_calibration = bset.buildings, bset.calibration
