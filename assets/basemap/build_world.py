"""Build ``world.geojson``, the light world layer bundled with the workbench (run once by a developer).

Source: Natural Earth 1:110m "Admin 0 - Countries" and "Populated Places" (capitals), public domain
(https://www.naturalearthdata.com/about/terms-of-use/), as shipped in the ``geopandas==0.14.4`` wheel on PyPI
(``geopandas/datasets/naturalearth_lowres`` and ``naturalearth_cities``; geopandas is BSD-3-Clause, the data keep
Natural Earth's public-domain status). Get the files with ``pip download geopandas==0.14.4 --no-deps`` and unzip
``geopandas/datasets/*``; then::

    python assets/basemap/build_world.py PATH/TO/geopandas/datasets

Coordinates are rounded to 0.01° (about 1 km: borders for orientation, not for measuring) so the file stays small.
Three place names are damaged in the source's Latin-1 table ("Chi?in?u", "?saka") or spaced twice: repaired here.
A country or place whose Korean name the CLDR data of Babel does not carry (the app names the others from it: see
``core.mapping.basemaps.layers.localise_world``) gets a ``name_ko`` property from :data:`KOREAN` (standard Korean
exonyms, as the National Institute of Korean Language writes them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyogrio
import shapely

#: Names the source's Latin-1 table damaged.
REPAIRED = {"Chi?in?u": "Chișinău", "?saka": "Ōsaka", "Washington,  D.C.": "Washington, D.C."}

#: Korean names that Babel's CLDR data lacks: countries without an ISO code, places that are no time zone's city.
KOREAN = {
    "N. Cyprus": "북키프로스", "Somaliland": "소말릴란드", "Kosovo": "코소보",
    "Vatican City": "바티칸 시국", "Lobamba": "롭밤바", "Palikir": "팔리키르", "Melekeok": "멜레케오크",
    "Bir Lehlou": "비르레흘루", "Moroni": "모로니", "Port-of-Spain": "포트오브스페인", "The Hague": "헤이그",
    "Doha": "도하", "Sri Jayawardenepura Kotte": "스리자야와르데네푸라코테", "Baguio": "바기오", "Dodoma": "도도마",
    "Bern": "베른", "Laayoune": "라윤", "Pristina": "프리슈티나", "Roseau": "로조", "Putrajaya": "푸트라자야",
    "Kyoto": "교토", "Bridgetown": "브리지타운", "Kingstown": "킹스타운", "Castries": "캐스트리스",
    "Basseterre": "바스테르", "Port Louis": "포트루이스", "Saint George's": "세인트조지스", "Manama": "마나마",
    "Saint John's": "세인트존스", "Lomé": "로메", "Abu Dhabi": "아부다비", "Port Vila": "포트빌라",
    "Georgetown": "조지타운", "Reykjavík": "레이캬비크", "Islamabad": "이슬라마바드", "Bloemfontein": "블룸폰테인",
    "Pretoria": "프리토리아", "Honiara": "호니아라", "Panama City": "파나마시티", "Rabat": "라바트",
    "Chișinău": "키시너우", "Abuja": "아부자", "Quito": "키토", "San José": "산호세", "San Salvador": "산살바도르",
    "Kingston": "킹스턴", "N'Djamena": "은자메나", "Lilongwe": "릴롱궤", "Guatemala City": "과테말라시티",
    "Suva": "수바", "Valparaíso": "발파라이소", "Nur-Sultan": "누르술탄", "Yamoussoukro": "야무수크로",
    "Ottawa": "오타와", "Bandar Seri Begawan": "반다르스리브가완", "Sucre": "수크레", "Belmopan": "벨모판",
    "Yaoundé": "야운데", "Tirana": "티라나", "Cotonou": "코토누", "Canberra": "캔버라", "Naypyidaw": "네피도",
    "Nuku'alofa": "누쿠알로파", "Hargeisa": "하르게이사", "Victoria": "빅토리아", "Valletta": "발레타",
    "Malé": "말레", "Praia": "프라이아", "Wellington": "웰링턴", "Hanoi": "하노이", "Ankara": "앙카라",
    "Sanaa": "사나", "Kuwait City": "쿠웨이트시티", "Tel Aviv": "텔아비브", "København": "코펜하겐",
    "Brasília": "브라질리아", "San Francisco": "샌프란시스코", "Houston": "휴스턴", "Miami": "마이애미",
    "Atlanta": "애틀랜타", "Geneva": "제네바", "Ürümqi": "우루무치", "Chengdu": "청두", "Ōsaka": "오사카",
    "New Delhi": "뉴델리", "Bengaluru": "벵갈루루", "Washington, D.C.": "워싱턴 D.C.", "Cape Town": "케이프타운",
    "Beijing": "베이징", "Mumbai": "뭄바이", "Rio de Janeiro": "리우데자네이루", "São Paulo": "상파울루",
}


def _korean(name: str) -> dict[str, str]:
    """The ``name_ko`` property of ``name`` when :data:`KOREAN` has it."""
    return {"name_ko": KOREAN[name]} if name in KOREAN else {}


def _round(geom: shapely.Geometry, nd: int = 2) -> dict:
    g = shapely.set_precision(geom, 10.0 ** -nd)
    return json.loads(shapely.to_geojson(g))


def build(datasets: Path, out: Path) -> None:
    """Read both Natural Earth layers from ``datasets`` and write the combined GeoJSON to ``out``."""
    feats = []
    _, _, geoms, fields = pyogrio.raw.read(datasets / "naturalearth_lowres" / "naturalearth_lowres.shp",
                                           columns=["name", "iso_a3"])
    for wkb, name, iso in zip(geoms, fields[0], fields[1], strict=True):
        g = shapely.from_wkb(wkb)
        if g is None or g.is_empty:
            continue
        props = {"kind": "country", "name": str(name), "iso_a3": str(iso), **_korean(str(name))}
        feats.append({"type": "Feature", "properties": props, "geometry": _round(g)})
    _, _, geoms, fields = pyogrio.raw.read(datasets / "naturalearth_cities" / "naturalearth_cities.shp",
                                           columns=["name"])
    for wkb, raw in zip(geoms, fields[0], strict=True):
        name = REPAIRED.get(str(raw), str(raw))
        props = {"kind": "place", "name": name, **_korean(name)}
        feats.append({"type": "Feature", "properties": props, "geometry": _round(shapely.from_wkb(wkb))})
    doc = {"type": "FeatureCollection",
           "source": "Natural Earth 1:110m Admin 0 Countries and Populated Places (capitals), via the "
                     "geopandas 0.14.4 wheel (geopandas/datasets)",
           "licence": "public domain (Natural Earth terms of use)",
           "features": feats}
    out.write_text(json.dumps(doc, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
    print(f"{out}: {len(feats)} features, {out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(__file__).with_name("world.geojson"))
