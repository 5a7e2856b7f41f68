"""Leaflet for a map with no network: the script and style sheet come from the installed ``folium-offline``
package and reach the browser as ``data:`` URIs (folium's defaults point at CDNs)."""

from __future__ import annotations

import base64
import functools

import folium
from branca.element import Element

from core.errors import CoreError
from core.i18n import _

LEAFLET_JS = "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"  #: key into folium-offline's resources
LEAFLET_CSS = "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css"


@functools.lru_cache(maxsize=1)
def offline_resources() -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """``(js, css)`` as folium ``(name, url)`` pairs whose urls are ``data:`` URIs of Leaflet 1.9.3.

    Raises :class:`CoreError` when the ``folium-offline`` package (which ships the files) is missing.
    """
    try:
        from offlinefolium.elements import _res
        js, css = _res[LEAFLET_JS], _res[LEAFLET_CSS]
    except (ImportError, KeyError) as exc:
        raise CoreError(_("the offline map files are missing: install the 'folium-offline' package (it ships "
                          "Leaflet) into the workbench's Python environment and restart the app")) from exc
    def uri(mime: str, text: str) -> str:
        return f"data:{mime};base64," + base64.b64encode(text.encode("utf-8")).decode("ascii")
    return (("leaflet", uri("text/javascript", js)),), (("leaflet_css", uri("text/css", css)),)


def resource_links(m: folium.Map) -> tuple[list[str], list[str]]:
    """Every script and style-sheet URL the elements of ``m`` ask for, collected as streamlit-folium does."""
    js: list[str] = []
    css: list[str] = []

    def walk(el: Element) -> None:
        js.extend(src for _, src in getattr(el, "default_js", []))
        css.extend(href for _, href in getattr(el, "default_css", []))
        for child in getattr(el, "_children", {}).values():
            walk(child)
    walk(m)
    return list(dict.fromkeys(js)), list(dict.fromkeys(css))
