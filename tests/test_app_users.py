"""The Users page (issue 12): an admin adds users, changes roles and passwords and removes users in the app; the
first admin can be created from single-user mode; analysts and viewers never see the page."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import AuthError
from core.store import Workspace
from tests.support.app import new_app, texts
from ui import state as S

torch.set_num_threads(1)

PW = "correct horse battery"


def login(name: str, password: str = PW):
    at = new_app().run()
    at.text_input(key=S.W_LOGIN_NAME).input(name)
    at.text_input(key=S.W_LOGIN_PASSWORD).input(password)
    next(b for b in at.button if b.label == "Log in").click().run()
    assert not at.exception, texts(at.exception)
    return at


def users_page(at):
    at.switch_page("pages/users.py").run()
    assert not at.exception, texts(at.exception)
    assert [t.value for t in at.title] == ["Users"], texts(at.error)
    return at


def submit(at, label: str):
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, texts(at.exception)
    return at


def test_the_first_admin_is_created_from_single_user_mode_and_then_a_login_is_needed(app_env: Path) -> None:
    at = users_page(new_app().run())
    assert any("single-user mode" in i for i in texts(at.info))
    assert at.selectbox(key=S.W_USERS_NEW_ROLE).options == ["admin"]  # the first account must be an admin
    at.text_input(key=S.W_USERS_NEW_NAME).input("kim")
    at.text_input(key="w_users_new_pw").input(PW)
    at.text_input(key="w_users_new_pw2").input(PW)
    at = submit(at, "Add user")
    assert [t.value for t in at.title] == ["BDA workbench"]  # the login form, from now on
    ws = Workspace(app_env)
    assert ws.authenticate("kim", PW).role == "admin"


def test_an_admin_adds_changes_and_removes_users(app_env: Path) -> None:
    ws = Workspace(app_env)
    ws.add_user("kim", "admin", PW)
    at = users_page(login("kim"))
    at.text_input(key=S.W_USERS_NEW_NAME).input("lee")
    at.selectbox(key=S.W_USERS_NEW_ROLE).select("viewer")
    at.text_input(key="w_users_new_pw").input(PW)
    at.text_input(key="w_users_new_pw2").input(PW + "x")
    at = submit(at, "Add user")
    assert any("two passwords differ" in e for e in texts(at.error)), texts(at.error)
    assert [u["name"] for u in ws.list_users()] == ["kim"]  # nothing added on a mismatch
    at.text_input(key=S.W_USERS_NEW_NAME).input("lee")
    at.selectbox(key=S.W_USERS_NEW_ROLE).select("viewer")
    at.text_input(key="w_users_new_pw").input(PW)
    at.text_input(key="w_users_new_pw2").input(PW)
    at = submit(at, "Add user")
    assert any("lee can now log in as viewer" in s for s in texts(at.success)), texts(at.error)
    assert {u["name"]: u["role"] for u in ws.list_users()} == {"kim": "admin", "lee": "viewer"}

    at.selectbox(key=S.W_USERS_EDIT_NAME).select("lee")
    at.selectbox(key=S.W_USERS_EDIT_ROLE).select("analyst")
    at.text_input(key="w_users_edit_pw").input("a new long password")
    at.text_input(key="w_users_edit_pw2").input("a new long password")
    at = submit(at, "Save")
    assert any("role analyst, new password" in s for s in texts(at.success)), texts(at.error)
    assert ws.authenticate("lee", "a new long password").role == "analyst"
    with pytest.raises(AuthError):
        ws.authenticate("lee", PW)

    at.selectbox(key=S.W_USERS_EDIT_NAME).select("kim")  # the last admin cannot demote themselves
    at.selectbox(key=S.W_USERS_EDIT_ROLE).select("viewer")
    at = submit(at, "Save")
    assert any("last admin" in e for e in texts(at.error)), texts(at.error)
    assert ws.get_user("kim").role == "admin"

    at.selectbox(key=S.W_USERS_EDIT_NAME).select("lee")
    at.checkbox(key=S.W_USERS_REMOVE).check()
    at = submit(at, "Save")
    assert any("lee was removed" in s for s in texts(at.success))
    assert [u["name"] for u in ws.list_users()] == ["kim"]
    events = [(e["user"], e["action"], e["detail"]) for e in ws.account_events()]
    assert events == [("kim", "user added", "lee (viewer)"), ("kim", "user changed", "lee: role analyst, new password"),
                      ("kim", "user removed", "lee")]


def test_analysts_and_viewers_never_get_the_users_page(app_env: Path) -> None:
    ws = Workspace(app_env)
    ws.add_user("kim", "admin", PW)
    ws.add_user("lee", "analyst", PW)
    at = login("lee")
    assert "Users" not in [link.label for link in at.sidebar.get("page_link")]
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not registered for them at all
        at.switch_page("pages/users.py")
