"""The Map page's offline basemaps: the case's list (remembered per case in the workspace), which of them are
shown, adding one from a server path or an upload, and the cached reading of each (tiles, orthophoto, vectors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from core.errors import CoreError, InputError
from core.mapping.basemaps import Basemap, case_basemaps, check_basemap, load_basemap, shown_basemaps
from core.mapping.basemaps.case import SETTING
from core.safe_files import clean_name
from core.store import Workspace
from ui import shell
from ui import state as S
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
        raise InputError(f"{b.name} is already one of this case's basemaps")
    _save(ctx, [*entries, b.to_dict() | {"shown": True}])


def chooser(ctx: shell.Context) -> None:
    """The "Offline basemaps" popover: switch the case's basemaps on and off, add or remove one. Every change is
    saved for the case at once."""
    assert ctx.case_id is not None
    entries = stored(ctx.ws, ctx.case_id)
    n_on = sum(d["shown"] for d in entries)
    with st.popover(f"Offline basemaps ({n_on} shown)", icon=":material/layers:", width="stretch"):
        st.caption("Drawn from files on this server, never fetched from the internet; remembered for this case.")
        for i, d in enumerate(entries):
            b = Basemap.from_dict(d)
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            on = c1.checkbox(b.label, value=d["shown"], key=f"basemap_on_{ctx.case_id}_{i}",
                             disabled=not ctx.can_work, help=None if b.kind == "world" else b.path)
            if on != d["shown"]:
                entries[i]["shown"] = on
                _save(ctx, entries)
                st.rerun()
            if b.kind != "world" and ctx.can_work and c2.button("", icon=":material/delete:",
                                                               key=f"basemap_rm_{ctx.case_id}_{i}",
                                                               help=f"Remove {b.name} from this case's basemaps"):
                _save(ctx, [e for j, e in enumerate(entries) if j != i])
                st.rerun()
        if not ctx.can_work:
            return
        st.divider()
        with st.form(f"basemap_add_{ctx.case_id}", clear_on_submit=True, border=False):
            path = st.text_input("Basemap path on the server", key=S.W_BASEMAP_PATH,
                                 placeholder="/data/maps/city.mbtiles",
                                 help="An MBTiles file, a folder of {z}/{x}/{y} tiles, a GeoTIFF / COG orthophoto, "
                                      "or a GeoJSON / GeoPackage vector layer (roads, boundaries, footprints).")
            name = st.text_input("Name (optional)", key=S.W_BASEMAP_NAME, max_chars=120)
            if st.form_submit_button("Add basemap", icon=":material/add:") and path.strip():
                try:
                    _add(ctx, entries, check_basemap(path, clean_name(name, default="")))
                    st.rerun()
                except CoreError as exc:
                    shell.show_error(exc, "Basemap")
        up = st.file_uploader("…or upload one (.mbtiles, .tif, .geojson, .gpkg)", key=S.W_BASEMAP_UPLOAD,
                              accept_multiple_files=False)
        if up is not None and st.button("Add the uploaded basemap", key="basemap_add_upload"):
            try:
                ext = up.name.rpartition(".")[2].lower()
                if ext not in UPLOAD_TYPES:
                    raise InputError(f"{up.name} is not a basemap file this page takes ({', '.join(UPLOAD_TYPES)})")
                saved = save_upload(ctx.ws, ctx.case_id, up, clean_name(up.name, default="basemap"))
                _add(ctx, entries, check_basemap(saved, also=(ctx.ws.root,)))
                st.rerun()
            except CoreError as exc:
                shell.show_error(exc, "Basemap")


@st.cache_data(show_spinner="Reading the basemap…", max_entries=64)
def _load(entry: str, mtime: float, area: tuple[float, float, float, float], also: str) -> Any:
    del mtime  # cache key only: a changed file is read again
    return load_basemap(Basemap.from_dict(json.loads(entry)), area, also=(Path(also),))


def loader(ws: Workspace) -> Any:
    """A cached ``basemaps.load_basemap`` for ``basemaps.basemap_layers`` (uploaded basemaps in
    the workspace are allowed besides ``$BDA_SERVER_PATHS``)."""
    def load(b: Basemap, area: tuple[float, float, float, float]) -> Any:
        try:
            mtime = Path(b.path).stat().st_mtime
        except OSError:
            mtime = 0.0
        rounded = tuple(round(v, 5) for v in area)
        return _load(json.dumps(b.to_dict(), sort_keys=True), mtime, rounded, str(ws.root))
    return load
