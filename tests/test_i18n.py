"""Korean and English: every string a person reads has a Korean translation, the pages leave no English literal
unwrapped, the language follows ``use()`` / the front end / ``BDA_LANG``, and a user's choice is remembered."""

from __future__ import annotations

import ast
import io
import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from core import i18n
from core.errors import InputError
from core.i18n import _, ngettext, use
from core.store.prefs import get_language, set_language
from tests.support.lang import no_front_end  # noqa: F401  (autouse fixture)

REPO = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def _extracted() -> dict[str | tuple[str, str], list[str]]:
    """Every marked string of app.py, pages/, ui/ and core/, extracted with Babel as the README's command does."""
    method_map, options_map = parse_mapping_cfg(io.StringIO((REPO / "babel.cfg").read_text(encoding="utf-8")))
    out: dict[str | tuple[str, str], list[str]] = {}
    for filename, lineno, message, _comments, _ctx in extract_from_dir(
            str(REPO), method_map, options_map, keywords=KEYWORDS, comment_tags=()):
        key = message if isinstance(message, str) else tuple(message)
        out.setdefault(key, []).append(f"{filename}:{lineno}")
    return out


def _catalog(lang: str):
    with i18n.po_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang, domain=i18n.DOMAIN)


def _fields(text: str) -> list[tuple[str, str, str | None]]:
    return sorted((f, spec, conv) for _lit, f, spec, conv in string.Formatter().parse(text) if f is not None)


def test_every_marked_string_has_a_korean_entry() -> None:
    found = _extracted()
    assert len(found) > 600, "extraction found too few strings: babel.cfg or the keywords are wrong"
    ko = _catalog("ko")
    missing, empty, fuzzy = [], [], []
    for msgid, where in found.items():
        entry = ko.get(msgid)
        if entry is None:
            missing.append((msgid, where[0]))
        elif entry.fuzzy:
            fuzzy.append(msgid)
        elif not entry.string or (isinstance(entry.string, tuple) and not all(entry.string)):
            empty.append(msgid)
    assert not missing, f"{len(missing)} strings without a Korean entry (run the README's pybabel commands): " \
                        f"{missing[:10]}"
    assert not empty, f"empty Korean msgstr: {empty[:10]}"
    assert not fuzzy, f"fuzzy Korean entries (review them and drop the fuzzy flag): {fuzzy[:10]}"


def test_korean_entries_keep_every_placeholder_and_are_korean() -> None:
    for m in _catalog("ko"):
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strs = m.string if isinstance(m.string, tuple) else (m.string,)
        for s in strs:
            assert _fields(s) == _fields(ids[-1]), (m.id, s)  # .format() must find every field it is given
            assert s.strip(), m.id
        if any("a" <= c.lower() <= "z" for c in ids[0]) and len(ids[0].split()) >= 3:
            assert any("\uac00" <= c <= "\ud7a3" for c in strs[0]), f"not translated into Korean: {m.id!r}"


def _marked_literals(path: Path) -> list[tuple[str | tuple[str, str], int]]:
    """Literal arguments of ``_``, ``N_`` and ``ngettext`` calls in ``path`` as the parser sees them: also those
    inside an f-string's braces, which Babel's extractor does not read on Python before 3.12."""
    out: list[tuple[str | tuple[str, str], int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in KEYWORDS):
            continue
        lits = [a.value for a in node.args[:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if node.func.id == "ngettext" and len(lits) == 2:
            out.append(((lits[0], lits[1]), node.lineno))
        elif node.func.id != "ngettext" and lits:
            out.append((lits[0], node.lineno))
    return out


def test_every_marked_literal_is_extracted() -> None:
    """A string marked for translation inside an f-string's braces (``f"{_('Buildings: {items}')}"``) is never
    extracted, so it stays English in Korean: the Map page's building legend did. Every marked literal the parser
    finds must be in Babel's extraction."""
    found = _extracted()
    files = [REPO / "app.py", *(p for d in ("pages", "ui", "core") for p in sorted((REPO / d).rglob("*.py")))]
    missed = [f"{p.relative_to(REPO)}:{line} {msg!r}" for p in files for msg, line in _marked_literals(p)
              if msg not in found]
    assert not missed, f"marked but not extracted (move the call out of the f-string): {missed[:10]}"


def test_no_stale_korean_entries() -> None:
    found = _extracted()
    stale = [m.id for m in _catalog("ko") if m.id and (m.id if isinstance(m.id, str) else tuple(m.id)) not in found]
    assert not stale, f"Korean entries no longer in the code (pybabel update --ignore-obsolete): {stale[:10]}"


# -- no English left unwrapped in what the pages draw ------------------------------------------------------------
#: Streamlit calls whose first argument a person reads, and keywords a person reads.
UI_CALLS = {"title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success", "toast",
            "button", "form_submit_button", "selectbox", "radio", "slider", "text_input", "number_input", "text_area",
            "file_uploader", "toggle", "checkbox", "expander", "popover", "metric", "multiselect",
            "segmented_control", "download_button", "spinner", "show_error", "text"}
UI_KEYWORDS = {"help", "placeholder", "caption", "label", "text", "title", "xaxis_title", "yaxis_title",
               "annotation_text", "show_spinner"}
#: Literals that are the same in every language (units, codes, identifiers, file paths).
SAME_IN_EVERY_LANGUAGE = {"CPU", "GPU (CUDA)", "MGRS", "ROC", "id"}


def _words(text: str) -> bool:
    """Whether literal text holds words (not only icons, markup, punctuation, units or codes)."""
    text = re.sub(r":material/\w*:|<[^>]*>|&\w+;|&#\d+;|\b(sha256|UTC|px|m²|km²|MB)\b", " ", text)
    return bool(re.search(r"[A-Za-z]{2,}", text)) and text.strip() not in SAME_IN_EVERY_LANGUAGE


def _ui_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []

    def check(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if _words(text):
                bad.append(f"{path.name}:{node.lineno} f-string {text[:50]!r} in {where}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            v = node.value.strip()
            if _words(v) and not v.startswith(("/", "…or /")):
                bad.append(f"{path.name}:{node.lineno} {v[:50]!r} in {where}")
        elif isinstance(node, ast.BinOp):
            check(node.left, where)
            check(node.right, where)

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if name in ("_", "N_", "ngettext") or (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                                                  and f.value.id.lstrip("_").lower().startswith("log")):
            continue  # translated, or a log line (for the server's log, not a person at the page)
        if name in UI_CALLS and node.args:
            check(node.args[0], name)
        for kw in node.keywords:
            if kw.arg in UI_KEYWORDS and not (kw.arg == "show_spinner" and isinstance(kw.value, ast.Constant)
                                               and isinstance(kw.value.value, bool)):
                check(kw.value, f"{name}({kw.arg}=)")
    return bad


def test_pages_and_widgets_wrap_every_string_they_show() -> None:
    files = [REPO / "app.py", *sorted((REPO / "pages").glob("*.py")), *sorted((REPO / "ui").glob("*.py"))]
    bad = [b for p in files for b in _ui_literals(p)]
    assert not bad, "strings shown without _(): " + "; ".join(bad[:15])


# -- the language in use -----------------------------------------------------------------------------------------
def test_bda_lang_sets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(i18n.ENV_LANG, "ko")
    assert i18n.get_lang() == "ko" and _("Analyze") == "분석"
    monkeypatch.setenv(i18n.ENV_LANG, "ko_KR.UTF-8")
    assert i18n.default_lang() == "ko"
    monkeypatch.setenv(i18n.ENV_LANG, "fr")  # no catalog: English
    assert i18n.get_lang() == "en" and _("Analyze") == "Analyze"
    monkeypatch.delenv(i18n.ENV_LANG)
    assert _("Analyze") == "Analyze"


def test_use_overrides_the_default_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(i18n.ENV_LANG, "en")
    with use("ko"):
        assert _("Destroyed") == "파괴" and _("Minor damage") == "경미한 피해"
        assert ngettext("Analyse {n} image", "Analyse {n} images", 1).format(n=1) == "영상 1개 분석"
        with use("en"):
            assert _("Destroyed") == "Destroyed"
        with use(None):
            assert _("Destroyed") == "파괴"
    assert _("Destroyed") == "Destroyed"
    assert _("") == ""  # never the catalog header


def test_unknown_language_is_refused_with_the_choices() -> None:
    with pytest.raises(InputError, match="en, ko"), use("fr"):
        pass


def test_front_end_resolver_is_asked_after_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(i18n.ENV_LANG, raising=False)
    try:
        i18n.set_resolver(lambda: "ko")
        assert _("Report") == "보고서"
        with use("en"):
            assert _("Report") == "Report"
        i18n.set_resolver(lambda: None)
        assert _("Report") == "Report"
    finally:
        i18n.set_resolver(None)


def test_core_errors_are_raised_in_the_language_in_use() -> None:
    with use("ko"), pytest.raises(InputError) as err:
        i18n.check_lang("xx")
    assert "알 수 없는 언어" in str(err.value)


# -- remembered per user -----------------------------------------------------------------------------------------
def test_language_is_remembered_per_user(tmp_path: Path) -> None:
    assert get_language(tmp_path, None) is None
    set_language(tmp_path, None, "ko")
    set_language(tmp_path, "kim", "en")
    set_language(tmp_path, "lee", "ko-KR")
    assert get_language(tmp_path, None) == "ko"
    assert get_language(tmp_path, "kim") == "en" and get_language(tmp_path, "lee") == "ko"
    assert get_language(tmp_path, "park") is None
    set_language(tmp_path, "kim", "xx")  # not a language: ignored
    assert get_language(tmp_path, "kim") == "en"
    (tmp_path / "preferences.json").write_text("{not json", encoding="utf-8")
    assert get_language(tmp_path, None) is None  # a damaged file: the defaults, no error


def test_core_i18n_never_imports_streamlit() -> None:
    src = (REPO / "core" / "i18n.py").read_text(encoding="utf-8") + \
        (REPO / "core" / "store" / "prefs.py").read_text(encoding="utf-8")
    assert "streamlit" not in src.replace("never imports streamlit", "")


def test_the_buildings_table_reads_in_korean() -> None:
    """The Map page's buildings table: grades, labels and review states in Korean, its columns shown translated
    (they were English on the Korean page)."""
    from core.buildings import Building
    from ui import i18n as ui_i18n
    from ui.buildings import TABLE_COLUMNS, table

    blds = [Building(building_id="b1", source="t", scene_name="s", grade="damaged", score=0.9, label="not-damaged"),
            Building(building_id="b2", source="t", scene_name="s", grade="no-visible-damage", score=0.1)]
    with use("ko"):
        df = table(blds)
        shown = {k: c.get("label") for k, c in ui_i18n.column_labels(TABLE_COLUMNS).items()}
    assert list(df.columns) == list(TABLE_COLUMNS)  # the data's keys stay English
    assert df["building"].tolist() == ["b1", "b2"]  # highest score first
    assert df["grade"].tolist() == ["피해", "가시적 피해 없음"]
    assert df["label"].tolist() == ["피해 없음", "레이블 없음"]
    assert df["review"].tolist() == ["미검토", "미검토"]
    assert shown["grade"] == "등급" and shown["post-only"] == "사후 단독" and shown["MGRS"] == "MGRS"


def test_the_buildings_map_layer_reads_in_korean_and_clicks_still_find_the_building() -> None:
    """The footprints' tooltip, popup and layer name on the Korean map (they were English), and a click on a
    footprint still names its building, whether the map was drawn in Korean or, before a switch, in English."""
    from core.buildings import Building
    from core.buildings.maplayer import buildings_layer, clicked_building

    square = {"type": "Polygon", "coordinates": [[[0, 0], [0, 1e-4], [1e-4, 1e-4], [1e-4, 0], [0, 0]]]}
    b = Building(building_id="b 7", source="t", scene_name="s", grade="damaged", score=0.9, score_kind="prior",
                 label="not-damaged", geometry=square)
    with use("ko"):
        layer = buildings_layer([b])
        props = layer.data["features"][0]["properties"]
        assert layer.layer_name == "건물"
        assert props["tip"] == "건물 b 7" and props["grade"] == "피해" and props["review"] == "미검토"
        assert props["score"] == "0.90 (사전 분포)" and props["label"] == "피해 없음"
        (popup,) = [c for c in layer._children.values() if type(c).__name__ == "GeoJsonPopup"]
        assert popup.aliases == ["", "등급", "점수", "신뢰도", "검토", "레이블"]
        for tip in ("건물 b 7", "Building b 7"):
            assert clicked_building({"last_object_clicked_tooltip": tip}) == "b 7"
        assert clicked_building({"last_object_clicked_tooltip": "건물 "}) is None
    with use("en"):
        assert buildings_layer([b]).data["features"][0]["properties"]["tip"] == "Building b 7"
        assert clicked_building({"last_object_clicked_tooltip": "Building b 7"}) == "b 7"
