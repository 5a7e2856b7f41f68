"""The building steps of an analysis, shared by :class:`core.analysis.run.AnalysisRun`, the CLI and the pages.

:func:`assess_analysis` reads the footprints, scores and grades every building over the analysed scenes, keeps the
labels, reviews and calibration an earlier run of the analysis had, and writes ``buildings.geojson`` /
``buildings.csv`` (plus ``buildings.json``, the record :func:`load_buildings` reads back without a workspace).
:func:`calibrate_analysis` fits the few-label calibration and re-grades.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.buildings.assess import Building, BuildingSet, assess_buildings, write_buildings
from core.buildings.calibrate import Calibration, apply_calibration, fit_calibration
from core.buildings.footprints import read_footprints
from core.errors import InputError
from core.i18n import _
from core.types import SceneResult

if TYPE_CHECKING:
    from core.store import Workspace

RECORD = "buildings.json"


def _save(bset: BuildingSet, out_dir: Path, ws: Workspace | None, analysis_id: int | None) -> None:
    from core.atomic_files import atomic_write_text

    write_buildings(bset.buildings, out_dir)
    atomic_write_text(out_dir / RECORD, json.dumps({"summary": bset.to_dict(), "calibration": bset.calibration,
                                                    "buildings": [b.to_dict() for b in bset.buildings]}))
    if ws is not None and analysis_id is not None:
        ws.save_buildings(analysis_id, [b.to_dict() for b in bset.buildings], bset.to_dict(), bset.calibration)


def assess_analysis(results: list[SceneResult], footprint_paths: list[str], out_dir: str | Path, *,
                    grade_scale: str = "copernicus-ems", ws: Workspace | None = None,
                    analysis_id: int | None = None) -> BuildingSet:
    """Buildings of an analysis (module docstring); a footprint file that cannot be used is reported in
    ``errors`` and the others still count."""
    out = Path(out_dir)
    fps = read_footprints(footprint_paths)
    bset = assess_buildings(results, fps, grade_scale=grade_scale)
    old_cal = None
    labels: dict[str, str] = {}
    reviews: dict[str, dict[str, Any]] = {}
    if ws is not None and analysis_id is not None:
        prev = ws.building_set(analysis_id)
        old_cal = (prev or {}).get("calibration")
        labels = ws.building_labels(analysis_id)
        reviews = {str(b["building_id"]): b for b in ws.buildings(analysis_id)}
    elif (out / RECORD).is_file():
        old = _read_record(out)
        old_cal = old.get("calibration")
        prev_b = [Building.from_dict(b) for b in old.get("buildings", [])]
        labels = {b.building_id: b.label for b in prev_b if b.label}
        reviews = {b.building_id: b.to_dict() for b in prev_b}
    for b in bset.buildings:
        r = reviews.get(b.building_id)
        if r:
            b.review_status, b.analyst, b.notes = r.get("review_status", "unreviewed"), r.get("analyst", ""), \
                r.get("notes", "")
    ids = {b.building_id for b in bset.buildings}
    labels = {k: v for k, v in labels.items() if k in ids}
    if old_cal is not None:
        try:
            cal = fit_calibration(bset.buildings, labels, analyst=str(old_cal.get("analyst", "")))
            bset.calibration = cal.to_dict()
            apply_calibration(bset.buildings, cal, labels, grade_scale)
        except InputError as exc:
            bset.notes.append(_("the earlier calibration could not be refitted ({exc}); automatic grades used")
                              .format(exc=exc))
            apply_calibration(bset.buildings, None, labels, grade_scale)
    else:
        apply_calibration(bset.buildings, None, labels, grade_scale)
    _save(bset, out, ws, analysis_id)
    return bset


def _read_record(folder: Path) -> dict[str, Any]:
    p = folder / RECORD
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(_("{folder} has no buildings ({record}): analyse it with --footprints first").format(
            folder=folder, record=RECORD)) from exc
    except (OSError, ValueError) as exc:
        raise InputError(_("{path} is damaged and cannot be read ({exc}); analyse again with --footprints").format(
            path=p, exc=exc)) from exc
    if not isinstance(d, dict):
        raise InputError(_("{path} is not a buildings record; analyse again with --footprints").format(path=p))
    return d


def load_buildings(*, folder: str | Path | None = None, ws: Workspace | None = None,
                   analysis_id: int | None = None) -> BuildingSet:
    """The stored buildings of an analysis (workspace when given, else an analyze output folder)."""
    if ws is not None and analysis_id is not None:
        prev = ws.building_set(analysis_id)
        if prev is None:
            raise InputError(_("analysis {id} has no buildings: analyse with footprints first").format(id=analysis_id))
        summ = prev["summary"]
        return BuildingSet(buildings=[Building.from_dict(b) for b in ws.buildings(analysis_id)],
                           errors=list(summ.get("errors", [])), notes=list(summ.get("notes", [])),
                           files=list(summ.get("files", [])), grade_scale=str(summ.get("grade_scale",
                                                                                         "copernicus-ems")),
                           calibration=prev.get("calibration"))
    if folder is None:
        raise InputError(_("name an analysis folder or a workspace analysis"))
    d = _read_record(Path(folder))
    summ = d.get("summary") or {}
    return BuildingSet(buildings=[Building.from_dict(b) for b in d.get("buildings", [])],
                       errors=list(summ.get("errors", [])), notes=list(summ.get("notes", [])),
                       files=list(summ.get("files", [])), grade_scale=str(summ.get("grade_scale", "copernicus-ems")),
                       calibration=d.get("calibration"))


def calibrate_analysis(bset: BuildingSet, labels: dict[str, str], out_dir: str | Path, *, analyst: str = "",
                       ws: Workspace | None = None, analysis_id: int | None = None) -> Calibration:
    """Fit the calibration from ``labels`` merged over the labels the analysis already has, re-grade, write the
    outputs and store labels and calibration. Returns the calibration."""
    merged = {b.building_id: b.label for b in bset.buildings if b.label}
    merged.update(labels)
    if ws is not None and analysis_id is not None:
        if labels:
            ws.set_building_labels(analysis_id, labels, analyst=analyst or "unknown")
        merged = ws.building_labels(analysis_id)
    cal = fit_calibration(bset.buildings, merged, analyst=analyst)
    apply_calibration(bset.buildings, cal, merged, bset.grade_scale)
    bset.calibration = cal.to_dict()
    _save(bset, Path(out_dir), ws, analysis_id)
    return cal


def clear_calibration(bset: BuildingSet, out_dir: str | Path, *, ws: Workspace | None = None,
                      analysis_id: int | None = None) -> None:
    """Go back to the automatic grades (labels are kept)."""
    labels = {b.building_id: b.label for b in bset.buildings if b.label}
    bset.calibration = None
    apply_calibration(bset.buildings, None, labels, bset.grade_scale)
    _save(bset, Path(out_dir), ws, analysis_id)
