"""Users page (admins; or anyone in single-user mode, to create the first admin): the accounts of a team server.

Add a user with a role and a password, change a role or a password, remove a user. Case membership is set per case
in the sidebar ("Case members"). Everything here is also ``python -m core users ...``.
"""

from __future__ import annotations

import streamlit as st

from core.errors import CoreError
from core.i18n import N_, _
from core.store.analyses import case_display_name
from core.store.users import MIN_PASSWORD, ROLES
from ui import i18n, shell
from ui import state as S
from ui.markdown_text import plain

ROLE_HELP = N_("admin: users, models and every case · analyst: their cases (analyse, review, report) · "
               "viewer: their cases (read, download reports)")
KEEP = N_("keep")  # the "keep the role" option, shown translated

st.title(_("Users"))
ctx = shell.context()
ws, me = ctx.ws, ctx.user
if me is not None and not me.is_admin:
    st.error(_("Only an admin manages users. Ask an admin to change your account."), icon=":material/lock:")
    st.stop()


def _password_pair(prefix: str, label: str) -> tuple[str, str]:
    a = st.text_input(label, type="password", key=f"{prefix}_pw", max_chars=1000,
                      help=_("At least {n} characters.").format(n=MIN_PASSWORD))
    b = st.text_input(_("Repeat it"), type="password", key=f"{prefix}_pw2", max_chars=1000)
    return a, b


def _same(a: str, b: str) -> bool:
    if a != b:
        st.error(_("The two passwords differ: type the same password twice."), icon=":material/password:")
        return False
    return True


def _done(action: str, detail: str, message: str) -> None:
    """Record the change in the accounts' trail and show ``message`` on the page drawn afresh (new lists)."""
    ws.record_event(None, me.name if me else "local analyst", action, detail)
    S.put(S.USERS_NOTE, message)
    st.rerun()


note = S.get(S.USERS_NOTE)
if note:
    st.success(plain(note), icon=":material/check:")
    S.put(S.USERS_NOTE, None)


users = ws.list_users()
if not users:
    st.info(_("No accounts yet: this workbench is in single-user mode and serves only this machine. To serve a "
              "team, create the first admin here (or `python -m core users add NAME --role admin`). From then on "
              "every page needs a login, starting with yours."), icon=":material/group_add:")
else:
    case_names = {c["id"]: case_display_name(c["name"]) for c in ws.list_cases()}
    role_names = {r: _(r) for r in ROLES}
    st.dataframe([{"user": u["name"], "role": role_names.get(u["role"], u["role"]),
                   "since": str(u["created_at"])[:16].replace("T", " "),
                   "cases": ", ".join(case_names.get(c, f"#{c}") for c in u["cases"])
                   or (_("every case") if u["role"] == "admin" else _("none yet"))} for u in users],
                 hide_index=True, width="stretch", column_config={
                     k: st.column_config.Column(label) for k, label in
                     (("user", _("User")), ("role", _("Role")), ("since", _("Since")), ("cases", _("Cases")))})
    st.caption(_(ROLE_HELP) + ". " + _("Membership of analysts and viewers: the sidebar's \"Case members\" of each "
                                       "case."))

st.subheader(_("Add a user"))
with st.form("add_user_form", clear_on_submit=True):
    c1, c2 = st.columns(2)
    name = c1.text_input(_("User name"), key=S.W_USERS_NEW_NAME, max_chars=100)
    new_roles = ROLES if users else ("admin",)
    role = c2.selectbox(_("Role"), new_roles, key=S.W_USERS_NEW_ROLE, help=_(ROLE_HELP),
                        format_func=i18n.fixed(new_roles, _))
    pw, pw2 = _password_pair("w_users_new", _("Password"))
    if st.form_submit_button(_("Add user"), type="primary", icon=":material/person_add:"):
        if not name.strip():
            st.error(_("Type a user name."), icon=":material/badge:")
        elif _same(pw, pw2):
            try:
                added = ws.add_user(name.strip(), role, pw)
            except CoreError as exc:
                shell.show_error(exc, _("Add user"))
            else:  # without users before, the next run is the login form
                _done("user added", f"{added.name} ({added.role})",
                      _("{name} can now log in as {role}.").format(name=added.name, role=_(added.role)))

if users:
    st.subheader(_("Change a user"))
    names = [u["name"] for u in users]
    with st.form("edit_user_form", clear_on_submit=True):
        c1, c2 = st.columns(2)
        who = c1.selectbox(_("User"), names, key=S.W_USERS_EDIT_NAME)
        roles = {u["name"]: u["role"] for u in users}
        role_options = (KEEP,) + ROLES
        new_role = c2.selectbox(_("Role"), role_options, key=S.W_USERS_EDIT_ROLE,
                                help=_("Changing the role ends the user's current login."),
                                format_func=i18n.fixed(role_options, _))
        pw, pw2 = _password_pair("w_users_edit", _("New password (leave empty to keep it)"))
        remove = st.checkbox(_("Remove this user (their reviews stay in the trail under their name)"),
                             key=S.W_USERS_REMOVE)
        if st.form_submit_button(_("Save"), icon=":material/save:"):
            done: list[str] = []  # for the accounts' trail (English, like its other rows)
            shown: list[str] = []  # for the page
            try:
                if remove:
                    ws.remove_user(who)
                elif not (pw or pw2) or _same(pw, pw2):
                    if new_role != KEEP and new_role != roles[who]:
                        ws.set_role(who, new_role)
                        done.append(f"role {new_role}")
                        shown.append(_("role {role}").format(role=_(new_role)))
                    if pw or pw2:
                        ws.set_password(who, pw)
                        done.append("new password")
                        shown.append(_("new password"))
                    if not done:
                        st.info(_("Nothing to change: pick a new role or type a new password."))
            except CoreError as exc:
                shell.show_error(exc, _("Change user"))
            else:
                if remove:
                    _done("user removed", who, _("{name} was removed.").format(name=who))
                if done:
                    _done("user changed", f"{who}: {', '.join(done)}",
                          _("{name}: {changes} (their current login ended).").format(name=who,
                                                                                     changes=", ".join(shown)))
