"""``python -m core buildings ...``: the per-building assessment of an analysis analysed with ``--footprints``.

``buildings calibrate --analysis DIR|ID --labels labels.csv`` fits the few-label calibration (columns
``building_id,damaged`` or ``building_id,grade``), prints its cross-validated figures and re-grades the other
buildings; ``buildings show`` prints the counts per grade; ``buildings reset`` goes back to the automatic grades;
``buildings suggest --analysis DIR|ID [-n 20] [--out CSV]`` lists the unlabelled buildings most worth labelling
(:mod:`core.buildings.suggest`) and writes them as a CSV template for ``calibrate --labels``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InputError
from core.i18n import _

if TYPE_CHECKING:
    from core.buildings import BuildingSet
    from core.store import Workspace


def add_buildings(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the buildings sub-command."""
    p = sub.add_parser("buildings", help=_("per-building grades of an analysis with footprints: calibrate, show"))
    bs = p.add_subparsers(dest="action", required=True)
    for name, text in (("calibrate", _("fit the grades to analyst labels (building_id,damaged or building_id,grade)")),
                       ("show", _("buildings per grade and the calibration")),
                       ("reset", _("drop the calibration: automatic grades again (labels kept)")),
                       ("suggest", _("list the unlabelled buildings most worth labelling next and write them as a "
                                     "labels CSV template (fill its damaged column, then calibrate --labels)"))):
        q = bs.add_parser(name, help=text)
        q.add_argument("--analysis", required=True, metavar="DIR|ID",
                       help=_("an analyze output folder, or the id of an analysis in the workspace"))
        q.add_argument("--workspace", default=None, help=_("workspace folder of an analysis ID"))
        if name == "calibrate":
            q.add_argument("--labels", required=True, metavar="CSV",
                           help=_("labels: columns building_id,damaged (1/0, yes/no) or building_id,grade"))
            q.add_argument("--analyst", default="", help=_("who labelled (recorded with the labels)"))
        if name == "suggest":
            q.add_argument("-n", "--n", type=int, default=20, dest="n",
                           help=_("how many buildings to suggest (default 20)"))
            q.add_argument("--out", default=None, metavar="CSV",
                           help=_("the template to write (default: label_suggestions.csv in the analysis folder)"))


def _source(a: argparse.Namespace) -> tuple[Workspace | None, int | None, Path]:
    """(workspace, analysis id, output folder) of ``--analysis``."""
    from core.cli.analyze import recorded_in

    ref = str(a.analysis)
    folder = Path(ref)
    recorded = recorded_in(folder) if folder.is_dir() else None
    if recorded is not None or (ref.strip().isdigit() and not folder.is_dir()):
        from core.store import Workspace

        ws = Workspace(a.workspace if recorded is None else recorded[0])
        aid = int(ref) if recorded is None else recorded[1]
        analysis = ws.get_analysis(aid)
        out = Path(analysis["options"].get("out") or ws.analysis_dir(aid))
        return ws, int(analysis["id"]), out if out.is_dir() else ws.analysis_dir(aid)
    if not folder.is_dir():
        raise InputError(_("{ref} is neither an analysis folder nor an analysis id").format(ref=ref))
    return None, None, folder


def analysis_ref(analysis: str, workspace: str | None) -> str:
    """How ``--analysis`` (and ``--workspace``) name an analysis in a command printed for the user to run (quoted
    for a shell: folders can hold spaces)."""
    import shlex

    ref = shlex.quote(analysis)
    return ref if workspace is None else f"{ref} --workspace {shlex.quote(workspace)}"


def print_buildings(bset: BuildingSet, out: Any = None, ref: str = "ID") -> None:
    """Counts per grade, what grades without labels mean, footprint errors and the calibration, for people
    (``ref``: how ``--analysis`` names this analysis, for the command that suggests buildings to label)."""
    from core.detection.grading import get_scale

    out = out or sys.stdout
    scale = get_scale(bset.grade_scale)
    counts = bset.counts()
    n = len(bset.buildings)
    parts = ", ".join(f"{scale.get(k).label.lower()} {v}" for k, v in counts.items() if v)
    print(_("buildings: {n} ({parts})").format(n=n, parts=parts or _("none")), file=out)
    from core.buildings import relative_grades_note

    if relative := relative_grades_note(bset.buildings):
        print("  " + _("note: {message}").format(message=relative + " " + _(
            "`python -m core buildings suggest --analysis {ref}` lists the informative ones.").format(ref=ref)),
              file=out)
    for e in bset.errors:
        print("  " + _("error: {message}").format(message=e), file=sys.stderr)
    for note in bset.notes:
        print("  " + _("note: {message}").format(message=note), file=sys.stderr)
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
    elif a.action == "suggest":
        return _suggest(a, bset, folder)
    print_buildings(bset, ref=analysis_ref(a.analysis, a.workspace))
    print(_("wrote {geojson} and {csv}").format(geojson=folder / "buildings.geojson", csv=folder / "buildings.csv"))
    return 0


def _suggest(a: argparse.Namespace, bset: BuildingSet, folder: Path) -> int:
    """Print the suggested buildings and write their labels template."""
    from core.buildings.suggest import suggest_labels, write_label_template

    sug = suggest_labels(bset.buildings, a.n, bset.calibration)
    if not sug:
        print(_("no unlabelled analysed building left to suggest"))
        return 0
    path = write_label_template(sug, bset.buildings, Path(a.out) if a.out else folder / "label_suggestions.csv")
    basis = _("the current calibration") if bset.calibration else _("the prior (no calibration yet)")
    print(_("{n} buildings to label (P(damaged) under {basis}):").format(n=len(sug), basis=basis))
    width = max(len(s.building_id) for s in sug)
    print(f"  {'building_id':{width}s}  p_damaged  score    reason")  # the template's column names
    for s in sug:
        score = "n/a" if s.score is None else f"{s.score:.3f}"
        print(f"  {s.building_id:{width}s}  {s.p_damaged:9.3f}  {score:7s}  {_(s.reason)}")
    ref = analysis_ref(a.analysis, a.workspace)
    print(_("wrote {path}: fill its damaged column (1 / 0, yes / no, or a grade such as destroyed), then run")
          .format(path=path) + f"\n  python -m core buildings calibrate --analysis {ref} --labels {path}")
    return 0
