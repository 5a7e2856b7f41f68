"""``python -m core users`` and ``python -m core cases``: the accounts of a team server.

    python -m core users add kim --role admin          # password from a prompt (twice), or one line on stdin
    python -m core users list
    python -m core users passwd kim | role kim analyst | remove kim
    python -m core cases grant "Joplin tornado" kim     # case id or exact name; revoke takes the same arguments

With at least one user the app asks everyone to log in; see the README, "Serve a team".
"""

from __future__ import annotations

import argparse
import getpass
import sys

from core.errors import InputError
from core.i18n import _
from core.store.analyses import case_display_name
from core.store.users import MIN_PASSWORD, ROLES


def add_users(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the users and cases sub-commands."""
    p = sub.add_parser("users", help=_("accounts of a team server: add, list, passwd, role, remove"))
    p.add_argument("--workspace", default=None, help=_("workspace folder (default: $BDA_WORKSPACE or the user's)"))
    acts = p.add_subparsers(dest="action", required=True)
    a = acts.add_parser("add", help=_("add a user (password from a prompt, or one line on stdin)"))
    a.add_argument("name", help=_("user name"))
    a.add_argument("--role", required=True, choices=ROLES,
                   help=_("admin: users, models and every case; analyst: their cases (analyse, review, report); "
                          "viewer: their cases (read, download reports)"))
    acts.add_parser("list", help=_("the users, their roles and cases"))
    pw = acts.add_parser("passwd", help=_("set a new password (their open logins end)"))
    pw.add_argument("name", help=_("user name"))
    r = acts.add_parser("role", help=_("change a user's role (their open logins end)"))
    r.add_argument("name", help=_("user name"))
    r.add_argument("role", choices=ROLES, help=_("the new role"))
    rm = acts.add_parser("remove", help=_("remove a user (their reviews stay in the trail)"))
    rm.add_argument("name", help=_("user name"))

    c = sub.add_parser("cases", help=_("who may open a case: grant, revoke, members"))
    c.add_argument("--workspace", default=None, help=_("workspace folder (default: $BDA_WORKSPACE or the user's)"))
    cacts = c.add_subparsers(dest="action", required=True)
    for name, what in (("grant", _("make a user a member of a case")), ("revoke", _("remove a user from a case"))):
        g = cacts.add_parser(name, help=what)
        g.add_argument("case", help=_("case id or exact name"))
        g.add_argument("name", help=_("user name"))
    m = cacts.add_parser("members", help=_("the members of a case"))
    m.add_argument("case", help=_("case id or exact name"))


def read_password(prompt: str = "") -> str:
    """A new password: typed twice at a terminal, else the first line of stdin."""
    if sys.stdin is None or not sys.stdin.isatty():
        line = sys.stdin.readline() if sys.stdin is not None else ""
        return line.rstrip("\r\n")
    first = getpass.getpass(_("{prompt} (at least {n} characters): ").format(prompt=prompt or _("Password"),
                                                                               n=MIN_PASSWORD))
    if getpass.getpass(_("Again: ")) != first:
        raise InputError(_("the two passwords differ; run the command again."))
    return first


def cmd_users(a: argparse.Namespace) -> int:
    """Run one users action; prints what it did."""
    from core.store import Workspace

    ws = Workspace(a.workspace)
    if a.action == "add":
        user = ws.add_user(a.name, a.role, read_password())
        print(_("added {role} {name!r} to {root}").format(role=user.role, name=user.name, root=ws.root)
              + ("" if user.is_admin else "; " + _("give them cases with: {command}").format(
                  command=f"python -m core cases grant CASE {user.name}")))
    elif a.action == "list":
        users = ws.list_users()
        if not users:
            print(_("no users in {root}: the app serves this machine only (127.0.0.1), without login").format(
                root=ws.root))
        for u in users:
            cases = (_("every case") if u["role"] == "admin"
                     else (", ".join(f"#{c}" for c in u["cases"]) or _("no cases")))
            print(f"{u['name']:<24} {u['role']:<8} {cases}")
    elif a.action == "passwd":
        ws.set_password(a.name, read_password(_("New password")))
        print(_("new password set for {name!r}").format(name=a.name))
    elif a.action == "role":
        ws.set_role(a.name, a.role)
        print(_("{name!r} is now {role}").format(name=a.name, role=a.role))
    else:
        ws.remove_user(a.name)
        print(_("removed {name!r}").format(name=a.name))
    return 0


def cmd_cases(a: argparse.Namespace) -> int:
    """Run one cases action; prints what it did."""
    from core.cli.case import _case_id
    from core.store import Workspace

    ws = Workspace(a.workspace)
    cid = _case_id(ws, a.case)
    if a.action == "grant":
        ws.grant_case(cid, a.name)
        print(_("{name!r} may now open case {id} {case!r}").format(name=a.name, id=cid,
            case=case_display_name(ws.get_case(cid)["name"])))
    elif a.action == "revoke":
        ws.revoke_case(cid, a.name)
        print(_("{name!r} may no longer open case {id}").format(name=a.name, id=cid))
    else:
        print("\n".join(ws.case_members(cid)) or _("case {id} has no members (admins see every case)").format(id=cid))
    return 0
