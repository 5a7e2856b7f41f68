"""The command line in Korean: ``BDA_LANG=ko`` makes its help (argparse's own words included), usage errors and
messages Korean, ``report --lang ko`` does the same for one command, and English stays the default."""

from __future__ import annotations

import argparse
import gettext
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core import i18n
from core.cli.main import build_parser, main
from core.engine import ENV_RAY_ADDRESS
from tests.support.data import REPO
from tests.support.lang import no_front_end  # noqa: F401  (autouse fixture)

HANGUL = re.compile("[\uac00-\ud7a3]")
#: argparse's English words that the Korean help must not show.
ARGPARSE_ENGLISH = ("usage:", "positional arguments", "options:", "show this help message and exit")


def _english_help_texts(parser: argparse.ArgumentParser) -> set[str]:
    """Every description and help= sentence of ours in ``parser`` and its sub-commands, built in English."""
    texts: set[str] = set()
    if parser.description:
        texts.add(parser.description)
    for action in parser._actions:
        if action.help and re.search(r"[A-Za-z]{3,} [a-z]{2,}", action.help):  # sentences, not "auto | cpu | cuda"
            texts.add(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                texts.add(str(choice.help))
            for sub in action.choices.values():
                texts |= _english_help_texts(sub)
    return texts


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_python_m_core_help_is_korean_with_bda_lang_ko() -> None:
    env = {**os.environ, "BDA_LANG": "ko"}
    proc = subprocess.run([sys.executable, "-m", "core", "--help"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("사용법: python -m core"), out[:200]
    assert "위치 인자" in out and "옵션:" in out and "이 도움말을 보여 주고 끝냅니다" in out
    assert "BDA 워크벤치" in out and "분석의 BDA 보고서 작성" in out
    for word in ARGPARSE_ENGLISH + ("BDA workbench", "write the BDA report of an analysis"):
        assert word not in out, word


@pytest.mark.parametrize("command", ["analyze", "report", "train", "case", "users", "place", "buildings"])
def test_every_help_is_korean_and_shows_none_of_our_english_sentences(
        command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("BDA_LANG", raising=False)
    english = _english_help_texts(build_parser())
    assert len(english) > 100, "the English parser lost its help texts"
    monkeypatch.setenv("BDA_LANG", "ko")
    out = _help([command, "--help"], capsys)
    assert out.startswith(f"사용법: python -m core {command}")
    assert len(HANGUL.findall(out)) > 20, out
    for word in ARGPARSE_ENGLISH:
        assert word not in out, word
    flat = " ".join(out.split())  # argparse wraps lines
    left = [t for t in english if " ".join(t.split()) in flat]
    assert not left, f"English help left in `{command} --help` under BDA_LANG=ko: {left[:5]}"


def test_analyze_help_names_every_option_in_korean(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BDA_LANG", "ko")
    out = _help(["analyze", "--help"], capsys)
    assert "분석할 영상 또는 래스터 파일" in out and "엔진:" in out and "진행 막대를 표시하지 않음" in out
    assert "${env}" not in out and f"${ENV_RAY_ADDRESS}" in " ".join(out.split())


def test_english_stays_the_default(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("BDA_LANG", raising=False)
    out = _help(["analyze", "--help"], capsys)
    assert out.startswith("usage: python -m core analyze")
    assert "show this help message and exit" in out and "no progress bars" in out and not HANGUL.search(out)
    rc = main(["report", "--analysis", "/nonexistent/analysis-folder"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: /nonexistent/analysis-folder is not an analysis folder")
    assert not HANGUL.search(err)


def test_usage_errors_are_korean_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BDA_LANG", "ko")
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "--grade-scale", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "사용법: python -m core analyze" in err
    assert "python -m core analyze: 오류: 인자 --grade-scale: 잘못된 선택: 'nope'" in err
    with pytest.raises(SystemExit) as exc:
        main(["report"])
    assert exc.value.code == 2
    assert "오류: 다음 인자가 필요합니다: --analysis" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["analyze", "--workers", "many"])
    assert "잘못된 int 값: 'many'" in capsys.readouterr().err
    # argparse's own functions are back afterwards: nothing else in the process is translated by our catalog
    assert argparse._ is gettext.gettext and argparse.ngettext is gettext.ngettext  # type: ignore[attr-defined]


def test_cli_errors_are_korean_under_bda_lang_ko(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BDA_LANG", "ko")
    rc = main(["report", "--analysis", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"오류: {tmp_path / 'missing'}") and "analysis.json" in err and HANGUL.search(err)
    (tmp_path / "a-file").write_text("x")
    rc = main(["case", "--workspace", str(tmp_path / "ws"), "export", "1", "--out", str(tmp_path / "a-file/x")])
    err = capsys.readouterr().err
    assert rc == 2 and "오류: " in err and "Traceback" not in err and HANGUL.search(err.split("오류: ", 1)[1])


def test_report_lang_sets_one_commands_language(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("BDA_LANG", raising=False)
    rc = main(["report", "--lang", "ko", "--analysis", str(tmp_path / "missing")])
    assert rc == 2 and capsys.readouterr().err.startswith("오류: ")
    out = _help(["report", "--lang=ko", "--help"], capsys)
    assert out.startswith("사용법: ") and "PDF 보고서와 이 명령 메시지의 언어" in out
    monkeypatch.setenv("BDA_LANG", "ko")
    rc = main(["report", "--lang", "en", "--analysis", str(tmp_path / "missing")])
    assert rc == 2 and capsys.readouterr().err.startswith("error: ")
    assert i18n.get_lang() == "ko", "--lang applies to that command only"


def test_analyze_run_messages_are_korean(shared_data: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BDA_LANG", "ko")
    missing = tmp_path / "missing.tif"
    rc = main(["analyze", str(missing), "--model", str(tiny_model), "--out", str(tmp_path / "o"), "--no-workspace",
               "--quiet"])
    got = capsys.readouterr()
    assert rc == 1, got.err
    assert f"    오류: 파일을 찾을 수 없습니다: {missing}" in got.err
    assert f"입력 0/1개 분석, 탐지 결과 0건 -> {tmp_path / 'o'}" in got.out
    assert "analysed" not in got.out


def test_buildings_errors_are_korean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from core.buildings import read_labels_csv
    from core.errors import InputError

    monkeypatch.setenv("BDA_LANG", "ko")
    rc = main(["buildings", "show", "--analysis", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"오류: {tmp_path}에 건물 정보 (") and "--footprints" in err
    (tmp_path / "labels.csv").write_text("building_id,damaged\n7,maybe\n", encoding="utf-8")
    with pytest.raises(InputError, match="^레이블 파일 labels.csv, 2행: 레이블 'maybe'은\\(는\\) 피해"):
        read_labels_csv(tmp_path / "labels.csv")
    monkeypatch.delenv("BDA_LANG")
    with pytest.raises(InputError, match="^labels file labels.csv, line 2: label 'maybe' is neither"):
        read_labels_csv(tmp_path / "labels.csv")
