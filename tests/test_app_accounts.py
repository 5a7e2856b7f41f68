"""Login, roles and per-case access in the app (issue 12), in-process Streamlit sessions (AppTest): login on every
page when users exist, wrong passwords refused, sessions that expire, logout; a viewer cannot review, an analyst
sees only their cases; without users the app refuses to serve another address than loopback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from streamlit import config as st_config

from core.store import Workspace
from tests.support.app import new_app, texts
from tests.support.store import make_result, new_analysis
from ui import state as S

torch.set_num_threads(1)

PW = "correct horse battery"


@pytest.fixture
def team(app_env: Path) -> dict[str, int]:
    """A workspace with an admin, an analyst and a viewer; two cases, the analyst and viewer members of one."""
    ws = Workspace(app_env)
    ws.add_user("kim", "admin", PW)
    ws.add_user("lee", "analyst", PW)
    ws.add_user("park", "viewer", PW)
    theirs = ws.create_case("Another team's")
    new_analysis(ws, ["b.tif"], case=theirs)
    mine = ws.create_case("Lee's")
    aid = new_analysis(ws, ["a.tif"], case=mine)
    ws.save_scene_result(aid, make_result("a.tif"))
    ws.finish_analysis(aid)
    for name in ("lee", "park"):
        ws.grant_case(mine, name)
    return {"mine": mine, "theirs": theirs, "analysis": aid}


def login(name: str, password: str = PW):
    at = new_app().run()
    assert not at.exception, texts(at.exception)
    at.text_input(key=S.W_LOGIN_NAME).input(name)
    at.text_input(key=S.W_LOGIN_PASSWORD).input(password)
    next(b for b in at.button if b.label == "Log in").click().run()
    assert not at.exception, texts(at.exception)
    return at


def test_every_page_needs_a_login_when_users_exist(team: dict[str, int]) -> None:
    at = new_app().run()
    assert [t.value for t in at.title] == ["BDA workbench"] and at.text_input(key=S.W_LOGIN_PASSWORD)
    assert not at.sidebar.selectbox  # no sidebar either (every page's address shows the form: test_e2e_accounts)
    bad = login("lee", "not the password")
    assert any("wrong user name or password" in e for e in texts(bad.error)), texts(bad.error)
    assert [t.value for t in bad.title] == ["BDA workbench"]
    at = login("lee")
    assert [t.value for t in at.title] == ["Analyze"]
    assert any("**lee** · analyst" in c for c in texts(at.sidebar.caption))
    at.switch_page("pages/report.py").run()
    assert [t.value for t in at.title] == ["Report"]
    at.sidebar.button(key="w_logout").click().run()
    assert [t.value for t in at.title] == ["BDA workbench"]
    assert any("logged out" in i for i in texts(at.info))


def test_a_login_expires_and_ends_when_the_account_changes(team: dict[str, int], app_env: Path) -> None:
    at = login("lee")
    at.session_state[S.SEEN_AT] = time.time() - 31 * 60  # 31 minutes idle (the default limit is 30)
    at.run()
    assert [t.value for t in at.title] == ["BDA workbench"]
    assert any("session expired" in i for i in texts(at.info))
    at = login("lee")
    Workspace(app_env).set_role("lee", "viewer")
    at.run()
    assert [t.value for t in at.title] == ["BDA workbench"]
    assert any("account was changed" in i for i in texts(at.info))


def test_an_analyst_sees_only_their_cases(team: dict[str, int]) -> None:
    at = login("lee")
    box = at.sidebar.selectbox(key=S.W_CASE)
    assert box.options == ["Lee's (#2)"] and at.session_state[S.CASE_ID] == team["mine"]
    at.session_state[S.CASE_ID] = team["theirs"]  # a forged choice
    at.run()
    assert at.session_state[S.CASE_ID] == team["mine"]
    admin = login("kim")
    assert set(admin.sidebar.selectbox(key=S.W_CASE).options) == {"Lee's (#2)", "Another team's (#1)"}


def test_a_viewer_cannot_review_or_analyse(team: dict[str, int], app_env: Path) -> None:
    at = login("park")
    assert not at.file_uploader or all("Import" not in u.label for u in at.file_uploader)
    assert any("viewer account" in i for i in texts(at.info))
    at.switch_page("pages/report.py").run()
    assert not at.exception, texts(at.exception)
    assert "disabled: true" in str(at.data_editor[0].proto)
    assert not [b for b in at.button if b.label == "Save review"]
    ws = Workspace(app_env)
    fid = ws.scene_results(team["analysis"])[0].findings[0].id
    at.session_state[S.review_key(team["analysis"])] = {"edited_rows": {0: {"review": "rejected"}},
                                                        "added_rows": [], "deleted_rows": []}
    at.run()  # an edit sent to the read-only table anyway
    assert ws.get_finding(fid).review_status == "unreviewed" and ws.review_history(fid) == []
    lee = login("lee")
    lee.switch_page("pages/report.py").run()
    lee.session_state[S.review_key(team["analysis"])] = {"edited_rows": {0: {"review": "rejected"}},
                                                         "added_rows": [], "deleted_rows": []}
    lee.run()
    assert [(r["analyst"], r["status_after"]) for r in ws.review_history(fid)] == [("lee", "rejected")]


def test_without_users_only_loopback_is_served(app_env: Path) -> None:
    at = new_app().run()
    assert [t.value for t in at.title] == ["Analyze"]
    assert any("Single-user mode" in c for c in texts(at.sidebar.caption))
    before = st_config.get_option("server.address")
    try:
        st_config.set_option("server.address", "0.0.0.0")
        at = new_app().run()
        assert not at.exception, texts(at.exception)
        assert not at.title and any("python -m core users add NAME --role admin" in e for e in texts(at.error))
    finally:
        st_config.set_option("server.address", before)


def _add_path(at, path: str):
    at.text_input(key=S.W_SERVER_PATH).input(path)
    next(b for b in at.button if b.label == "Add path").click().run()
    assert not at.exception, texts(at.exception)
    return at


def test_a_team_server_opens_no_server_file_until_folders_are_set(team: dict[str, int], app_env: Path,
                                                                   tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With accounts, BDA_SERVER_PATHS unset opens no server file (an analyst could read any file the server can
    and carry it out in a case export), and set, it never opens the workspace (another team's uploads)."""
    from core.server_files.paths import ENV_SERVER_PATHS

    secret = tmp_path / "data" / "passwords.tif"
    secret.parent.mkdir()
    secret.write_bytes(b"II*\x00 not really an image")
    monkeypatch.delenv(ENV_SERVER_PATHS, raising=False)
    at = _add_path(login("lee"), str(secret))
    assert any("opens none of its folders" in e for e in texts(at.error)), texts(at.error)
    assert at.session_state[S.STAGED] == []
    theirs = Workspace(app_env).uploads_dir(team["theirs"]) / "their_upload.tif"
    theirs.parent.mkdir(parents=True, exist_ok=True)
    theirs.write_bytes(secret.read_bytes())
    monkeypatch.setenv(ENV_SERVER_PATHS, str(tmp_path))  # the data folder and the workspace below it
    assert app_env.resolve().is_relative_to(tmp_path.resolve())
    at = _add_path(login("lee"), str(theirs))
    assert any("is inside the workspace" in e for e in texts(at.error)), texts(at.error)
    assert at.session_state[S.STAGED] == []
    at = _add_path(at, str(secret))
    assert [s["name"] for s in at.session_state[S.STAGED]] == ["passwords.tif"]
