"""The Map page's offline basemaps: the case's list (remembered per case in the workspace), which of them are
shown, adding one from a server path or an upload, and the cached reading of each (tiles, orthophoto, vectors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from core.errors import CoreError, InputError
from core.file_names import clean_name
from core.i18n import _, get_lang
from core.mapping.basemaps import Basemap, case_basemaps, check_basemap, load_basemap, shown_basemaps
from core.mapping.basemaps.case import SETTING
from core.store import Workspace
from ui import shell
from ui import state as S
from ui.markdown_text import plain
from ui.uploads import save_upload

UPLOAD_TYPES = ["mbtiles", "tif", "tiff", "geojson", "json", "gpkg"]


def stored(ws: Workspace, case_id: int) -> list[dict[str, Any]]:
    """The case's basemaps as stored (:func:`core.mapping.basemaps.case_basemaps`)."""
    return case_basemaps(ws, case_id)


def shown(ws: Workspace, case_id: int) -> list[Basemap]:
    """The case's basemaps that are switched on."""
    return shown_basemaps(ws, case_id)


def _save(ctx: shell.Context, entries: list[dict[str, Any]]) -> None:
    assert ctx.case_id is not None
    ctx.ws.set_case_setting(ctx.case_id, SETTING, entries, user=ctx.user.name if ctx.user else ctx.analyst or None)


def _add(ctx: shell.Context, entries: list[dict[str, Any]], b: Basemap) -> None:
    if any(d["path"] == b.path for d in entries):
        raise InputError(_("{name} is already one of this case's basemaps").format(name=b.name))
    _save(ctx, [*entries, b.to_dict() | {"shown": True}])


def chooser(ctx: shell.Context) -> None:
    """The "Offline basemaps" popover: switch the case's basemaps on and off, add or remove one. Every change is
    saved for the case at once."""
    assert ctx.case_id is not None
    entries = stored(ctx.ws, ctx.case_id)
    n_on = sum(d["shown"] for d in entries)
    with st.popover(_("Offline basemaps ({n} shown)").format(n=n_on), icon=":material/layers:", width="stretch"):
        st.caption(_("Drawn from files on this server, never fetched from the internet; remembered for this case."))
        for i, d in enumerate(entries):
            b = Basemap.from_dict(d)
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            on = c1.checkbox(plain(b.label), value=d["shown"], key=f"basemap_on_{ctx.case_id}_{i}",
                             disabled=not ctx.can_work, help=None if b.kind == "world" else plain(b.path))
            if on != d["shown"]:
                entries[i]["shown"] = on
                _save(ctx, entries)
                st.rerun()
            if b.kind != "world" and ctx.can_work and c2.button("", icon=":material/delete:",
                                                               key=f"basemap_rm_{ctx.case_id}_{i}",
                                                               help=_("Remove {name} from this case's basemaps").format(
                                                                   name=plain(b.name))):
                _save(ctx, [e for j, e in enumerate(entries) if j != i])
                st.rerun()
        if not ctx.can_work:
            return
        st.divider()
        with st.form(f"basemap_add_{ctx.case_id}", clear_on_submit=True, border=False):
            path = st.text_input(_("Basemap path on the server"), key=S.W_BASEMAP_PATH,
                                 placeholder="/data/maps/city.mbtiles",
                                 help=_("An MBTiles file, a folder of {tiles} tiles, a GeoTIFF / COG orthophoto, "
                                        "or a GeoJSON / GeoPackage vector layer (roads, boundaries, footprints).")
                                 .format(tiles="{z}/{x}/{y}"))
            name = st.text_input(_("Name (optional)"), key=S.W_BASEMAP_NAME, max_chars=120)
            if st.form_submit_button(_("Add basemap"), icon=":material/add:") and path.strip():
                try:
                    _add(ctx, entries, check_basemap(path, clean_name(name, default="")))
                    st.rerun()
                except CoreError as exc:
                    shell.show_error(exc, _("Basemap"))
        up = st.file_uploader(_("…or upload one (.mbtiles, .tif, .geojson, .gpkg)"), key=S.W_BASEMAP_UPLOAD,
                              accept_multiple_files=False)
        if up is not None and st.button(_("Add the uploaded basemap"), key="basemap_add_upload"):
            try:
                ext = up.name.rpartition(".")[2].lower()
                if ext not in UPLOAD_TYPES:
                    raise InputError(_("{name} is not a basemap file this page takes ({types})").format(
                        name=up.name, types=", ".join(UPLOAD_TYPES)))
                saved = save_upload(ctx.ws, ctx.case_id, up, clean_name(up.name, default="basemap"))
                _add(ctx, entries, check_basemap(saved, also=(ctx.ws.root,)))
                st.rerun()
            except CoreError as exc:
                shell.show_error(exc, _("Basemap"))


@st.cache_data(show_spinner=False, max_entries=64)  # the spinner is in load(): in the session's language
def _load(entry: str, mtime: float, area: tuple[float, float, float, float], also: str, lang: str) -> Any:
    del mtime, lang  # cache keys only: a changed file is read again; notes are in the language in use
    return load_basemap(Basemap.from_dict(json.loads(entry)), area, also=(Path(also),))


def loader(ws: Workspace) -> Any:
    """A cached ``basemaps.load_basemap`` for ``basemaps.basemap_layers`` (uploaded basemaps in
    the workspace are allowed besides ``$BDA_SERVER_PATHS``)."""
    def load(b: Basemap, area: tuple[float, float, float, float]) -> Any:
        try:
            mtime = Path(b.path).stat().st_mtime
        except OSError:
            mtime = 0.0
        # an orthophoto is drawn whole whatever the scenes: one cached preview for every analysis of the case
        rounded = (0.0, 0.0, 0.0, 0.0) if b.kind == "geotiff" else tuple(round(v, 5) for v in area)
        with st.spinner(_("Reading the basemap…")):  # shown after 0.5 s: not for a cached one
            return _load(json.dumps(b.to_dict(), sort_keys=True), mtime, rounded, str(ws.root), get_lang())
    return load
