"""Users page (admins; or anyone in single-user mode, to create the first admin): the accounts of a team server.

Add a user with a role and a password, change a role or a password, remove a user. Case membership is set per case
in the sidebar ("Case members"). Everything here is also ``python -m core users ...``.
"""

from __future__ import annotations

import streamlit as st

from core.errors import CoreError
from core.store.users import MIN_PASSWORD, ROLES
from ui import shell
from ui import state as S

ROLE_HELP = ("admin: users, models and every case · analyst: their cases (analyse, review, report) · "
             "viewer: their cases (read, download reports)")

st.title("Users")
ctx = shell.context()
ws, me = ctx.ws, ctx.user
if me is not None and not me.is_admin:
    st.error("Only an admin manages users. Ask an admin to change your account.", icon=":material/lock:")
    st.stop()


def _password_pair(prefix: str, label: str) -> tuple[str, str]:
    a = st.text_input(label, type="password", key=f"{prefix}_pw", max_chars=1000,
                      help=f"At least {MIN_PASSWORD} characters.")
    b = st.text_input("Repeat it", type="password", key=f"{prefix}_pw2", max_chars=1000)
    return a, b


def _same(a: str, b: str) -> bool:
    if a != b:
        st.error("The two passwords differ: type the same password twice.", icon=":material/password:")
        return False
    return True


def _done(action: str, detail: str, message: str) -> None:
    """Record the change in the accounts' trail and show ``message`` on the page drawn afresh (new lists)."""
    ws.record_event(None, me.name if me else "local analyst", action, detail)
    S.put(S.USERS_NOTE, message)
    st.rerun()


note = S.get(S.USERS_NOTE)
if note:
    st.success(note, icon=":material/check:")
    S.put(S.USERS_NOTE, None)


users = ws.list_users()
if not users:
    st.info("No accounts yet: this workbench is in single-user mode and serves only this machine. To serve a team, "
            "create the first admin here (or `python -m core users add NAME --role admin`). From then on every "
            "page needs a login, starting with yours.", icon=":material/group_add:")
else:
    case_names = {c["id"]: c["name"] for c in ws.list_cases()}
    st.dataframe([{"user": u["name"], "role": u["role"], "since": str(u["created_at"])[:16].replace("T", " "),
                   "cases": ", ".join(case_names.get(c, f"#{c}") for c in u["cases"])
                   or ("every case" if u["role"] == "admin" else "none yet")} for u in users],
                 hide_index=True, width="stretch")
    st.caption(ROLE_HELP + ". Membership of analysts and viewers: the sidebar's \"Case members\" of each case.")

st.subheader("Add a user")
with st.form("add_user_form", clear_on_submit=True):
    c1, c2 = st.columns(2)
    name = c1.text_input("User name", key=S.W_USERS_NEW_NAME, max_chars=100)
    role = c2.selectbox("Role", ROLES if users else ("admin",), key=S.W_USERS_NEW_ROLE, help=ROLE_HELP)
    pw, pw2 = _password_pair("w_users_new", "Password")
    if st.form_submit_button("Add user", type="primary", icon=":material/person_add:"):
        if not name.strip():
            st.error("Type a user name.", icon=":material/badge:")
        elif _same(pw, pw2):
            try:
                added = ws.add_user(name.strip(), role, pw)
            except CoreError as exc:
                shell.show_error(exc, "Add user")
            else:  # without users before, the next run is the login form
                _done("user added", f"{added.name} ({added.role})", f"{added.name} can now log in as {added.role}.")

if users:
    st.subheader("Change a user")
    names = [u["name"] for u in users]
    with st.form("edit_user_form", clear_on_submit=True):
        c1, c2 = st.columns(2)
        who = c1.selectbox("User", names, key=S.W_USERS_EDIT_NAME)
        roles = {u["name"]: u["role"] for u in users}
        new_role = c2.selectbox("Role", ("keep",) + ROLES, key=S.W_USERS_EDIT_ROLE,
                                help="Changing the role ends the user's current login.")
        pw, pw2 = _password_pair("w_users_edit", "New password (leave empty to keep it)")
        remove = st.checkbox("Remove this user (their reviews stay in the trail under their name)",
                             key=S.W_USERS_REMOVE)
        if st.form_submit_button("Save", icon=":material/save:"):
            done: list[str] = []
            try:
                if remove:
                    ws.remove_user(who)
                elif not (pw or pw2) or _same(pw, pw2):
                    if new_role != "keep" and new_role != roles[who]:
                        ws.set_role(who, new_role)
                        done.append(f"role {new_role}")
                    if pw or pw2:
                        ws.set_password(who, pw)
                        done.append("new password")
                    if not done:
                        st.info("Nothing to change: pick a new role or type a new password.")
            except CoreError as exc:
                shell.show_error(exc, "Change user")
            else:
                if remove:
                    _done("user removed", who, f"{who} was removed.")
                if done:
                    _done("user changed", f"{who}: {', '.join(done)}",
                          f"{who}: {', '.join(done)} (their current login ended).")
