"""What results record is language-free and put in words when shown, in the language in use: a record written in an
English session reads in Korean in a Korean one (and the other way round), and old records that stored English
sentences still show. Also the texts composed from data outside the pages: the zip package's README, ``evaluate``'s
output and the cases the tool names by itself."""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from core.change.texts import (
    calibration_code,
    calibration_text,
    coregistration_text,
    grid_method_text,
    shift_note,
    shift_note_text,
)
from core.cli.main import build_parser, evaluation_lines
from core.i18n import message, say, use
from core.learn.evaluation_labels import evaluation_label, evaluation_unit
from core.report import FINDING_COLUMNS, ReportContext, write_package
from core.store import Workspace
from core.store.analyses import CLI_CASE, FIRST_CASE, case_display_name
from core.types import SceneResult


def _hangul(text: str) -> bool:
    return any("\uac00" <= c <= "\ud7a3" for c in text)


def _record(**over: Any) -> dict[str, Any]:
    """A co-registration record as :func:`core.change.coreg.residual_shift` writes it now."""
    rec = {"method": "georef", "pre_crs": "EPSG:26915", "post_crs": "EPSG:32615", "shift_px": [-1.173, -0.878],
           "shift_m": [-0.747, -0.559], "shift_confident": True, "shift_method": "phase-correlation",
           "shift_windows_used": 5, "shift_windows_tried": 9, "shift_response": 0.19,
           "shift_note": shift_note("agreed", used=5, tried=9), "shift_applied": True, "shift_policy": "auto"}
    return rec | over


# -- co-registration ------------------------------------------------------------------------------------------------
def test_a_new_coregistration_record_holds_no_sentence() -> None:
    rec = _record()
    words = [v for v in json.loads(json.dumps(rec)).values() if isinstance(v, str)]
    assert all(" " not in w for w in words), words  # codes and CRSs only, no sentence in either language
    assert rec["shift_note"] == {"code": "agreed", "used": 5, "tried": 9}
    with pytest.raises(ValueError):
        shift_note("shifted-somehow")


def test_one_record_reads_in_english_and_in_korean() -> None:
    rec = _record()
    with use("en"):
        en = coregistration_text(rec)
    with use("ko"):
        ko = coregistration_text(rec)
    assert en == ("Co-registration: reprojected through both georeferences (rasterio, bilinear); residual shift "
                  "dx -1.17 px, dy -0.88 px (-0.75 m, -0.56 m), applied. Median of 5 agreeing windows out of 9.")
    assert ko.startswith("정합: 두 영상의 지리참조로 재투영") and "창 9개 중 일치하는 5개의 중앙값" in ko
    assert "-1.17" in ko and "(-0.75 m, -0.56 m)" in ko
    assert not any(w in ko for w in ("reprojected", "Median", "windows", "applied")), ko


@pytest.mark.parametrize(("over", "en_part", "ko_part"), [
    ({"shift_confident": True, "shift_applied": False}, "a translation cannot fix parallax", "시차를 고칠 수 없음"),
    ({"shift_confident": False, "shift_applied": False, "shift_px": [0.0, 0.0],
      "shift_note": shift_note("disagree", found=3, tried=9, agree_px=1.5)},
     "3 of 9 windows gave a peak but they disagree (more than 1.5 px apart). No residual shift applied.",
     "창 9개 중 3개에서 정점을 찾았지만"),
    ({"shift_confident": False, "shift_applied": False, "shift_note": shift_note("off"), "shift_policy": "off"},
     "Residual shift estimation switched off.", "잔여 이동량 추정을 끔"),
    ({"method": "resize", "shift_m": None}, "resized onto the post image", "사후 영상 크기에 맞춰"),
])
def test_every_note_and_method_is_composed_in_both_languages(over: dict[str, Any], en_part: str,
                                                             ko_part: str) -> None:
    rec = _record(**over)
    with use("en"):
        assert en_part in coregistration_text(rec)
    with use("ko"):
        ko = coregistration_text(rec)
    assert ko_part in ko and en_part not in ko
    if rec["shift_policy"] == "off":
        with use("en"):
            assert "No residual shift applied" not in shift_note_text(rec)


def test_an_old_record_with_english_sentences_still_shows() -> None:
    """Records written before the codes: ``description`` and ``note`` held English sentences."""
    old = {"method": "georef", "description": "reprojected through both georeferences (rasterio, bilinear)",
           "shift_px": [-1.173, -0.878], "shift_m": [-0.747, -0.559], "shift_confident": True,
           "shift_method": "phase correlation of gradient magnitude (OpenCV, Hanning window)",
           "note": "median of 5 agreeing windows out of 9", "shift_applied": True, "shift_policy": "auto"}
    with use("ko"):
        ko = coregistration_text(old)
    assert "두 영상의 지리참조로 재투영" in ko  # the grid method is a code in old records too
    assert ko.endswith("Median of 5 agreeing windows out of 9.")  # the stored note as it was stored
    odd = {"description": "warped by hand in QGIS", "note": "checked by the analyst", "shift_px": [0, 0]}
    with use("ko"):
        assert grid_method_text(odd) == "warped by hand in QGIS" and "Checked by the analyst." in \
            coregistration_text(odd)
        assert coregistration_text(None) == "정합: 기록되지 않음."


def test_change_calibration_sources_are_codes_shown_in_words() -> None:
    with use("en"):
        assert calibration_text("generic").startswith("generic default")
    with use("ko"):
        assert calibration_text("generic").startswith("일반 기본값") and _hangul(calibration_text("pre-image"))
        old = "generic default (the checkpoint has no change calibration; see core.change.features)"
        assert calibration_code(old) == "generic" and calibration_text(old).startswith("일반 기본값")
        assert calibration_text("test: blurred RGB difference") == "test: blurred RGB difference"
        assert calibration_text(None) == ""


# -- the zip package's README ---------------------------------------------------------------------------------------
def _ctx() -> ReportContext:
    scene = SceneResult(scene_name="frame_01.jpg", width=64, height=48, image_score=0.4, verdict="normal",
                        georef=None, bounds_wgs84=None, heatmap_path=None, overlay_path=None)
    return ReportContext(title="Joplin", handling="TLP:CLEAR", scenes=[scene],
                         model_info={"name": "m", "version": "1", "sha256": "ab" * 32, "threshold": 1.0})


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_the_zip_readme_is_written_in_the_reports_language(lang: str, tmp_path: Path) -> None:
    with use(lang):
        out = write_package(_ctx(), tmp_path / "p.zip", formats=("csv", "geojson"))
    with zipfile.ZipFile(out) as zf:
        readme = zf.read("README.txt").decode("utf-8")
        header = zf.read("findings.csv").decode("utf-8-sig").splitlines()[0]
    assert header.split(",") == [c.name for c in FINDING_COLUMNS]  # the file's fields stay English
    assert all(f"  {c.name} " in readme for c in FINDING_COLUMNS)
    if lang == "ko":
        assert "탐지 결과 표" in readme and "한계" in readme and "피처 0개" in readme
        for english in ("FINDINGS TABLE", "LIMITATIONS", "HEATMAPS AND OVERLAYS", "comma-separated",
                        "this file", "anomaly heatmap", "threshold 1", "the analysis"):
            assert english not in readme, english
        body = [ln for ln in readme.splitlines() if ln.strip() and not ln.startswith("  ")]
        assert all(len(ln) <= 100 for ln in body)  # wrapped by display width: a Hangul syllable counts twice
    else:
        assert "FINDINGS TABLE" in readme and not _hangul(readme)
    assert readme.startswith("TLP:CLEAR") and readme.rstrip().endswith("TLP:CLEAR")


# -- evaluate -------------------------------------------------------------------------------------------------------
RESULT = {"images": {"auroc": 0.9387, "n_normal": 16, "n_anomalous": 12, "unit": "patch 256px", "skipped": []},
          "xbd": {"building_auroc": 0.3, "n_damaged": 39, "tile_auroc": 0.22, "images": 12,
                  "images_with_both_classes": 2}}


def test_evaluate_prints_labels_in_the_language_in_use_and_keeps_its_json_keys() -> None:
    with use("ko"):
        ko = "\n".join(evaluation_lines(RESULT))
    with use("en"):
        en = "\n".join(evaluation_lines(RESULT))
    assert "정상: 16" in ko and "채점 단위: 256 픽셀 패치" in ko and "피해 건물: 39" in ko and "AUROC: 0.9387" in ko
    assert ko.splitlines()[0] == "[정상 영상 대 이상 영상]" and "[xBD 폴더]" in ko and "사후 영상: 12" in ko
    assert not any(k in ko for k in ("n_normal", "unit", "building_auroc", "n_damaged", "skipped"))
    assert "normal: 16" in en and "scored unit: patch of 256 px" in en and "building AUROC: 0.3000" in en
    with use("ko"):
        assert evaluation_label("joplin_chips_patch_auroc") == "Joplin 칩, 패치 AUROC"
        assert evaluation_label("my_own_metric") == "my_own_metric" and evaluation_unit("image") == "영상"
    assert json.loads(json.dumps(RESULT)) == RESULT  # --json prints the result itself: keys untouched


# -- the cases the tool names ---------------------------------------------------------------------------------------
def test_the_cli_default_case_is_stored_as_a_marker_and_shown_translated(tmp_path: Path) -> None:
    a = build_parser().parse_args(["analyze", "x.tif"])
    assert isinstance(a, argparse.Namespace) and a.case == CLI_CASE == "Command line"
    with Workspace(tmp_path / "ws") as ws:
        cid = ws.create_case(a.case)  # what `python -m core analyze` files under (existing workspaces hold it too)
        name = ws.get_case(cid)["name"]
    assert name == "Command line"
    from core.cli.case import _case_id

    with use("ko"), Workspace(tmp_path / "ws") as ws:
        assert _case_id(ws, "명령줄") == _case_id(ws, "Command line") == cid  # `case export 명령줄` finds it too
    with use("ko"):
        assert case_display_name(name) == "명령줄" and case_display_name(FIRST_CASE) == "케이스 1"
        assert case_display_name("Joplin 토네이도") == "Joplin 토네이도"  # an analyst's own name as written
    with use("en"):
        assert case_display_name(name) == "Command line"


def test_the_sidebar_label_of_the_cli_case_is_translated() -> None:
    from ui.sidebar import case_label

    with use("ko"):
        assert case_label({"id": 3, "name": "Command line"}) == "명령줄 (#3)"
    with use("en"):
        assert case_label({"id": 3, "name": "Command line"}) == "Command line (#3)"


def test_an_xbd_jobs_note_is_composed_when_shown() -> None:
    from ui.models_xbd import note_text

    note = {"code": "unlabelled", "n": 5, "posts": 12, "names": ["a.png", "b.png", "c.png"]}
    with use("ko"):
        assert note_text(note).startswith("사후 영상 12개 중 5개에 레이블 JSON이 없습니다(a.png, b.png, c.png …)")
        assert note_text("1 of 2 post images have no label JSON (x.png)") == \
            "1 of 2 post images have no label JSON (x.png)"  # an older job's note as stored


# -- a scene's warnings ---------------------------------------------------------------------------------------------
def test_scene_warnings_are_records_put_in_words_when_shown(tmp_path: Path) -> None:
    import numpy as np
    import rasterio

    from core.i18n import is_message, message, say
    from core.imagery.reader import open_scene

    path = tmp_path / "no_crs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=48, count=3, dtype="uint8") as ds:
        ds.write(np.full((3, 48, 64), 120, np.uint8))
    scene = open_scene(path)
    scene.close()
    stored = json.loads(json.dumps(scene.meta["warnings"]))  # as the workspace keeps them
    assert stored and all(is_message(w) for w in stored)
    with use("en"):
        assert "no_crs.tif has no coordinate reference system" in say(stored[0])
    with use("ko"):
        ko = say(stored[0])
    assert _hangul(ko) and "no_crs.tif" in ko and "coordinate reference system" not in ko
    nested = message("{camera} and the frame has no 35 mm focal length: the footprint cannot be sized; only the GPS "
                     "point is shown", camera=message("the camera model is unknown"))
    with use("ko"):
        assert _hangul(say(nested)) and "{camera}" not in say(nested) and "camera model" not in say(nested)
        assert say("an older result's warning, stored as a sentence") == "an older result's warning, stored as a " \
            "sentence"
        assert say({"msg": "file holds {n} images; only the first is used", "args": {}}).startswith("파일")
    assert say(None) == ""


@pytest.mark.parametrize(("made_in", "read_in"), [("ko", "en"), ("en", "ko")])
def test_a_scene_failure_reads_in_the_readers_language(made_in: str, read_in: str, tmp_path: Path) -> None:
    """A failed input's message is stored as a record: an analysis run in one language reads in the other, through
    the workspace (and an older result that stored only the sentence still shows it)."""
    from core.analysis.step import analyze_input

    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"this is text, not a PNG")
    with use(made_in):
        res = analyze_input({"path": str(bad), "name": "not_an_image.png"}, None, tmp_path / "out")
    assert res.error and res.verdict == "error"
    assert _hangul(res.error) == (made_in == "ko")  # the run's own sentence, as before
    ws = Workspace(tmp_path / "ws")
    aid = ws.create_analysis(ws.create_case("c"), [{"path": str(bad), "name": "not_an_image.png"}],
                             model={"name": "m"}, threshold=None, options={})
    ws.save_scene_result(aid, res, input_name="not_an_image.png")
    stored = ws.scene_results(aid)[0]
    with use(read_in):
        text = stored.error_text()
    assert "not_an_image.png" in text and _hangul(text) == (read_in == "ko"), text
    with use(made_in):
        assert stored.error_text() == res.error
    old = SceneResult.from_dict({**stored.to_dict(), "meta": {}})
    with use(read_in):
        assert old.error_text() == res.error  # an older record: its sentence as stored
    assert SceneResult.from_dict({**stored.to_dict(), "error": None}).error_text() == ""


def test_a_recorded_sentence_keeps_its_arguments_and_nested_errors() -> None:
    from core.errors import InputError
    from core.i18n import Text, _, record_of, recording

    empty = "{name} is empty (0 bytes): the upload or copy was interrupted; export or copy it again"
    with use("ko"), recording():
        inner = InputError(_(empty).format(name="a.tif"))
        outer = _("unexpected error ({kind}: {exc}); the log has details").format(kind="X", exc=inner)
        joined = _(empty).format(name="a.tif") + " (joined)"
    assert isinstance(outer, Text) and _hangul(outer)
    rec = record_of(outer)
    assert isinstance(rec, dict) and rec["msg"].startswith("unexpected error")
    assert rec["args"]["exc"] == {"msg": empty, "args": {"name": "a.tif"}}
    assert json.loads(json.dumps(rec)) == rec
    with use("en"):
        assert say(rec) == "unexpected error (X: " + empty.format(name="a.tif") + "); the log has details"
    assert record_of(joined) == joined and not isinstance(record_of(joined), Text)  # composed: only its text
    assert record_of(ValueError("plain")) == "plain"
    with use("ko"):
        assert not isinstance(_(empty), Text)  # outside recording(): plain text


def test_streamlits_own_uploader_words_are_restyled_in_korean_only() -> None:
    from ui.i18n import uploader_style

    with use("en"):
        assert uploader_style("en") == ""
    with use("ko"):
        css = uploader_style("ko")
    assert "업로드" in css and "파일당 최대 2GB" in css and "stFileUploaderDropzoneInstructions" in css
    assert css.startswith("<style>") and css.endswith("</style>") and 'content: "Upload"' not in css


def test_the_world_layer_names_every_country_and_place_in_the_language_in_use() -> None:
    from core.mapping.basemaps import basemap_layers, world_data
    from core.mapping.basemaps.layers import localise_world
    from core.mapping.basemaps.sources import Basemap

    ko_layer = localise_world(world_data(), "ko")["features"]
    ko = {f["properties"]["name"] for f in ko_layer}
    assert {"대한민국", "미국", "서울", "도쿄", "캔버라", "워싱턴 D.C.", "키시너우"} <= ko
    assert "United States of America" not in ko
    latin = [f["properties"]["name"] for f in ko_layer if not _hangul(f["properties"]["name"])]
    assert not latin, f"names left in English in Korean: {latin}"
    en = [f["properties"]["name"] for f in world_data()["features"]]
    assert "Chișinău" in en and not [n for n in en if "?" in n or "  " in n]  # the source's damaged names repaired
    assert localise_world(world_data(), "en") is world_data()  # English: the layer's own names, not copied
    assert world_data()["features"][0]["properties"]["name"] == "Fiji"  # the cached data is left as it was
    world = Basemap(kind="world", path="", name="world")
    for lang, name in (("ko", "대한민국"), ("en", "South Korea")):
        with use(lang):
            layers = basemap_layers([world], None)
        assert any(name in json.dumps(getattr(layer, "data", {}), ensure_ascii=False)
                   for group in layers.layers for layer in getattr(group, "_children", {}).values())


@pytest.mark.parametrize(("lang", "hangul"), [("ko", True), ("en", False)])
def test_a_background_job_writes_in_the_language_of_whoever_started_it(lang: str, hangul: bool,
                                                                       tmp_path: Path) -> None:
    """The job thread has no page session to ask: it runs in the starter's context (ui.jobs.start_job sets it)."""
    from core.learn import jobs

    r = jobs.runner(tmp_path / f"ws-{lang}")
    with use(lang):
        jid = r.start_evaluation([str(tmp_path / "none.png")], [str(tmp_path / "none2.png")],
                                 model_path=tmp_path / "missing.pt", device="cpu")
    job = r.wait(jid, timeout=120)
    assert job["status"] == "failed" and job["message"]
    assert _hangul(job["message"]) is hangul, job["message"]


@pytest.mark.parametrize("template", [
    "{a.__class__.__mro__}",  # attribute lookups: a way into the interpreter's objects
    "{d[k]}",  # index lookups
    "{a:>999999999}",  # a width that would allocate gigabytes on every page view
    "{0}",  # positional fields
    "{a!a}",  # conversions other than !r / !s
    "{missing}",
])
def test_a_hostile_stored_record_is_shown_as_it_is(template: str) -> None:
    """Records come back from imported case archives: their templates are formatted with plain names only."""
    shown = say({"msg": template, "args": {"a": "x", "d": {"k": "secret"}}})
    assert shown == template and len(shown) < 100


def test_a_record_formats_plain_names_with_short_specs() -> None:
    rec = message("{n} of {total} ({share:.1f} %), camera {model!r}", n=3, total=4, share=75.0, model="FC6310")
    assert say(rec) == "3 of 4 (75.0 %), camera 'FC6310'"
