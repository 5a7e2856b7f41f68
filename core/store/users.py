"""Accounts of a team server: users with argon2 password hashes and a role, per-case membership, rate-limited logins.

Roles: ``admin`` (users, models, every case), ``analyst`` (their cases: analyse, review, report), ``viewer``
(their cases: read and download reports). A workspace without users is a single analyst's: the app then serves
only on loopback (see ``app.py``). Passwords are hashed with argon2id through ``argon2-cffi``; nothing here is
home-made cryptography. Failed logins are kept in the database, so the limit holds across server processes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.errors import AuthError, InputError
from core.i18n import N_, _, ngettext
from core.store.base import WorkspaceBase
from core.store.codec import check_id, check_name, check_text
from core.store.db import inserted_id, utc_now

ROLES = ("admin", "analyst", "viewer")
#: Failed logins of one name allowed within :data:`FAILURE_WINDOW_S` before further tries are refused unchecked.
MAX_FAILURES = 5
FAILURE_WINDOW_S = 15 * 60
MIN_PASSWORD = 10
#: Environment variables: minutes of inactivity after which a login expires, and hours after which it always does.
ENV_IDLE_MINUTES = "BDA_SESSION_IDLE_MINUTES"
ENV_MAX_HOURS = "BDA_SESSION_MAX_HOURS"

_HASHER = PasswordHasher()
_DUMMY: list[str] = []  #: a hash verified for unknown names, so that they take as long as known ones (made once)


def _dummy() -> str:
    if not _DUMMY:
        _DUMMY.append(_HASHER.hash(os.urandom(16).hex()))
    return _DUMMY[0]


@dataclass(frozen=True)
class User:
    """A logged-in or listed user: what pages need to decide what to show."""

    id: int
    name: str
    role: str
    updated_at: str  #: changes with the password or role: a login made before is no longer valid

    @property
    def is_admin(self) -> bool:
        """Users, models and every case."""
        return self.role == "admin"

    @property
    def can_work(self) -> bool:
        """May analyse, review and import (admins and analysts; viewers only read)."""
        return self.role in ("admin", "analyst")


def session_limits() -> tuple[float, float]:
    """(idle seconds, maximum seconds) of a login: ``$BDA_SESSION_IDLE_MINUTES`` (default 30) and
    ``$BDA_SESSION_MAX_HOURS`` (default 12)."""
    def number(env: str, default: float) -> float:
        raw = os.environ.get(env, "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise InputError(_("{env}={raw!r} is not a number; set it to e.g. {default:g} or unset it").format(
                                 env=env, raw=raw, default=default)) from None
        if not value > 0:
            raise InputError(_("{env} must be positive; got {raw!r}").format(env=env, raw=raw))
        return value
    return number(ENV_IDLE_MINUTES, 30) * 60, number(ENV_MAX_HOURS, 12) * 3600


def _check_role(role: Any) -> str:
    if role not in ROLES:
        raise InputError(_("role must be one of {value}; got {role!r}.").format(value=', '.join(ROLES), role=role))
    return str(role)


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InputError(_("the password must have at least {min_password} characters; choose a longer one.").format(
                             min_password=MIN_PASSWORD))
    check_text(password, N_("password"), max_len=1000)
    return password


def _user(row: Any) -> User:
    return User(id=int(row["id"]), name=str(row["name"]), role=str(row["role"]), updated_at=str(row["updated_at"]))


class UsersMixin(WorkspaceBase):
    """Users, roles, case membership, logins."""

    # -- users -----------------------------------------------------------------------------------------------
    def has_users(self) -> bool:
        """Whether any account exists (then the app requires a login on every page)."""
        return bool(self._db.query("SELECT 1 FROM users LIMIT 1"))

    def add_user(self, name: str, role: str, password: str) -> User:
        """A new user; :class:`InputError` when the name is taken, the role unknown or the password short."""
        name = check_name(name, N_("user name"), max_len=100)
        role, password = _check_role(role), _check_password(password)
        digest, now = _HASHER.hash(password), utc_now()
        with self._db.write() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone():
                raise InputError(_("there is already a user {name!r}; choose another name or remove that user "
                                   "first.").format(name=name))
            uid = inserted_id(conn.execute("INSERT INTO users(name, role, password_hash, created_at, updated_at) "
                                           "VALUES (?, ?, ?, ?, ?)", (name, role, digest, now, now)))
        return User(uid, name, role, now)

    def get_user(self, name: str) -> User:
        """The user called ``name`` (case-insensitive)."""
        check_text(name, N_("user name"), max_len=100, allow_empty=False)
        rows = self._db.query("SELECT * FROM users WHERE name=?", (name,))
        if not rows:
            known = ", ".join(u["name"] for u in self.list_users()[:20]) or _("none")
            raise InputError(_("there is no user {name!r} in the workspace {root} (users: {known}).").format(
                                 name=name, root=self.root, known=known))
        return _user(rows[0])

    def list_users(self) -> list[dict[str, Any]]:
        """Every user: id, name, role, created_at and ``cases`` (ids of the cases they are a member of)."""
        users = [{k: r[k] for k in r.keys()}
                 for r in self._db.query("SELECT id, name, role, created_at FROM users ORDER BY name")]
        members: dict[int, list[int]] = {}
        for r in self._db.query("SELECT user_id, case_id FROM case_members ORDER BY case_id"):
            members.setdefault(int(r["user_id"]), []).append(int(r["case_id"]))
        return [{**u, "cases": members.get(int(u["id"]), [])} for u in users]

    def set_password(self, name: str, password: str) -> None:
        """Give ``name`` a new password (logins made with the old one end)."""
        user, password = self.get_user(name), _check_password(password)
        with self._db.write() as conn:
            conn.execute("UPDATE users SET password_hash=?, updated_at=? WHERE id=?",
                         (_HASHER.hash(password), utc_now(), user.id))

    def set_role(self, name: str, role: str) -> None:
        """Change ``name``'s role (their logins end); the last admin cannot be demoted."""
        user, role = self.get_user(name), _check_role(role)
        with self._db.write() as conn:
            self._keep_an_admin(conn, user, "change the role of")
            conn.execute("UPDATE users SET role=?, updated_at=? WHERE id=?", (role, utc_now(), user.id))

    def remove_user(self, name: str) -> None:
        """Remove ``name`` and their case memberships (their reviews stay in the trail under their name)."""
        user = self.get_user(name)
        with self._db.write() as conn:
            self._keep_an_admin(conn, user, "remove")
            conn.execute("DELETE FROM users WHERE id=?", (user.id,))

    @staticmethod
    def _keep_an_admin(conn: Any, user: User, what: str) -> None:
        if user.role != "admin":
            return
        others = conn.execute("SELECT COUNT(*) FROM users WHERE role='admin' AND id<>?", (user.id,)).fetchone()[0]
        users = conn.execute("SELECT COUNT(*) FROM users WHERE id<>?", (user.id,)).fetchone()[0]
        if users and not others:
            raise InputError(_("{name} is the last admin; make another user admin before you {what} them.").format(
                                 name=user.name, what=what))

    def current_user(self, user: User) -> User | None:
        """``user`` as the database has it now, or None when they were removed or their password or role changed
        since (a login made before such a change is no longer valid)."""
        rows = self._db.query("SELECT * FROM users WHERE id=?", (user.id,))
        if not rows or str(rows[0]["updated_at"]) != user.updated_at:
            return None
        return _user(rows[0])

    # -- logins ----------------------------------------------------------------------------------------------
    def authenticate(self, name: str, password: str, *, now: float | None = None) -> User:
        """The user whose name and password these are; :class:`AuthError` otherwise. After
        :data:`MAX_FAILURES` failures of one name within :data:`FAILURE_WINDOW_S`, further tries are refused
        without checking until the window has passed."""
        now = time.time() if now is None else now
        name, password = str(name or "").strip(), str(password or "")
        if not name or not password:
            raise AuthError(_("enter your user name and password."))
        with self._db.write() as conn:
            conn.execute("DELETE FROM login_failures WHERE at < ?", (now - FAILURE_WINDOW_S,))
            recent = [r[0] for r in conn.execute("SELECT at FROM login_failures WHERE name=? ORDER BY at",
                                                 (name,)).fetchall()]
        if len(recent) >= MAX_FAILURES:
            wait = max(1, round((recent[-MAX_FAILURES] + FAILURE_WINDOW_S - now) / 60))
            raise AuthError(_("too many failed logins for {name!r}: try again in {wait} minute(s), or ask an admin "
                              "to set a new password (python -m core users passwd NAME).").format(
                                name=name, wait=wait))
        rows = self._db.query("SELECT * FROM users WHERE name=?", (name,))
        digest = str(rows[0]["password_hash"]) if rows else _dummy()
        try:
            _HASHER.verify(digest, password)
            ok = bool(rows)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok:
            with self._db.write() as conn:
                conn.execute("INSERT INTO login_failures(name, at) VALUES (?, ?)", (name, now))
            left = MAX_FAILURES - len(recent) - 1
            raise AuthError(ngettext("wrong user name or password ({n} more try before a pause).",
                                     "wrong user name or password ({n} more tries before a pause).", left).format(
                                         n=left) if left <= 2 else _("wrong user name or password."))
        with self._db.write() as conn:
            conn.execute("DELETE FROM login_failures WHERE name=?", (name,))
            if _HASHER.check_needs_rehash(digest):
                conn.execute("UPDATE users SET password_hash=? WHERE id=?", (_HASHER.hash(password), rows[0]["id"]))
        return _user(rows[0])

    # -- cases -----------------------------------------------------------------------------------------------
    def grant_case(self, case_id: int, name: str) -> None:
        """Make ``name`` a member of the case (idempotent)."""
        cid, user = int(self.get_case(case_id)["id"]), self.get_user(name)  # type: ignore[attr-defined]
        with self._db.write() as conn:
            conn.execute("INSERT OR IGNORE INTO case_members(case_id, user_id, granted_at) VALUES (?, ?, ?)",
                         (cid, user.id, utc_now()))

    def revoke_case(self, case_id: int, name: str) -> None:
        """Remove ``name`` from the case's members."""
        cid, user = check_id(case_id, N_("case id")), self.get_user(name)
        with self._db.write() as conn:
            conn.execute("DELETE FROM case_members WHERE case_id=? AND user_id=?", (cid, user.id))

    def case_members(self, case_id: int) -> list[str]:
        """Names of the case's members."""
        cid = check_id(case_id, N_("case id"))
        return [str(r["name"]) for r in self._db.query(
            "SELECT u.name FROM case_members m JOIN users u ON u.id = m.user_id WHERE m.case_id=? ORDER BY u.name",
            (cid,))]

    def visible_cases(self, user: User | None) -> list[dict[str, Any]]:
        """The cases ``user`` may open (:meth:`list_cases` order): every case for an admin or without accounts
        (``user`` None), else the cases they are a member of."""
        cases: list[dict[str, Any]] = self.list_cases()  # type: ignore[attr-defined]
        if user is None or user.is_admin:
            return cases
        mine = {int(r["case_id"]) for r in self._db.query("SELECT case_id FROM case_members WHERE user_id=?",
                                                          (user.id,))}
        return [c for c in cases if int(c["id"]) in mine]

    def check_case_access(self, user: User | None, case_id: int) -> None:
        """:class:`AuthError` unless ``user`` may open the case."""
        if not any(int(c["id"]) == int(case_id) for c in self.visible_cases(user)):
            raise AuthError(_("case #{case_id} is not one of your cases; ask an admin to add you to it.").format(
                                case_id=case_id))

    def record_event(self, case_id: int | None, user: str, action: str, detail: str = "") -> None:
        """Note who did what to a case (export, import) and when."""
        with self._db.write() as conn:
            conn.execute("INSERT INTO case_events(case_id, at, user, action, detail) VALUES (?, ?, ?, ?, ?)",
                         (case_id, utc_now(), check_name(user, N_("user name"), max_len=200), action, detail))

    def case_events(self, case_id: int) -> list[dict[str, Any]]:
        """Exports and imports of a case, oldest first: at, user, action, detail."""
        cid = check_id(case_id, N_("case id"))
        rows = self._db.query("SELECT at, user, action, detail FROM case_events WHERE case_id=? ORDER BY id", (cid,))
        return [{k: r[k] for k in r.keys()} for r in rows]

    def account_events(self) -> list[dict[str, Any]]:
        """Changes to the accounts themselves (users added, changed, removed), oldest first: at, user, action,
        detail."""
        rows = self._db.query("SELECT at, user, action, detail FROM case_events WHERE case_id IS NULL ORDER BY id")
        return [{k: r[k] for k in r.keys()} for r in rows]
