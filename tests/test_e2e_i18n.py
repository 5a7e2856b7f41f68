"""The whole workflow in Korean in a real browser, then back to English: chromium (Playwright) against `streamlit run`
with every non-loopback request blocked. ``BDA_LANG=ko`` makes Korean the default; upload a real Joplin tile,
analyse it, see the map, build the report and download the Korean PDF. On every page the text contains Hangul and
none of the pages' own English strings (the msgids of the catalog) remain; the Hangul web font is served by the app
itself and used. The sidebar switch then turns the pages back to English. Screenshots go to artifacts/e2e/."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from pypdf import PdfReader

from core import i18n
from tests.support.browser import folium_frame, model_for, nav, no_exception, offline_app, upload, wait_drawn, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _hangul(text: str) -> int:
    return sum("\uac00" <= c <= "\ud7a3" for c in text)


def english_fragments() -> list[str]:
    """The pages' own English text as it could appear on screen: every msgid whose Korean differs, split at its
    placeholders, keeping the pieces of two or more words (single words can be names, units or data)."""
    with i18n.po_path("ko").open("rb") as fh:
        catalog = read_po(fh, locale="ko")
    out = set()
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strs = m.string if isinstance(m.string, tuple) else (m.string,)
        for msgid in ids:
            if msgid in strs:
                continue
            pieces = [lit for lit, *_rest in string.Formatter().parse(msgid)]
            for piece in pieces:
                piece = re.sub(r":material/\w+:|\*\*|`", " ", piece).strip(" .,:;()—·-\n")
                if len(re.findall(r"[A-Za-z]{2,}", piece)) >= 2:
                    out.add(piece)
    return sorted(out, key=len, reverse=True)


def _leftover_english(text: str, fragments: list[str]) -> list[str]:
    flat = " ".join(text.split())
    return [f for f in fragments if " ".join(f.split()) in flat]


#: the page's text without the model cards (documents written in English), read in one step in the browser: reading
#: the body and then each card separately raced the Models page's drawing in CI (a card drawn in between was left in)
_TEXT_WITHOUT_CARDS = """() => {
  const cards = Array.from(document.querySelectorAll('[class*="st-key-model_card_"]'));
  const shown = cards.map(c => c.style.display);
  cards.forEach(c => { c.style.display = 'none'; });
  const text = document.body.innerText;
  cards.forEach((c, i) => { c.style.display = shown[i]; });
  return text;
}"""


def _check_korean(page, fragments: list[str], where: str) -> None:
    wait_idle(page)
    body = page.evaluate(_TEXT_WITHOUT_CARDS)
    assert _hangul(body) > 20, f"{where}: hardly any Hangul on the page"
    left = _leftover_english(body, fragments)
    assert not left, f"{where}: English left on the page: {left[:8]}"
    no_exception(page)


def test_korean_workflow_then_back_to_english(shared_data, tiny_model, tmp_path):
    tile = shared_data / "geotiff/joplin_tornado_xview2deploy/post/tile_31500-5137.tif"
    footprints = shared_data / "geotiff/joplin_tornado_xview2deploy/vector/joplin.geojson"  # 157 on the tile
    fragments = english_fragments()
    assert len(fragments) > 300
    with offline_app(tmp_path / "ws", model_for(tiny_model), "ko_failure.png", env={"BDA_LANG": "ko"}) as app:
        _flow(app.page, app.url, tile, footprints, app.art, fragments)


def _flow(page, url: str, tile: Path, footprints: Path, art: Path, fragments: list[str]) -> None:
    fonts: list[tuple[str, int]] = []
    page.on("response", lambda r: fonts.append((r.url, r.status)) if "/app/static/fonts/" in r.url else None)
    page.goto(url)
    page.get_by_text("영상", exact=True).first.wait_for(timeout=60_000)
    _check_korean(page, fragments, "Analyze (empty)")

    # the Hangul web font: served by the app, loaded and used for Hangul (not a system font)
    page.wait_for_function("() => document.fonts.check('16px NanumGothic', '분석')", timeout=30_000)
    assert any(u.endswith("/app/static/fonts/NanumGothic.ttf") and s == 200 for u, s in fonts), fonts
    assert "NanumGothic" in page.evaluate("() => getComputedStyle(document.querySelector('h1')).fontFamily")

    analyst = page.get_by_label("분석관")
    analyst.fill("김분석")
    analyst.press("Enter")
    upload(page, 0, tile)
    page.get_by_text("건물 외곽선(선택): 모든 건물에 등급 매기기").click()  # the buildings' words are Korean too
    upload(page, 0, footprints, scope=page.locator('[data-testid="stExpanderDetails"]').filter(
        has_text="건물 외곽선: GeoJSON"))
    page.get_by_text(re.compile(r"^다음 분석의 건물 외곽선: joplin\.geojson")).first.wait_for(timeout=60_000)
    wait_drawn(page)
    page.get_by_role("button", name=re.compile(r"영상 1개 분석")).click(timeout=60_000)
    page.locator('[data-testid="stMetricLabel"]', has_text="판정").first.wait_for(timeout=240_000)
    page.get_by_text(re.compile(r"^히트맵: .* 미만은 회색")).first.wait_for(timeout=60_000)
    page.get_by_text(re.compile(r"^레이블 없이 건물끼리 비교해 매긴 등급입니다")).first.wait_for(timeout=60_000)
    wait_drawn(page)
    _check_korean(page, fragments, "Analyze")
    page.screenshot(path=str(art / "ko_1_analyze.png"), full_page=True)

    nav(page, "지도")
    frame = folium_frame(page)
    frame.locator("img.leaflet-image-layer").first.wait_for(state="attached", timeout=60_000)
    _check_korean(page, fragments, "Map")
    for control in ("[data-testid=bda-map-legend]", "[data-testid=bda-zoom-to-scene]"):  # Hangul, not tofu boxes
        family = frame.locator(control).evaluate("e => getComputedStyle(e).fontFamily")
        assert family.replace('"', "").replace("'", "").startswith("NanumGothic"), (control, family)
    page.screenshot(path=str(art / "ko_2_map.png"), full_page=True)

    nav(page, "보고서")
    handling = page.get_by_label("취급 / 보안 등급 표시(모든 쪽)")
    handling.fill("TLP:CLEAR")
    handling.press("Enter")
    wait_drawn(page)
    page.get_by_role("button", name="보고서 파일 만들기").click()
    pdf_button = page.get_by_role("button", name="PDF 보고서")
    pdf_button.and_(page.locator(":not([disabled])")).wait_for(timeout=180_000)
    wait_drawn(page)
    _check_korean(page, fragments, "Report")
    page.screenshot(path=str(art / "ko_3_report.png"), full_page=True)
    with page.expect_download(timeout=60_000) as dl:
        pdf_button.click()
    text = "\n".join(p.extract_text() or "" for p in PdfReader(dl.value.path()).pages)
    assert "1. 요약" in text and "4. 방법과 한계" in text and "김분석" in text
    assert "Executive summary" not in text

    nav(page, "모델")
    page.get_by_role("heading", name="모델").first.wait_for(timeout=60_000)
    page.locator('[class*="st-key-model_card_"]').first.wait_for(timeout=60_000)
    _check_korean(page, fragments, "Models")

    # back to English with the sidebar switch: every page in English again
    page.locator('[data-testid="stSidebar"]').get_by_text("English", exact=True).click()
    page.get_by_role("heading", name="Models").first.wait_for(timeout=60_000)
    nav(page, "Report")
    page.get_by_role("button", name="Build report files").wait_for(timeout=60_000)
    nav(page, "Analyze")
    page.locator('[data-testid="stMetricLabel"]', has_text="Verdict").first.wait_for(timeout=60_000)
    body = page.inner_text("body")
    rest = body.replace("김분석", "").replace("한국어", "")  # the analyst's name; the switch's own "Korean"
    assert _hangul(rest) == 0, [w for w in rest.split() if _hangul(w)][:10]
    no_exception(page)
    page.screenshot(path=str(art / "ko_4_back_to_english.png"), full_page=True)


def _sidebar_choices(page) -> dict[str, str]:
    """The sidebar's selectboxes as the analyst sees them: label -> the chosen option's text."""
    return {b.get_attribute("aria-label") or "": b.input_value()
            for b in page.locator('[data-testid="stSidebar"]').get_by_role("combobox").all()}


def test_switching_language_keeps_the_chosen_case_and_translates_the_sidebar_choices(tiny_model, tmp_path):
    """A selectbox remembers its choice by the option's label in the browser: the labels that change with the
    language (the case the CLI names "Command line", the model and device choices) showed the old language after a
    switch, and the chosen case was lost on the way back."""
    from playwright.sync_api import expect

    from core.store import Workspace

    with Workspace(tmp_path / "ws") as ws:
        ws.create_case("Command line")  # what `python -m core analyze` files under when no --case is given
        ws.create_case("Joplin")  # the newest: the box's first option
    with offline_app(tmp_path / "ws", model_for(tiny_model), "ko_switch_failure.png") as app:
        page = app.page
        app.home()
        sidebar = page.locator('[data-testid="stSidebar"]')
        page.get_by_role("combobox", name=re.compile("^Case")).click()
        page.get_by_role("option", name="Command line (#1)").click()
        expect(page.get_by_role("combobox", name=re.compile("^Device"))).to_be_visible(timeout=60_000)
        sidebar.get_by_text("한국어", exact=True).click()
        expect(page.get_by_role("combobox", name=re.compile("^케이스"))).to_have_value("명령줄 (#1)", timeout=60_000)
        expect(page.get_by_role("combobox", name=re.compile("^장치"))).to_be_visible(timeout=60_000)
        wait_idle(page)
        ko = _sidebar_choices(page)
        assert ko["케이스"] == "명령줄 (#1)" and _hangul(ko["장치"]) and _hangul(ko["모델"]), ko
        sidebar.get_by_text("English", exact=True).click()
        expect(page.get_by_role("combobox", name=re.compile("^Case"))).to_have_value("Command line (#1)",
                                                                                     timeout=60_000)
        expect(page.get_by_role("combobox", name=re.compile("^Device"))).to_be_visible(timeout=60_000)
        wait_idle(page)
        en = _sidebar_choices(page)
        assert not any(_hangul(v) for v in en.values()), en
        no_exception(page)
