"""The language switch in the app (AppTest): ``BDA_LANG`` sets the default, the sidebar switch changes every page,
the choice is remembered for the single analyst of a workspace and per account on a team server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.i18n import ENV_LANG
from core.store import Workspace
from core.store.prefs import get_language
from tests.support.app import JOPLIN, new_app, texts
from tests.support.data import need
from ui import state as S

torch.set_num_threads(1)

PW = "correct horse battery"
PAGES = {"pages/analyze.py": "분석", "pages/map.py": "지도", "pages/report.py": "보고서", "pages/models.py": "모델"}


def _hangul(text: str) -> bool:
    return any("\uac00" <= c <= "\ud7a3" for c in text)


def _switch(at, lang: str):
    at.segmented_control(key=S.W_LANG).set_value(lang).run()
    assert not at.exception, texts(at.exception)
    return at


def test_bda_lang_sets_the_default_and_every_page_is_korean(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LANG, "ko")
    at = new_app().run()
    assert not at.exception, texts(at.exception)
    assert at.segmented_control(key=S.W_LANG).value == "ko"
    for page, title in PAGES.items():
        at.switch_page(page).run()
        assert not at.exception, f"{page}: {texts(at.exception)}"
        assert [t.value for t in at.title] == [title]
        labels = [w.label for w in (*at.selectbox, *at.button, *at.text_input, *at.toggle) if w.label]
        assert labels and all(_hangul(lab) or lab in ("Language",) or lab.isupper() for lab in labels
                              if lab != "언어"), labels
    sidebar = [c.value for c in at.sidebar.caption]
    assert any("작업 공간" in c for c in sidebar), sidebar


def test_the_switch_changes_the_language_and_is_remembered(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_LANG, raising=False)
    at = new_app().run()
    assert [t.value for t in at.title] == ["Analyze"] and at.segmented_control(key=S.W_LANG).value == "en"
    _switch(at, "ko")
    assert [t.value for t in at.title] == ["분석"]
    assert any(b.label == "목록 지우기" or _hangul(b.label) for b in at.sidebar.button) or \
        any(_hangul(s.label) for s in at.sidebar.selectbox)
    assert get_language(app_env, None) == "ko"  # remembered in the workspace (no accounts: the single analyst)
    assert json.loads((app_env / "preferences.json").read_text(encoding="utf-8")) == {"language": {"": "ko"}}
    again = new_app().run()  # a new browser session of the same workspace
    assert [t.value for t in again.title] == ["분석"]
    _switch(again, "en")
    assert [t.value for t in again.title] == ["Analyze"] and get_language(app_env, None) == "en"
    monkeypatch.setenv(ENV_LANG, "ko")  # a remembered choice wins over the default
    assert [t.value for t in new_app().run().title] == ["Analyze"]


def test_the_language_is_remembered_per_account(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_LANG, raising=False)
    ws = Workspace(app_env)
    ws.add_user("kim", "admin", PW)
    ws.add_user("lee", "analyst", PW)

    def login(name: str):
        at = new_app().run()
        assert not at.exception, texts(at.exception)
        at.text_input(key=S.W_LOGIN_NAME).input(name)
        at.text_input(key=S.W_LOGIN_PASSWORD).input(PW)
        next(b for b in at.button if b.label in ("Log in", "로그인")).click().run()
        assert not at.exception, texts(at.exception)
        return at

    kim = login("kim")
    assert [t.value for t in kim.title] == ["Analyze"]
    _switch(kim, "ko")
    assert [t.value for t in kim.title] == ["분석"] and get_language(app_env, "kim") == "ko"
    assert get_language(app_env, None) is None  # not the workspace-wide choice
    assert [t.value for t in login("lee").title] == ["Analyze"]  # lee has not chosen: the default
    assert [t.value for t in login("kim").title] == ["분석"]  # kim's choice, in a new session


def test_the_login_page_has_the_switch(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_LANG, raising=False)
    Workspace(app_env).add_user("kim", "admin", PW)
    at = new_app().run()
    assert [t.value for t in at.title] == ["BDA workbench"]
    _switch(at, "ko")
    assert [t.value for t in at.title] == ["BDA 워크벤치"]
    assert any(b.label == "로그인" for b in at.button)


def test_a_pair_analysed_in_english_on_the_command_line_reads_in_korean(
        app_env: Path, small_model: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the CLI stored in an English session (co-registration, the default case, the scene's warnings) is put
    in words in the session's language when the Analyze page shows it."""
    from core.cli.main import main
    from core.i18n import use

    chips = need(shared_data / JOPLIN / "chips_aligned")
    bad = tmp_path / "field_notes.png"
    bad.write_text("notes typed into a file named .png")
    with use("en"):
        main(["analyze", str(bad), "--model", str(small_model), "--workspace", str(app_env), "--out",
              str(tmp_path / "out2"), "--quiet", "--device", "cpu"])
        assert main(["analyze", str(chips / "post/0_post.tif"), "--pre", str(chips / "pre/0_pre.tif"), "--model",
                     str(small_model), "--workspace", str(app_env), "--out", str(tmp_path / "out"), "--quiet",
                     "--device", "cpu"]) == 0
    with Workspace(app_env) as ws:
        (case,) = ws.list_cases()
        older, newest = sorted(a["id"] for a in ws.list_analyses(case["id"]))
        (failed,) = ws.scene_results(older)
        (scene,) = ws.scene_results(newest)
    assert case["name"] == "Command line" and scene.meta["coregistration"]["shift_note"]["code"]
    assert failed.error and "is not an image that can be read" in failed.error  # the CLI's own sentence, English
    monkeypatch.setenv(ENV_LANG, "ko")
    at = new_app().run()
    assert not at.exception, texts(at.exception)
    case_box = next(s for s in at.sidebar.selectbox if s.label == "케이스")
    assert case_box.options == [f"명령줄 (#{case['id']})"]
    captions = " ".join(texts(at.caption))
    assert "정합: " in captions and "잔여 이동량 dx" in captions, captions
    for english in ("Co-registration", "reprojected", "agreeing windows", "Command line", "Median"):
        assert english not in captions, english
    _switch(at, "en")
    captions = " ".join(texts(at.caption))
    assert "Co-registration: reprojected through both georeferences" in captions and "agreeing windows" in captions
    assert next(s for s in at.sidebar.selectbox if s.label == "Case").options == [f"Command line (#{case['id']})"]
    at.selectbox(key=S.W_ANALYSIS).set_value(older).run()  # the analysis whose one input failed
    assert not at.exception, texts(at.exception)
    assert "is not an image that can be read" in " ".join(texts(at.error))
    errors = " ".join(texts(_switch(at, "ko").error))
    assert "field_notes.png" in errors and "읽을 수 있는 영상이 아닙니다" in errors, errors  # the failure, in Korean
    assert "not an image" not in errors


def test_the_staged_list_reads_in_korean(app_env: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Analyze page's list of staged images: where each came from in Korean (it read "server path"), its
    columns shown translated."""
    tile = need(shared_data / JOPLIN / "post" / "tile_31500-5137.tif")
    monkeypatch.setenv(ENV_LANG, "ko")
    at = new_app().run()
    at.text_input(key=S.W_SERVER_PATH).input(str(tile))
    next(b for b in at.button if b.label == "경로 추가").click().run()
    assert not at.exception, texts(at.exception)
    staged = at.dataframe[0]
    assert staged.value.to_dict("records") == [{"image": tile.name, "from": "서버 경로", "stored at": str(tile)}]
    # the column labels travel in the element's column config (JSON; "_index" is the hidden index)
    labels = {k: v.get("label") for k, v in json.loads(staged.proto.columns).items() if k != "_index"}
    assert labels == {"image": "영상", "from": "출처", "stored at": "저장 위치"}, labels
