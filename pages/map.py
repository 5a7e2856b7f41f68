"""Map: every georeferenced result of the case on an offline Leaflet map; click a finding to see it beside the map."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import streamlit as st
from streamlit_folium import st_folium

from core.detection.grading import SCALES
from core.detection.verdict import confidence_note, judge, verdict_summary
from core.engine.area import mosaic_path
from core.errors import CoreError
from core.i18n import _
from core.mapping import webmap
from core.mapping.basemaps import basemap_layers, scenes_area
from core.types import Finding, GeoRef, SceneResult
from ui import basemaps, i18n, shell
from ui import buildings as buildings_ui
from ui import state as S
from ui.map_clicks import clicked_finding
from ui.markdown_text import plain

MAP_HEIGHT = 620


@st.cache_data(show_spinner=_("Warping heatmap to the map…"), max_entries=512)
def _overlay(path: str, mtime: float, threshold: float, max_px: int) -> webmap.Overlay | None:
    del mtime  # cache key only: a re-written heatmap gets a new overlay
    return webmap.heatmap_overlay(path, threshold, max_px=max_px)


@st.cache_data(show_spinner=_("Placing the imagery on the map…"), max_entries=512)
def _imagery(path: str, mtime: float, georef: str, width: int, height: int, max_px: int) -> webmap.Overlay | None:
    del mtime  # cache key only
    return webmap.imagery_overlay(path, GeoRef.from_dict(json.loads(georef)), width, height, max_px=max_px)


def overlay_size(n_scenes: int) -> int:
    """Overlay resolution: full detail for a few scenes, coarser for many (each is small on screen then, and the
    map page stays fast: 50 scenes at 1024 px would send ~25 MB of PNG on every visit)."""
    return int(max(256, min(1024, 2048 / max(1, n_scenes) ** 0.5)))


@st.cache_data(show_spinner=False, max_entries=256)
def _chip(finding_id: str, source: str, mtime: float, _sr: SceneResult, _f: Finding):
    del finding_id, source, mtime  # cache key only
    return webmap.finding_chip(_sr, _f)


def _mtime(path: Path | None) -> float:
    try:
        return path.stat().st_mtime if path is not None else 0.0
    except OSError:
        return 0.0


def _details(sr: SceneResult, f: Finding) -> None:
    label = _(webmap.grade_label_colour(f)[0])
    st.subheader(plain(f.id), divider="gray")
    na = _("n/a")
    rows = {_("Grade"): f"{label} ({f.grade_scale})",
            _("Score max / mean"): f"{f.score_max:.2f} / {f.score_mean:.2f}",
            _("Threshold"): f"{f.threshold:.2f}", _("Confidence"): f"{f.confidence:.0%}", "MGRS": f.mgrs or na,
            _("Lat / lon"): (f"{f.centroid_lat:.6f}, {f.centroid_lon:.6f}" if f.centroid_lat is not None
                             and f.centroid_lon is not None else na),
            _("Area"): (f"{f.area_m2:,.0f} m²" if f.area_m2 is not None else na)
            + (_(" (approximate)") if f.location_approximate else ""),
            _("Source"): f.source_name or sr.scene_name, _("Review"): _(f.review_status),
            _("Analyst"): f.analyst or "—", _("Method"): _(f.det_method), _("Notes"): f.notes or "—"}
    st.dataframe([{_("field"): k, _("value"): str(v)} for k, v in rows.items()], hide_index=True, width="stretch")
    st.caption(":material/info: " + confidence_note() + " " + _("Verdict of {name}: {rule}.").format(
        name=plain(sr.scene_name), rule=judge(sr).rule))
    src = Path(sr.source_path) if sr.source_path else None
    try:
        chip = _chip(f.id, str(src), _mtime(src), sr, f)
    except CoreError as exc:
        shell.show_error(exc, _("Image chip"))
        return
    if chip is None:
        st.caption(_("The source image is no longer available, so no chip can be shown."))
    else:
        st.image(chip, caption=_("{grade}: outline of the finding on the source image").format(grade=label),
                 width="stretch")


def _legend(results: list) -> None:
    """Grade colours of every damage scale the shown results use (an analysis may use EMS, xView2 or UNOSAT)."""
    used = list(dict.fromkeys(str(r.meta.get("grade_scale", "copernicus-ems")) for r in results)) or ["copernicus-ems"]
    rows = []
    for key in used:
        scale = SCALES.get(key, SCALES["copernicus-ems"])
        items = " ".join(f"<span style='color:{g.color}'>&#9632;</span> {escape(_(g.label))}" for g in scale.grades())
        rows.append((f"{escape(_(scale.name))}: " if len(used) > 1 else "") + items)
    st.markdown("<small>" + "<br>".join(rows) + " &nbsp; <span style='color:#718096'>&#9633;</span> "
                + escape(_("rejected")) + " &nbsp; " + escape(_("dashed outline = approximate footprint"))
                + "</small>", unsafe_allow_html=True)


ctx = shell.context()
st.title(_("Map"))
if ctx.case_id is None:
    st.info(_("Pick or create a case in the sidebar first."))
    st.stop()
analysis = shell.pick_analysis(ctx, S.W_ANALYSIS)
if analysis is None:
    st.info(_("This case has no analysis yet: analyse images on the Analyze page, then come back to see them here."))
    st.stop()
whole_case = st.toggle(_("Show every analysis of this case"), value=False,
                       help=_("Off: only the analysis picked above. On: all analyses of the case on one map."))
try:
    ids = [a["id"] for a in ctx.ws.list_analyses(ctx.case_id)] if whole_case else [analysis["id"]]
    results = [r for aid in ids for r in ctx.ws.scene_results(aid) if r.error is None]
except CoreError as exc:
    shell.show_error(exc, _("Workspace"))
    st.stop()
on_map = [r for r in results if r.georef is not None]
off_map = [r.scene_name for r in results if r.georef is None]
gps_only = [r for r in results if r.georef is None and webmap.gps_point(r) is not None]  # marked, not drawn
if not on_map and not gps_only:
    st.info(_("None of these results is georeferenced, so there is nothing to place on the map. GeoTIFFs carry "
              "their location; drone frames need GPS in their metadata, and photos can be placed by hand on the "
              "Analyze page."))
    if off_map:
        st.text(_("Not georeferenced: ") + ", ".join(off_map))
    st.stop()

c1, c2, c3 = st.columns([2, 2, 3])
basemap = c1.selectbox(_("Basemap"), list(webmap.BASEMAPS), index=0,
                       format_func=i18n.fixed(webmap.BASEMAPS, lambda k: _(k)),
                       help=_("Online tiles: 'none' works offline; the others fetch tiles from their provider. "
                              "Basemaps from files on this server: 'Offline basemaps'."))
with c2:
    basemaps.chooser(ctx)
n_pairs = sum(r.change_path is not None for r in on_map)
heat_layer = "auto"
if n_pairs:
    first = c2.segmented_control(_("Heatmap shown"), ["change", "anomaly"], default="change", key=S.W_HEAT_LAYER,
                                 format_func=lambda k: _(k),
                                 help=_("One heatmap kind at a time: the change (pre → post) heatmap of pairs, or "
                                        "the post-event anomaly heatmap. The layer control switches too."))
    heat_layer = first or "auto"
tally = verdict_summary(on_map)
c3.caption(_("{scenes} georeferenced scene(s), {findings} counted finding(s)").format(
               scenes=len(on_map), findings=tally["findings"])
           + (" " + _("({n} rejected)").format(n=tally["rejected"]) if tally["rejected"] else "") + ". "
           + _("Heatmaps are transparent below the threshold each scene was analysed with.")
           + (" " + _("{n} pre/post pair(s): their change heatmaps are shown, the post-event anomaly heatmaps are the "
                      "other layer (one at a time); their findings come from the change.").format(n=n_pairs)
              if n_pairs else "")
           + " " + _("Legend bottom left; 'Zoom to scene…' top left."))
overlays: dict[str, webmap.Overlay | None] = {}
max_px = overlay_size(len(on_map))


def _add_overlay(path: Path, threshold: float, what: str) -> None:
    """Cached overlay of one heatmap GeoTIFF into ``overlays`` (None plus a warning when it cannot be drawn)."""
    try:
        overlays[str(path)] = _overlay(str(path), _mtime(Path(path)), threshold, max_px)
    except CoreError as exc:
        overlays[str(path)] = None
        st.warning(_("{what} not shown: {error}").format(what=plain(what), error=plain(exc)), icon=":material/warning:")


for r in on_map:
    if r.heatmap_path is not None:
        _add_overlay(r.heatmap_path, webmap.scene_threshold(r), _("Heatmap of {name!r}").format(name=r.scene_name))
    if r.change_path is not None:  # a pre/post result: its change heatmap is a layer of its own
        _add_overlay(r.change_path, webmap.change_threshold(r),
                     _("Change heatmap of {name!r}").format(name=r.scene_name))
imagery: dict[str, webmap.Overlay | None] = {}
for r in on_map:
    if r.source_path is None:
        continue
    try:
        imagery[str(r.source_path)] = _imagery(str(r.source_path), _mtime(Path(r.source_path)),
                                               json.dumps(r.georef.to_dict()), r.width, r.height, max_px)
    except CoreError as exc:
        st.warning(plain(_("Imagery of {name!r} not shown: {error}").format(name=r.scene_name, error=exc)),
                   icon=":material/warning:")
base = basemap_layers(basemaps.shown(ctx.ws, ctx.case_id), scenes_area(on_map + gps_only),
                      load=basemaps.loader(ctx.ws))
for note in base.notes:
    st.caption(f":material/layers: {plain(note)}")
mosaic = None  # the area mosaic of the picked analysis (runs of two or more georeferenced scenes write one)
mosaic_file = None if whole_case else mosaic_path(analysis["options"].get("out") or ctx.ws.analysis_dir(analysis["id"]))
if mosaic_file is not None and on_map:
    try:
        mosaic = _overlay(str(mosaic_file), _mtime(mosaic_file), webmap.scene_threshold(on_map[0]), 1024)
    except CoreError as exc:
        st.warning(_("Area mosaic not shown: {error}").format(error=plain(exc)), icon=":material/warning:")
    if mosaic is not None:
        st.caption(_("Area mosaic: {name} (one heatmap of the area, layer control top right; the per-scene "
                     "heatmaps are there too).").format(name=plain(mosaic_file.name)))
try:
    bset = buildings_ui.load(ctx, analysis["id"])
    extra = []
    if bset is not None:  # footprints were given: every building on the map, coloured by grade
        from core.buildings.maplayer import buildings_layer
        from core.detection.grading import get_scale

        grades = [g.key for g in get_scale(bset.grade_scale).grades()]
        # buildings outside the imagery are hidden at first: a city's footprints around one tile would bury it
        bscale = get_scale(bset.grade_scale)
        shown = st.multiselect(_("Show buildings graded"), grades, default=grades[:-1], key="building_grades",
                               format_func=i18n.fixed(grades, lambda k: _(bscale.get(k).label)))
        layer = buildings_layer([b for b in bset.buildings if b.grade in shown])
        extra = [layer] if layer is not None else []
    fmap = webmap.build_map(on_map + gps_only, overlays=overlays, basemap=basemap, height=MAP_HEIGHT,
                            overlay_opacity=float(S.get(S.OPACITY) or 0.6), imagery=imagery, heat_layer=heat_layer,
                            base_layers=base.layers, layers=extra, mosaic=mosaic)
except CoreError as exc:
    shell.show_error(exc, _("Map"))
    st.stop()

left, right = st.columns([5, 2])
with left:
    out = st_folium(fmap, height=MAP_HEIGHT, use_container_width=True,
                    returned_objects=["last_object_clicked", "last_object_clicked_tooltip"])
    _legend(on_map)
    if bset is not None:
        buildings_ui.legend(bset.grade_scale)
with right:
    if bset is not None:
        from core.buildings.maplayer import clicked_building

        buildings_ui.panel(ctx, analysis["id"], bset, clicked_building(out, bset.buildings))
    clicked = clicked_finding(on_map, out)
    by_id = {f.id: (r, f) for r in on_map for f in r.findings}
    if not by_id:
        st.info(_("No findings in these results: nothing scored above the threshold."))
    else:
        ids_sorted = list(by_id)
        fid = st.selectbox(_("Finding"), ids_sorted, index=ids_sorted.index(clicked.id) if clicked else None,
                           placeholder=_("click one on the map, or pick it here"),
                           format_func=i18n.fixed(ids_sorted, lambda i: f"{i} · "
                                                  f"{_(webmap.grade_label_colour(by_id[i][1])[0])}"))
        if fid is not None:
            _details(*by_id[fid])
if off_map:
    with st.expander(_("{n} result(s) without a footprint on the map (no georeferencing)").format(n=len(off_map))):
        st.text("\n".join(off_map))
        if gps_only:
            st.caption(_("{n} of them carry GPS and are marked by an orange point; place them on the Analyze page "
                         "(centre and ground sample distance) to see their heatmaps and findings here.").format(
                             n=len(gps_only)))
if bset is not None:
    st.subheader(_("Buildings table"))
    st.dataframe(buildings_ui.table([b for b in bset.buildings if b.grade in shown]), hide_index=True,
                 width="stretch", column_config=i18n.column_labels(buildings_ui.TABLE_COLUMNS))
