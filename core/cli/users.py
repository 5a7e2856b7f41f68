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
from core.store.users import MIN_PASSWORD, ROLES


def add_users(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the users and cases sub-commands."""
    p = sub.add_parser("users", help="accounts of a team server: add, list, passwd, role, remove")
    p.add_argument("--workspace", default=None, help="workspace folder (default: $BDA_WORKSPACE or the user's)")
    acts = p.add_subparsers(dest="action", required=True)
    a = acts.add_parser("add", help="add a user (password from a prompt, or one line on stdin)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=ROLES,
                   help="admin: users, models and every case; analyst: their cases (analyse, review, report); "
                        "viewer: their cases (read, download reports)")
    acts.add_parser("list", help="the users, their roles and cases")
    pw = acts.add_parser("passwd", help="set a new password (their open logins end)")
    pw.add_argument("name")
    r = acts.add_parser("role", help="change a user's role (their open logins end)")
    r.add_argument("name")
    r.add_argument("role", choices=ROLES)
    rm = acts.add_parser("remove", help="remove a user (their reviews stay in the trail)")
    rm.add_argument("name")

    c = sub.add_parser("cases", help="who may open a case: grant, revoke, members")
    c.add_argument("--workspace", default=None, help="workspace folder (default: $BDA_WORKSPACE or the user's)")
    cacts = c.add_subparsers(dest="action", required=True)
    for name, what in (("grant", "make a user a member of a case"), ("revoke", "remove a user from a case")):
        g = cacts.add_parser(name, help=what)
        g.add_argument("case", help="case id or exact name")
        g.add_argument("name", help="user name")
    m = cacts.add_parser("members", help="the members of a case")
    m.add_argument("case", help="case id or exact name")


def read_password(prompt: str = "Password") -> str:
    """A new password: typed twice at a terminal, else the first line of stdin."""
    if sys.stdin is None or not sys.stdin.isatty():
        line = sys.stdin.readline() if sys.stdin is not None else ""
        return line.rstrip("\r\n")
    first = getpass.getpass(f"{prompt} (at least {MIN_PASSWORD} characters): ")
    if getpass.getpass("Again: ") != first:
        raise InputError(_("the two passwords differ; run the command again."))
    return first


def cmd_users(a: argparse.Namespace) -> int:
    """Run one users action; prints what it did."""
    from core.store import Workspace

    ws = Workspace(a.workspace)
    if a.action == "add":
        user = ws.add_user(a.name, a.role, read_password())
        print(f"added {user.role} {user.name!r} to {ws.root}" + ("" if user.is_admin else
              f"; give them cases with: python -m core cases grant CASE {user.name}"))
    elif a.action == "list":
        users = ws.list_users()
        if not users:
            print(f"no users in {ws.root}: the app serves this machine only (127.0.0.1), without login")
        for u in users:
            cases = "every case" if u["role"] == "admin" else (", ".join(f"#{c}" for c in u["cases"]) or "no cases")
            print(f"{u['name']:<24} {u['role']:<8} {cases}")
    elif a.action == "passwd":
        ws.set_password(a.name, read_password("New password"))
        print(f"new password set for {a.name!r}")
    elif a.action == "role":
        ws.set_role(a.name, a.role)
        print(f"{a.name!r} is now {a.role}")
    else:
        ws.remove_user(a.name)
        print(f"removed {a.name!r}")
    return 0


def cmd_cases(a: argparse.Namespace) -> int:
    """Run one cases action; prints what it did."""
    from core.cli.case import _case_id
    from core.store import Workspace

    ws = Workspace(a.workspace)
    cid = _case_id(ws, a.case)
    if a.action == "grant":
        ws.grant_case(cid, a.name)
        print(f"{a.name!r} may now open case {cid} {ws.get_case(cid)['name']!r}")
    elif a.action == "revoke":
        ws.revoke_case(cid, a.name)
        print(f"{a.name!r} may no longer open case {cid}")
    else:
        print("\n".join(ws.case_members(cid)) or f"case {cid} has no members (admins see every case)")
    return 0
