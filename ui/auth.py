"""Login on every page of a team server, and the loopback rule of a single analyst's.

``app.py`` calls :func:`gate` before the router: with users in the workspace (``python -m core users add``) a
session sees nothing but the login form until it logs in; a login expires after ``$BDA_SESSION_IDLE_MINUTES`` of
inactivity or ``$BDA_SESSION_MAX_HOURS`` in all, and ends when the user is removed or their password or role
changes. Without users the workbench is one analyst's: it serves only a loopback address, and refuses to serve
another one, saying how to add a user.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from core.errors import AuthError, CoreError
from core.i18n import _
from core.server_files.paths import serve_team
from core.store import Workspace
from core.store.users import User, session_limits
from ui import state as S
from ui.markdown_text import plain

#: Addresses that only this machine reaches.
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
ADD_ADMIN = "python -m core users add NAME --role admin"


def server_address() -> str:
    """The address this server listens on (``server.address``; empty = every interface)."""
    return str(st.get_option("server.address") or "").strip()


def is_loopback(address: str) -> bool:
    """Whether only this machine can reach ``address`` (127.x.x.x, localhost, ::1)."""
    return address in LOOPBACK or address.startswith("127.")


def _user_of_session() -> User | None:
    d = S.get(S.USER)
    return None if not d else User(**d)


def logout(note: str | None = None) -> None:
    """End this session's login (and say why, on the login form)."""
    S.put(S.USER, None)
    S.put(S.LOGIN_NOTE, note)
    S.put(S.SHELL, False)


def _valid_login(ws: Workspace) -> User | None:
    """This session's user, when its login is still valid (not idle too long, not too old, account unchanged)."""
    user = _user_of_session()
    if user is None:
        return None
    idle_s, max_s = session_limits()
    now = time.time()
    if now - float(S.get(S.LOGIN_AT) or 0) > max_s or now - float(S.get(S.SEEN_AT) or 0) > idle_s:
        logout(_("Your session expired: log in again."))
        return None
    current = ws.current_user(user)
    if current is None:
        logout(_("Your account was changed or removed: log in again."))
        return None
    S.put(S.SEEN_AT, now)
    return current


def _login_form(ws: Workspace) -> None:
    from ui import i18n  # the switch: the language can be chosen before logging in (kept for this session)

    st.title(_("BDA workbench"))
    i18n.switch(None, None)
    note = S.get(S.LOGIN_NOTE)
    if note:
        st.info(note, icon=":material/lock_clock:")
    with st.form("login_form", border=True):
        name = st.text_input(_("User name"), key=S.W_LOGIN_NAME, max_chars=100)
        password = st.text_input(_("Password"), type="password", key=S.W_LOGIN_PASSWORD, max_chars=1000)
        if st.form_submit_button(_("Log in"), type="primary", icon=":material/login:"):
            try:
                user = ws.authenticate(name, password)
            except AuthError as exc:
                st.error(_("Not logged in: {error}").format(error=plain(exc)), icon=":material/lock:")
                return
            now = time.time()
            S.put(S.USER, {"id": user.id, "name": user.name, "role": user.role, "updated_at": user.updated_at})
            S.put(S.LOGIN_AT, now)
            S.put(S.SEEN_AT, now)
            S.put(S.LOGIN_NOTE, None)
            S.put(S.CASE_ID, None)  # the first of this user's cases
            st.session_state.pop(S.W_LOGIN_PASSWORD, None)
            st.rerun()
    st.caption(_("Accounts are managed by an admin (`python -m core users ...`)."))


def _refusal(address: str) -> Callable[[], None]:
    def draw() -> None:
        st.error(_("This workbench has no user accounts, so it serves only this machine (127.0.0.1), but it was "
                   "started to listen on {address}: anyone who reaches it would see and change every case. Add an "
                   "admin first (`{command}`, password from the prompt), then reload this page; or, to work alone, "
                   "start it with --server.address 127.0.0.1.").format(
                       address=address or _("every network interface"), command=ADD_ADMIN),
                 icon=":material/gpp_bad:")
    return draw


def _unavailable(message: str) -> Callable[[], None]:
    def draw() -> None:
        st.error(_("Login unavailable: {error}").format(error=plain(message)), icon=":material/error:")
    return draw


def gate(ws: Workspace) -> tuple[User | None, Callable[[], None] | None]:
    """The logged-in user (None without accounts), and what to show instead of the app when this run may not
    show it (the login form, or the refusal to serve a network address without accounts), else None.

    ``app.py`` runs that instead of the pages as the page of every address of the app (:func:`blocked_pages`):
    drawn by the router, the form's widgets keep one identity from the first run of a session on, so the first
    click on "Log in" counts."""
    S.init()
    try:
        team = ws.has_users()
        serve_team(ws.root if team else None)  # server paths: core.server_files.paths
        if not team:
            address = server_address()
            if is_loopback(address):
                return None, None
            S.put(S.SHELL, False)
            return None, _refusal(address)
        user = _valid_login(ws)
    except CoreError as exc:
        return None, _unavailable(str(exc))
    if user is None:
        S.put(S.SHELL, False)
        return None, lambda: _login_form(ws)
    return user, None


def blocked_pages(draw: Callable[[], None], pages: list[tuple[str, str, str]]) -> list[Any]:
    """One ``st.Page`` per page of the app (same addresses: ``/report`` stays ``/report`` across the login), each
    drawing ``draw`` instead of the page."""
    return [st.Page(draw, title=title, icon=icon, url_path=Path(file).stem, default=k == 0)
            for k, (file, title, icon) in enumerate(pages)]


def account_box(user: User | None) -> None:
    """The sidebar's account line: who is logged in with a logout button, or the single-user mode note."""
    if user is None:
        st.caption(_(":material/person: Single-user mode: no accounts, served on this machine only. To serve a "
                     "team, add users (`{command}`).").format(command=ADD_ADMIN))
        return
    c1, c2 = st.columns([3, 2], vertical_alignment="center")
    c1.caption(f":material/person: **{plain(user.name)}** · {_(user.role)}")
    if c2.button(_("Log out"), key="w_logout", icon=":material/logout:"):
        logout(_("You are logged out."))
        st.rerun()
