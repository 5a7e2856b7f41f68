"""Placing an un-georeferenced frame on the map from the Analyze page: centre (prefilled from the frame's GPS when
it has one), ground sample distance and heading; the heatmaps get the location and the findings their coordinates."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.detection.pipeline import place_result
from core.errors import CoreError
from core.geo import georef as geo
from core.i18n import _
from core.types import SceneResult
from ui import shell
from ui import state as S
from ui.markdown_text import plain


def placement_form(ctx: shell.Context, aid: int, r: SceneResult, model: dict[str, Any]) -> None:
    """Let the analyst place an un-georeferenced frame: by its centre, ground sample distance and heading, or by
    the WGS84 bounds of a north-up image."""
    st.info(_("{name} has no georeference, so it cannot be shown on the map and its findings have no "
              "coordinates or areas. Place it: give the centre of the image and its ground sample distance, or the "
              "bounds it covers.").format(name=plain(r.scene_name)), icon=":material/location_off:")
    from core.mapping import webmap  # folium: only when an unplaced image is shown

    gps = webmap.gps_point(r)
    if gps is not None:
        st.caption(_(":material/satellite_alt: The frame's GPS ({lat:.6f}, {lon:.6f}) is filled in; its metadata "
                     "lacked the height or camera data for a footprint, so give the ground sample distance.")
                   .format(lat=gps[0], lon=gps[1]))
    by = st.radio(_("Place by"), ["centre", "bounds"], horizontal=True, key=S.place_key(r.scene_name, "by"),
                  format_func={"centre": _("centre, ground sample distance and heading"),
                               "bounds": _("bounds of a north-up image (W, S, E, N)")}.get)
    key = S.place_key
    with st.form(key(r.scene_name, "form"), border=True):
        c1, c2, c3, c4 = st.columns(4)
        if by == "centre":
            lat = c1.number_input(_("Centre latitude (°)"), -90.0, 90.0, gps[0] if gps else 0.0, format="%.6f",
                                  key=key(r.scene_name, "lat"))
            lon = c2.number_input(_("Centre longitude (°)"), -180.0, 180.0, gps[1] if gps else 0.0, format="%.6f",
                                  key=key(r.scene_name, "lon"))
            gsd = c3.number_input(_("Ground sample distance (m/px)"), 0.001, 1000.0, 0.1, format="%.3f",
                                  key=key(r.scene_name, "gsd"))
            yaw = c4.number_input(_("Heading of the image top (° from north)"), -360.0, 360.0, 0.0, format="%.1f",
                                  key=key(r.scene_name, "yaw"),
                                  help=_("0 = north up; 90 = the top of the image faces east (a drone's yaw)."))
            args: dict[str, Any] = {"center": (lat, lon), "gsd_m": gsd, "yaw_deg": yaw}
        else:
            w = c1.number_input(_("West (° longitude)"), -180.0, 180.0, 0.0, format="%.6f",
                                key=key(r.scene_name, "w"))
            s_ = c2.number_input(_("South (° latitude)"), -90.0, 90.0, 0.0, format="%.6f",
                                 key=key(r.scene_name, "s"))
            e = c3.number_input(_("East (° longitude)"), -180.0, 180.0, 0.0, format="%.6f",
                                key=key(r.scene_name, "e"))
            n = c4.number_input(_("North (° latitude)"), -90.0, 90.0, 0.0, format="%.6f",
                                key=key(r.scene_name, "n"))
            args = {"bounds": (w, s_, e, n)}
        if st.form_submit_button(_("Place on the map"), icon=":material/add_location:"):
            try:
                georef, how = geo.placement_georef(r.width, r.height, **args)
                r.meta["placement"] = how
                thr = float(r.meta.get("threshold") or (r.findings[0].threshold if r.findings else ctx.threshold))
                placed = place_result(r, georef, model, thr)
                ctx.ws.save_scene_result(aid, placed, input_name=r.scene_name)
                st.rerun()
            except CoreError as exc:
                shell.show_error(exc)
