"""Accounts of a team server (issue 12, "What to build" 1 and 2): users with argon2 hashes, roles, case membership,
rate-limited logins, the users/cases CLI, and who made analyses, registered models, imported and exported cases."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from core.cli.main import main
from core.errors import AuthError, InputError
from core.store import Workspace
from core.store.users import FAILURE_WINDOW_S, MAX_FAILURES
from tests.support.store import new_analysis

PW = "correct horse battery"


def test_users_log_in_with_hashed_passwords_and_are_rate_limited(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    assert not ws.has_users()
    kim = ws.add_user("kim", "admin", PW)
    assert ws.has_users() and kim.is_admin
    stored = ws._db.query("SELECT password_hash FROM users")[0][0]
    assert stored.startswith("$argon2id$") and PW not in stored
    assert ws.authenticate("KIM", PW, now=1000.0).name == "kim"
    with pytest.raises(InputError, match="already a user"):
        ws.add_user("Kim", "viewer", PW)
    with pytest.raises(InputError, match="at least 10 characters"):
        ws.add_user("lee", "viewer", "short")
    with pytest.raises(InputError, match="role must be one of"):
        ws.add_user("lee", "boss", PW)
    for k in range(MAX_FAILURES):
        with pytest.raises(AuthError, match="wrong user name or password"):
            ws.authenticate("kim", f"guess {k}", now=1000.0 + k)
    with pytest.raises(AuthError, match="too many failed logins"):  # refused without checking, even when right
        ws.authenticate("kim", PW, now=1010.0)
    with pytest.raises(AuthError, match="wrong user name or password"):  # unknown names fail the same way
        ws.authenticate("nobody", PW, now=1010.0)
    assert ws.authenticate("kim", PW, now=1000.0 + FAILURE_WINDOW_S + 10).name == "kim"


def test_passwords_are_hashed_with_argon2id_at_the_default_cost(tmp_path: Path, production_hashes: None) -> None:
    """What users get (the other tests hash at argon2's cheapest parameters, see tests/conftest.py): argon2id with
    64 MiB, 3 passes, 4 lanes, and a login checks it."""
    ws = Workspace(tmp_path / "ws")
    ws.add_user("kim", "admin", PW)
    stored = ws._db.query("SELECT password_hash FROM users")[0][0]
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert ws.authenticate("kim", PW, now=1000.0).name == "kim"


def test_roles_membership_and_changed_accounts(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    admin = ws.add_user("kim", "admin", PW)
    lee = ws.add_user("lee", "analyst", PW)
    viewer = ws.add_user("park", "viewer", PW)
    mine, theirs = ws.create_case("Lee's"), ws.create_case("Another team's")
    ws.grant_case(mine, "lee")
    ws.grant_case(mine, "park")
    assert [c["id"] for c in ws.visible_cases(lee)] == [mine]
    assert [c["id"] for c in ws.visible_cases(viewer)] == [mine]
    assert {c["id"] for c in ws.visible_cases(admin)} == {mine, theirs}
    with pytest.raises(AuthError, match="not one of your cases"):
        ws.check_case_access(lee, theirs)
    assert lee.can_work and not viewer.can_work and not lee.is_admin
    assert ws.case_members(mine) == ["lee", "park"]
    ws.revoke_case(mine, "park")
    assert ws.visible_cases(viewer) == []
    assert ws.current_user(lee) == lee
    ws.set_password("lee", PW + "!")
    assert ws.current_user(lee) is None  # a login made with the old password ends
    with pytest.raises(InputError, match="last admin"):
        ws.remove_user("kim")
    ws.remove_user("park")
    assert [u["name"] for u in ws.list_users()] == ["kim", "lee"]


def test_who_did_it_is_recorded(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    cid = ws.create_case("Joplin")
    aid = ws.create_analysis(cid, [{"path": "/data/a.tif"}], model={"name": "m"}, threshold=None, options={},
                             created_by="lee")
    assert ws.get_analysis(aid)["created_by"] == "lee"
    model = tmp_path / "m.pt"
    model.write_bytes(b"weights")
    mid = ws.register_model(model, {"name": "m"}, registered_by="kim")
    assert ws._db.query("SELECT registered_by FROM models WHERE id=?", (mid,))[0][0] == "kim"
    archive = ws.export_case(cid, tmp_path / "case.zip", user="lee")
    new = ws.import_case(archive, user="kim")
    assert [(e["user"], e["action"]) for e in ws.case_events(cid)] == [("lee", "export")]
    assert [(e["user"], e["action"], e["detail"]) for e in ws.case_events(new)] == [("kim", "import", "case.zip")]


def test_users_and_cases_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    w = str(tmp_path / "ws")
    monkeypatch.setattr("sys.stdin", io.StringIO(PW + "\n"))
    assert main(["users", "--workspace", w, "add", "kim", "--role", "admin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PW + "\n"))
    assert main(["users", "--workspace", w, "add", "lee", "--role", "analyst"]) == 0
    assert "cases grant CASE lee" in capsys.readouterr().out
    ws = Workspace(w)
    assert ws.authenticate("lee", PW).role == "analyst"
    new_analysis(ws, ["a.tif"], case=ws.create_case("Joplin"))
    assert main(["cases", "--workspace", w, "grant", "Joplin", "lee"]) == 0
    assert main(["users", "--workspace", w, "list"]) == 0
    out = capsys.readouterr().out
    assert "kim" in out and "every case" in out and "lee" in out and "#1" in out
    assert main(["cases", "--workspace", w, "members", "1"]) == 0
    assert capsys.readouterr().out.strip().endswith("lee")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "--workspace", w, "add", "park", "--role", "viewer"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    assert main(["users", "--workspace", w, "remove", "nobody"]) == 2
    assert "there is no user 'nobody'" in capsys.readouterr().err
    assert main(["users", "--workspace", w, "remove", "lee"]) == 0
    assert [u["name"] for u in Workspace(w).list_users()] == ["kim"]
