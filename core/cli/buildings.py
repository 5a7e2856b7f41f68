"""``python -m core buildings ...``: the per-building assessment of an analysis analysed with ``--footprints``.

``buildings calibrate --analysis DIR|ID --labels labels.csv`` fits the few-label calibration (columns
``building_id,damaged`` or ``building_id,grade``), prints its cross-validated figures and re-grades the other
buildings; ``buildings show`` prints the counts per grade; ``buildings reset`` goes back to the automatic grades.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    from core.buildings import BuildingSet
    from core.store import Workspace


def add_buildings(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the buildings sub-command."""
    p = sub.add_parser("buildings", help="per-building grades of an analysis with footprints: calibrate, show")
    bs = p.add_subparsers(dest="action", required=True)
    for name, text in (("calibrate", "fit the grades to analyst labels (building_id,damaged or building_id,grade)"),
                       ("show", "buildings per grade and the calibration"),
                       ("reset", "drop the calibration: automatic grades again (labels kept)")):
        q = bs.add_parser(name, help=text)
        q.add_argument("--analysis", required=True, metavar="DIR|ID",
                       help="an analyze output folder, or the id of an analysis in the workspace")
        q.add_argument("--workspace", default=None, help="workspace folder of an analysis ID")
        if name == "calibrate":
            q.add_argument("--labels", required=True, metavar="CSV",
                           help="labels: columns building_id,damaged (1/0, yes/no) or building_id,grade")
            q.add_argument("--analyst", default="", help="who labelled (recorded with the labels)")


def _source(a: argparse.Namespace) -> tuple[Workspace | None, int | None, Path]:
    """(workspace, analysis id, output folder) of ``--analysis``."""
    from core.cli.analyze import _recorded_in

    ref = str(a.analysis)
    folder = Path(ref)
    recorded = _recorded_in(folder) if folder.is_dir() else None
    if recorded is not None or (ref.strip().isdigit() and not folder.is_dir()):
        from core.store import Workspace

        ws = Workspace(a.workspace if recorded is None else recorded[0])
        aid = int(ref) if recorded is None else recorded[1]
        analysis = ws.get_analysis(aid)
        out = Path(analysis["options"].get("out") or ws.analysis_dir(aid))
        return ws, int(analysis["id"]), out if out.is_dir() else ws.analysis_dir(aid)
    if not folder.is_dir():
        raise InputError(f"{ref} is neither an analysis folder nor an analysis id")
    return None, None, folder


def print_buildings(bset: BuildingSet, out: Any = None) -> None:
    """Counts per grade, footprint errors and the calibration, for people."""
    from core.detection.grading import get_scale

    out = out or sys.stdout
    scale = get_scale(bset.grade_scale)
    counts = bset.counts()
    n = len(bset.buildings)
    parts = ", ".join(f"{scale.get(k).label.lower()} {v}" for k, v in counts.items() if v)
    print(f"buildings: {n} ({parts or 'none'})", file=out)
    for e in bset.errors:
        print(f"  error: {e}", file=sys.stderr)
    for note in bset.notes:
        print(f"  note: {note}", file=sys.stderr)
    if bset.calibration:
        from core.buildings import Calibration

        print(f"  {Calibration.from_dict(bset.calibration).summary()}", file=out)


def cmd_buildings(a: argparse.Namespace) -> int:
    """Calibrate, show or reset the buildings of an analysis."""
    from core.buildings import calibrate_analysis, clear_calibration, load_buildings, read_labels_csv

    ws, aid, folder = _source(a)
    bset = load_buildings(folder=folder, ws=ws, analysis_id=aid)
    if a.action == "calibrate":
        labels = read_labels_csv(a.labels)
        cal = calibrate_analysis(bset, labels, folder, analyst=a.analyst, ws=ws, analysis_id=aid)
        print(cal.summary())
    elif a.action == "reset":
        clear_calibration(bset, folder, ws=ws, analysis_id=aid)
    print_buildings(bset)
    print(f"wrote {folder / 'buildings.geojson'} and {folder / 'buildings.csv'}")
    return 0
