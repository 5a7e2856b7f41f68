"""``python -m core case``: list the workspace's cases, export one as an archive, import an archive.

An archive carries the case's analyses, findings, every analyst review with its audit trail, the heatmaps and
reports, and the input images (those uploaded into the workspace by default; ``--inputs all`` adds server-side
files). Importing it into another workspace gives a new case that reviews, maps and reports like the original.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.outpaths import names_folder, out_dir, out_file
from core.i18n import _
from core.store import Workspace
from core.store.analyses import case_display_name
from core.store.archive_format import INPUT_MODES


def add_case(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the case sub-command and its actions."""
    p = sub.add_parser("case", help=_("list, export and import cases of the workspace"))
    p.add_argument("--workspace", default=None, help=_("workspace folder (default: $BDA_WORKSPACE or the user's)"))
    acts = p.add_subparsers(dest="action", required=True)
    acts.add_parser("list", help=_("the cases, with their analyses and findings"))
    e = acts.add_parser("export", help=_("write one case to a .zip archive"))
    e.add_argument("case", help=_("case id or exact name"))
    e.add_argument("--out", default=".", help=_("archive path (NAME.zip), or a folder to write it in, created "
                                                "when missing (default: .)"))
    e.add_argument("--inputs", default="workspace", choices=INPUT_MODES,
                   help=_("input images to carry: those uploaded into the case (default), all (server-side "
                          "files too, those inside $BDA_SERVER_PATHS when it is set; may be large) or none"))
    i = acts.add_parser("import", help=_("add a case archive to the workspace as a new case"))
    i.add_argument("archive", help=_("a .zip written by 'case export' or the app's Export case button"))


def _case_id(ws: Workspace, ref: str) -> int:
    """The id of the case named or numbered ``ref``."""
    from core.errors import InputError

    cases = ws.list_cases()
    for c in cases:
        if c["name"] == ref or case_display_name(c["name"]) == ref:
            return int(c["id"])
    if ref.strip().isdigit() and any(int(c["id"]) == int(ref) for c in cases):
        return int(ref)
    known = ", ".join(f"{c['id']} {case_display_name(c['name'])!r}" for c in cases[:10]) or _("none")
    raise InputError(_("there is no case {ref!r} in the workspace {root}; give a case id or exact name (cases: "
                       "{known}).").format(ref=ref, root=ws.root, known=known))


def cmd_case(a: argparse.Namespace) -> int:
    """Run one case action; prints what it did."""

    ws = Workspace(a.workspace)
    if a.action == "list":
        cases = ws.list_cases()
        if not cases:
            print(_("no cases in the workspace {root}").format(root=ws.root))
        for c in cases:
            analyses = ws.list_analyses(c["id"])
            n_find = sum(int(x["n_findings"]) for x in analyses)
            print(f"{c['id']:>4}  {case_display_name(c['name'])}  "
                  + _("({event}): {n} analyses, {findings} findings").format(
                event=c.get("event") or _("no event"), n=len(analyses), findings=n_find))
            for x in analyses:
                line = _("analysis {id}  {created} UTC  {done}/{total} images  {findings} findings  {model}  {status}")
                print("        " + line.format(id=f"{x['id']:>4}", created=x["created_at"][:16].replace("T", " "),
                                               done=x["n_done"], total=x["n_inputs"], findings=x["n_findings"],
                                               model=x["model"].get("name", "?"), status=_(str(x["status"]))))
        return 0
    if a.action == "export":
        cid = _case_id(ws, a.case)
        # a folder (exports/, created when missing) gets the dated archive name; NAME.zip is the archive itself
        dest = out_dir(a.out) if names_folder(a.out, (".zip",)) else out_file(a.out, "case.zip", (".zip",))
        path = ws.export_case(cid, dest, inputs=a.inputs)
        print(path)
        return 0
    cid = ws.import_case(Path(a.archive))
    case = ws.get_case(cid)
    print(_("imported {archive} as case {id} {name!r} ({n} analyses) into {root}").format(
        archive=Path(a.archive).name, id=cid, name=case_display_name(case["name"]), n=len(ws.list_analyses(cid)),
        root=ws.root))
    return 0
