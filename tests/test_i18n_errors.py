"""Errors a user can cause speak Korean: the command line with ``BDA_LANG=ko`` (or ``report --lang ko``) and core
calls under ``use("ko")`` give messages with Hangul and no English sentence left in them (file names, paths,
options and format names may stay as they are)."""

from __future__ import annotations

import re
import sqlite3
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli.main import main
from core.errors import CoreError
from core.i18n import use
from tests.support.data import REPO
from tests.support.lang import no_front_end  # noqa: F401  (autouse fixture)

HANGUL = re.compile("[\uac00-\ud7a3]")
#: three English words in a row (after paths, names and quoted values are taken out): a sentence left untranslated
ENGLISH_RUN = re.compile(r"\b[A-Za-z]{2,}(?:\s+[A-Za-z]{2,}){2,}\b")


def _english_left(message: str) -> list[str]:
    """Runs of English words in ``message`` once paths, file names, options, quoted values, code spans and
    placeholders-turned-values (anything with / . _ - : digits or quotes) are taken out."""
    text = re.sub(r"`[^`]*`|'[^']*'|\"[^\"]*\"", " ", message)
    text = " ".join(t for t in text.split() if not re.search(r"[/._\-:=\d]", t))
    return ENGLISH_RUN.findall(text)


def assert_korean(message: str) -> None:
    """``message`` has Hangul and no English sentence."""
    assert HANGUL.search(message), message
    assert not _english_left(message), (_english_left(message), message)


def test_the_checker_catches_english() -> None:
    assert _english_left("footprint file a.geojson: is empty; give the footprint file again")
    assert not _english_left("건물 외곽선 파일 a.geojson: 비어 있습니다. GeoJSON / GeoPackage 파일을 주십시오")


@pytest.fixture
def frame(tmp_path: Path) -> Path:
    img = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(img)
    return img


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.err


def test_cli_model_option_error_is_korean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, frame: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BDA_LANG", "ko")
    rc, err = _run(["train", "--arch", "deep-sad-vgg11", "--eta", "-1", "--pretrained", "none", "--normal",
                    str(frame), "--out", str(tmp_path / "m.pt")], capsys)
    assert rc == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("오류: ") and "--eta" in line, err
    assert_korean(line)


def test_cli_footprint_error_is_korean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, frame: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BDA_LANG", "ko")
    lines = tmp_path / "roads.geojson"
    lines.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
                     '"geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}]}', encoding="utf-8")
    rc, err = _run(["analyze", str(frame), "--footprints", str(lines), "--no-workspace", "--quiet", "--device", "cpu",
                    "--model", str(REPO / "assets" / "models" / "fcdd-resnet18.pt"), "--out", str(tmp_path / "o")],
                   capsys)
    assert rc == 1  # the image is analysed; the footprint file is refused with its reason
    bad = [ln.strip() for ln in err.splitlines() if "roads.geojson" in ln]
    assert bad and bad[0].startswith("오류: 건물 외곽선 파일 roads.geojson"), err
    assert_korean(bad[0])


def test_cli_report_lang_ko_error_is_korean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _run(["report", "--analysis", str(tmp_path), "--lang", "ko"], capsys)  # BDA_LANG unset: English default
    assert rc == 2
    assert_korean(err.strip())


# -- core calls under use("ko") ------------------------------------------------------------------------------------
def _mbtiles_without_tiles(tmp: Path) -> Path:
    path = tmp / "empty.mbtiles"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    return path


def _unsafe_zip(tmp: Path) -> Path:
    path = tmp / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../evil.png", b"x")
    return path


def _calls(tmp: Path) -> dict[str, Callable[[], object]]:
    from core.analysis.run import AnalysisOptions
    from core.buildings.footprints import read_footprint_file
    from core.engine.ray_engine import RayConfig
    from core.mapping.basemaps import check_basemap
    from core.mapping.basemaps.tiles import MBTiles
    from core.models import build_model
    from core.models.checkpoint import check_calibration
    from core.store import Workspace
    from core.zip_extract import safe_extract_zip

    tmp.mkdir(exist_ok=True)
    (tmp / "notes.txt").write_text("x", encoding="utf-8")
    (tmp / "empty.geojson").write_text("", encoding="utf-8")
    ws = Workspace(tmp / "ws")
    ws.add_user("kim", "analyst", "a long enough password")
    return {
        "basemap of an unknown type": lambda: check_basemap(tmp / "notes.txt"),
        "basemap not absolute": lambda: check_basemap("maps/world.mbtiles"),
        "MBTiles without tiles table": lambda: MBTiles(_mbtiles_without_tiles(tmp)),
        "empty footprint file": lambda: read_footprint_file(tmp / "empty.geojson"),
        "calibration missing": lambda: check_calibration({"pixel_q50": 1.0}, "m.pt"),
        "unknown model option": lambda: build_model("fcdd-vgg11", pretrained="none", eta=1.0),
        "Ray workers": lambda: RayConfig(workers=-1).check(),
        "unknown engine": lambda: AnalysisOptions(engine="spark").check(),
        "wrong password": lambda: ws.authenticate("kim", "not the password"),
        "unknown building": lambda: ws.review_building("A1-B:nope", analyst="kim", status="confirmed"),
        "unsafe archive": lambda: safe_extract_zip(_unsafe_zip(tmp), tmp / "out"),
    }


def test_core_errors_are_korean_under_use_ko(tmp_path: Path) -> None:
    with use("ko"):
        calls = _calls(tmp_path)
        for what, call in calls.items():
            with pytest.raises(CoreError) as exc:
                call()
            try:
                assert_korean(str(exc.value))
            except AssertionError as e:
                raise AssertionError(f"{what}: {e}") from None
    with use("en"):  # and the same calls in English
        with pytest.raises(CoreError, match="not an absolute path"):
            _calls(tmp_path / "en")["basemap not absolute"]()


def test_cli_output_piped_into_head_is_not_an_internal_error(tmp_path: Path) -> None:
    """``python -m core users list | head -1``: the reader goes away before all is written; no "internal error ...
    please report it" and no "Exception ignored ... BrokenPipeError" at exit (here the reader is gone before the first
    line, so the write always fails). Output to a pipe is buffered unless PYTHONUNBUFFERED is set: without it the
    failed write comes at the flush, which used to be the interpreter's, after ``main`` had returned."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | {"BDA_LANG": "ko"}
    for unbuffered in ("", "1"):
        read, write = os.pipe()
        os.close(read)
        try:
            proc = subprocess.run([sys.executable, "-m", "core", "users", "--workspace", str(tmp_path / "ws"), "list"],
                                  cwd=REPO, stdout=write, stderr=subprocess.PIPE, timeout=120,
                                  env=env | ({"PYTHONUNBUFFERED": unbuffered} if unbuffered else {}))
        finally:
            os.close(write)
        assert proc.returncode == 141, (unbuffered, proc.stderr.decode())
        assert proc.stderr.decode() == "", unbuffered
