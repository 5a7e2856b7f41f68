"""Building footprints for the next analysis on the Analyze page: files uploaded into the case's folder or a file
named on the server, staged until the analysis runs (each building then gets a score, a grade and a confidence)."""

from __future__ import annotations

import time

import streamlit as st

from core.atomic_files import atomic_write_stream
from core.errors import CoreError
from core.file_names import safe_filename
from core.i18n import _
from core.server_files.paths import check_server_path
from ui import shell
from ui import state as S
from ui.markdown_text import plain

FOOTPRINT_TYPES = ["geojson", "json", "gpkg", "fgb", "zip", "shp", "shx", "dbf", "prj", "cpg"]


def staged_paths() -> list[str]:
    """Footprint files staged for the next analysis (a shapefile's .shp stands for its parts)."""
    return [f["path"] for f in S.get(S.STAGED_FOOTPRINTS)]


def footprints_section(ctx: shell.Context) -> None:
    """Upload footprint files (or name one on the server) for the next analysis."""
    with st.expander(_("Building footprints (optional): grade every building"),
                     expanded=bool(S.get(S.STAGED_FOOTPRINTS))):
        files = st.file_uploader(_("Footprints: GeoJSON, GeoPackage, FlatGeobuf, zipped shapefile (or its .shp, "
                                   ".shx, .dbf, .prj together), xBD label .json"), accept_multiple_files=True,
                                 type=FOOTPRINT_TYPES, key=S.footprint_uploader_key())
        if files:
            folder = ctx.ws.uploads_dir(ctx.case_id or 0) / f"footprints-{int(time.time() * 1000)}"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                saved = []
                for f in files:
                    f.seek(0)
                    saved.append(atomic_write_stream(folder / safe_filename(f.name, default="footprints"), f))
            except (OSError, CoreError) as exc:
                shell.show_error(exc, _("Footprints"))
                saved = []
            staged = S.get(S.STAGED_FOOTPRINTS)
            for p in saved:
                if p.suffix.lower() not in (".shx", ".dbf", ".prj", ".cpg"):
                    staged.append({"path": str(p), "name": p.name, "origin": "upload"})
            S.empty_uploader(S.FOOTPRINT_UPLOADER_GEN)
            st.rerun()
        with st.form("footprint_path_form", clear_on_submit=True, border=False):
            c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
            text = c1.text_input(_("…or a footprint file on the server"), placeholder="/data/buildings.gpkg")
            if c2.form_submit_button(_("Add")):
                try:
                    p = check_server_path(text)
                    S.get(S.STAGED_FOOTPRINTS).append({"path": str(p), "name": p.name, "origin": "server path"})
                except CoreError as exc:
                    shell.show_error(exc)
        staged = S.get(S.STAGED_FOOTPRINTS)
        if staged:
            st.caption(_("Footprints of the next analysis: {files}. Each building gets a score, a grade and a "
                         "confidence; files that cannot be read are reported and the rest still run.")
                       .format(files=plain(", ".join(f["name"] for f in staged))))
            if st.button(_("Remove footprints"), key="clear_footprints"):
                S.put(S.STAGED_FOOTPRINTS, [])
                st.rerun()
