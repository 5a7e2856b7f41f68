"""Analyze: bring images in (upload or server path), run the detector, look at the stored results.

Everything shown comes from the workspace (an analysis record per run), so a refresh or a page change shows it
again without recomputing; derived images are cached by file path + modification time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.analysis.guidance import EVENT_MODES, mode_advice
from core.analysis.run import AnalysisInput, AnalysisOptions, AnalysisRun
from core.detection.findings import extract_findings
from core.detection.grading import SCALES
from core.detection.heatmap import PREVIEW_MAX, blend, read_heatmap
from core.detection.pipeline import MAX_FINDINGS, refind_findings
from core.detection.verdict import (
    IMAGE_SCORE_NOTE,
    VERDICT_RULE,
    Verdict,
    confidence_note,
    judge,
    same_threshold,
    verdict_of,
)
from core.engine import ray_address_from_env
from core.errors import CoreError
from core.i18n import _, ngettext
from core.safe_files import clean_name, unique_name
from core.server_files.inputs import check_server_path
from core.types import SceneResult
from ui import area_fit, cells, compare, i18n, images, placement, shell, uploads
from ui import buildings as buildings_ui
from ui import state as S

UPLOAD_TYPES = ["jpg", "jpeg", "png", "tif", "tiff", "json"]  #: json: xBD label files beside their images


# -- helpers (page logic only: every computation is a core call) --------------------------------------------------
def stage(name: str, path: Path, origin: str) -> None:
    """Add an input to the list waiting for the next run (names stay unique: they name the analysis inputs)."""
    staged = S.get(S.STAGED)
    name = clean_name(name, default="image")
    staged.append({"name": unique_name(name, [s["name"] for s in staged]), "path": str(path), "origin": origin})


def take_uploads(ctx: shell.Context, files: list[Any]) -> None:
    """Write new uploads to the workspace and stage them; the uploader is replaced on the next run, which
    releases the uploads' memory."""
    uploads.save_uploads(ctx, files, lambda name, path: stage(name, path, "upload"), types=UPLOAD_TYPES)
    S.put(S.UPLOADER_GEN, S.get(S.UPLOADER_GEN) + 1)


def run_batch(ctx: shell.Context, run: AnalysisRun) -> None:
    """Run an analysis (see :class:`core.analysis.run.AnalysisRun`) with one progress bar per file and one per tile.

    A file that fails gets an ``st.error`` and a failed record; the others still run. The analysis ends ``done``,
    or ``interrupted`` when the run is stopped (page left, app stopped) before the last file.
    """
    aid = run.analysis_id
    files_bar = st.progress(0.0, text=_("Analysis #{id}: 0 of {n} images").format(id=aid, n=len(run.inputs)))
    tiles_bar = st.progress(0.0, text=_("tiles"))
    errors = st.empty()  # errors while the batch runs; the results below list them for good afterwards
    shown = errors.container()
    current = [""]

    def on_input(k: int, n: int, item: AnalysisInput) -> None:
        current[0] = item.name
        files_bar.progress(k / n, text=_("Analysis #{id}: image {k} of {n} — {name}").format(
            id=aid, k=k + 1, n=n, name=item.name))
        tiles_bar.progress(0.0, text=_("{name}: reading").format(name=item.name))

    def on_tiles(done: int, total: int) -> None:
        tiles_bar.progress(min(done / max(total, 1), 1.0), text=_("{name}: tile {done} of {total}").format(
            name=current[0], done=done, total=total))

    def on_result(item: AnalysisInput, result: SceneResult) -> None:
        if result.error:
            shown.error(f"{item.name}: {result.error}", icon=":material/broken_image:")

    shell.refresh_case_caption(ctx.ws, ctx.case_id)  # the sidebar was drawn before this analysis existed
    try:
        run.run(on_input=on_input, on_tiles=on_tiles, on_result=on_result)
    finally:
        shell.refresh_case_caption(ctx.ws, ctx.case_id)
    if run.area is not None:  # two or more georeferenced scenes: one mosaic and one set of findings for the area
        f = run.area["findings"]
        st.toast(_("Area mosaic written; {merged} area findings ({joined} joined across scene seams). The Map page "
                   "shows the mosaic.").format(merged=f["merged"], joined=f["joined_across_seams"]),
                 icon=":material/map:")
    elif run.area_error:
        st.warning(run.area_error, icon=":material/warning:")


def start_run(ctx: shell.Context, items: list[dict[str, str]], grade_scale: str) -> int:
    """Record a new analysis of the staged inputs with the sidebar's model and threshold, and run it."""
    det = ctx.detector
    assert det is not None
    default = float(det.calibration.threshold)
    # the slider shows the model's default rounded: record "model default" (None) unless the analyst moved it
    thr = None if ctx.threshold is None or abs(ctx.threshold - default) < 0.005 else ctx.threshold
    inputs = [AnalysisInput(path=i["path"], name=i["name"], pre_path=i.get("pre_path") or None, origin=i["origin"])
              for i in items]
    cluster = ray_address_from_env()
    engine = "ray" if cluster and S.get(S.ENGINE) == "ray" else "local"
    options = AnalysisOptions(threshold=thr, grade_scale=grade_scale, resample=bool(S.get(S.RESAMPLE)),
                              event_type=str(S.get(S.EVENT_TYPE) or "other"), origin="dashboard",
                              footprints=tuple(buildings_ui.staged_paths()), engine=engine,
                              ray_address=cluster if engine == "ray" else "")
    run = AnalysisRun.start(det, inputs, options, ws=ctx.ws, case_id=ctx.case_id,
                            created_by=ctx.user.name if ctx.user else None)
    run_batch(ctx, run)
    assert run.analysis_id is not None
    return run.analysis_id


def resume(ctx: shell.Context, analysis: dict[str, Any]) -> None:
    """Analyse the inputs an interrupted analysis did not reach, with its own model, threshold and options."""
    det = ctx.detector
    model = analysis["model"]
    if det is None or det.sha256 != model.get("sha256"):
        st.warning(_("Analysis #{id} was made with the model {name!r}; choose it in the sidebar to resume it.")
                   .format(id=analysis["id"], name=model.get("name", "?")))
        return
    run_batch(ctx, AnalysisRun.resume(ctx.ws, analysis["id"], det))
    st.rerun()


@st.cache_data(max_entries=5000, show_spinner=False)
def live_counts(heat_path: str, file_mtime: float, threshold: float, grade_scale: str, name: str, width: int,
                height: int) -> dict[str, int]:
    """Findings per grade at ``threshold``, extracted as the pipeline does from the stored heatmap's preview (the
    preview is read, not kept: only the small counts are cached, per threshold)."""
    del file_mtime
    hm = read_heatmap(heat_path, preview_max=PREVIEW_MAX)
    fs = extract_findings(hm.preview, hm.preview_scale, threshold, georef=None, scene_name=name,
                          grade_scale=grade_scale, full_size=(width, height), max_findings=MAX_FINDINGS)
    counts: dict[str, int] = {}
    for f in fs:
        counts[f.grade] = counts.get(f.grade, 0) + 1
    return counts


def histogram(result: SceneResult, threshold: float, kind: str) -> go.Figure:
    """Plotly histogram of pixel or finding scores with the threshold as a vertical line."""
    fig = go.Figure()
    if kind == "pixels":
        edges, counts = images.score_histogram(str(result.heatmap_path), images.mtime(result.heatmap_path))
        if len(counts):
            fig.add_bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=edges[1] - edges[0],
                        marker_color="#6b8fb3", name=_("pixels"))
        fig.update_yaxes(type="log", title=_("pixels (preview)"))
    else:
        fig.add_histogram(x=[f.score_max for f in result.findings], nbinsx=30, marker_color="#e34a33",
                          name=_("findings"))
        fig.update_yaxes(title=_("findings"))
    fig.add_vline(x=threshold, line_color="#f5d000", line_width=2,
                  annotation_text=_("threshold {thr:.2f}").format(thr=threshold))
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), showlegend=False, bargap=0,
                      xaxis_title=_("calibrated score (peak per finding)") if kind != "pixels"
                      else _("calibrated score"))
    return fig


# -- page sections -------------------------------------------------------------------------------------------------
def run_staged(ctx: shell.Context) -> bool:
    """Analyse the staged inputs; True when a new analysis was made (it becomes the one shown)."""
    try:
        items = compare.with_pre_paths(list(S.get(S.STAGED)), S.get(S.STAGED_PRE))
        aid = start_run(ctx, items, S.get(S.GRADE_SCALE))
    except CoreError as exc:
        shell.show_error(exc, _("Analysis"))
        return False
    clear_staged()
    S.put(S.ANALYSIS_ID, aid)
    return True


def clear_staged() -> None:
    """Empty the staged post- and pre-event images and the hand-made pairings."""
    S.put(S.STAGED, [])
    S.put(S.STAGED_PRE, [])
    S.put(S.PAIRS, {})
    S.put(S.STAGED_FOOTPRINTS, [])


def inputs_section(ctx: shell.Context) -> None:
    """Upload / server path / staged list / run."""
    st.subheader(_("Images"))
    # no type=: each file's type is checked on its own (uploads.save_uploads), one bad name never loses the batch
    files = st.file_uploader(_("Upload images (JPEG, PNG, TIFF, GeoTIFF; xBD label .json with its .png)"),
                             accept_multiple_files=True, key=S.uploader_key(),
                             help=_("Each file is written to the workspace as soon as it arrives."))
    pre_files = compare.pre_uploader(ctx)
    S.bind(S.W_AUTO_RUN, S.AUTO_RUN)
    st.toggle(_("Analyse uploads right away"), key=S.W_AUTO_RUN, on_change=S.keep, args=(S.AUTO_RUN, S.W_AUTO_RUN),
              help=_("Run the sidebar's model on new uploads as soon as they are saved."))
    if pre_files:
        compare.take_pre_uploads(ctx, pre_files)
        if not files:
            S.put(S.UPLOADER_GEN, S.get(S.UPLOADER_GEN) + 1)
            st.rerun()
    if files:
        take_uploads(ctx, files)
        if S.get(S.AUTO_RUN) and ctx.detector is not None and S.get(S.STAGED):
            run_staged(ctx)
        st.rerun()  # a fresh, empty uploader: Streamlit drops the uploaded bytes
    notes = st.container()  # drawn on every run: the messages (shown once) move no widget below them
    for msg in S.get(S.UPLOAD_ERRORS):
        notes.error(msg)
    for msg in S.get(S.UPLOAD_NOTES):
        notes.info(msg, icon=":material/label:")
    S.put(S.UPLOAD_ERRORS, [])
    S.put(S.UPLOAD_NOTES, [])
    with st.form("server_path_form", clear_on_submit=True, border=False):
        c1, c2, c3 = st.columns([5, 2, 1], vertical_alignment="bottom")
        text = c1.text_input(_("…or a file on the server (for rasters too large to upload)"), key=S.W_SERVER_PATH,
                             placeholder="/data/orthomosaic/tile_01.tif")
        role = c2.selectbox(_("as"), ["post-event", "pre-event"], key=S.W_SERVER_ROLE,
                            format_func=i18n.fixed(["post-event", "pre-event"], _),
                            help=_("pre-event: a reference the post-event images are compared with"))
        if c3.form_submit_button(_("Add path")):
            try:
                path = check_server_path(text)
                (compare.stage_pre if role == "pre-event" else stage)(path.name, path, "server path")
            except CoreError as exc:
                shell.show_error(exc)
    buildings_ui.footprints_section(ctx)
    area_fit.section(ctx)  # fit a normal model to the staged pre-event images of the area
    staged = S.get(S.STAGED)
    if not staged:
        compare.pairing_section(staged)  # pre-event images waiting for their post-event images
        return
    area = st.empty()  # the staged list; replaced by the progress bars while the batch runs
    with area.container():
        st.dataframe(pd.DataFrame([{"image": s["name"], "from": s["origin"], "stored at": s["path"]}
                                   for s in staged]), hide_index=True, width="stretch")
        compare.pairing_section(staged)
        c1, c2, c3 = st.columns([2, 2, 3], vertical_alignment="bottom")
        S.bind(S.W_GRADE_SCALE, S.GRADE_SCALE)
        c3.selectbox(_("Damage scale"), list(SCALES), key=S.W_GRADE_SCALE,
                     format_func=i18n.fixed(SCALES, lambda k: _(SCALES[k].name)),
                     on_change=S.keep, args=(S.GRADE_SCALE, S.W_GRADE_SCALE))
        S.bind(S.W_EVENT_TYPE, S.EVENT_TYPE)
        event = c3.selectbox(_("Event type"), list(EVENT_MODES), key=S.W_EVENT_TYPE,
                             format_func=i18n.fixed(EVENT_MODES, lambda k: _(EVENT_MODES[k].label)),
                             on_change=S.keep,
                             args=(S.EVENT_TYPE, S.W_EVENT_TYPE),
                             help=_("Says whether the post-event image alone can show this kind of damage, or a "
                                    "pre-event image of the same place is needed."))
        advice, warn = mode_advice(event, has_pre=any(s.get("pre_path") for s in staged) or bool(S.get(S.STAGED_PRE)))
        (st.warning if warn else st.caption)(advice)
        gsd = ctx.detector.gsd_m if ctx.detector is not None else None
        S.bind(S.W_RESAMPLE, S.RESAMPLE)
        st.toggle(_("Resample georeferenced inputs to the model's {gsd:.2f} m/px").format(gsd=gsd) if gsd else
                  _("Resample georeferenced inputs to the model's ground sample distance"), key=S.W_RESAMPLE,
                  on_change=S.keep, args=(S.RESAMPLE, S.W_RESAMPLE), disabled=not gsd,
                  help=_("A model sees damage at the scale it was trained at: a 5 cm drone orthomosaic is analysed "
                         "at the model's scale when this is on (only when the two differ by more than 1.5×). ")
                  + ("" if gsd else _("This model records no training scale, so inputs keep their own.")))
        cluster = ray_address_from_env()
        if cluster:  # a Ray cluster is configured for this installation: the analyst picks where to run
            S.bind(S.W_ENGINE, S.ENGINE)
            st.radio(_("Run on"), ["local", "ray"], key=S.W_ENGINE, horizontal=True, on_change=S.keep,
                     args=(S.ENGINE, S.W_ENGINE),
                     format_func=lambda k: (_("this machine") if k == "local"
                                            else _("the Ray cluster ({address})").format(address=cluster)),
                     help=_("The Ray cluster scores the tiles on its workers (GPUs when they have them) and gives "
                            "the same heatmaps and findings as this machine; its workers must see the images at "
                            "the same paths."))
        if c2.button(_("Clear list"), icon=":material/clear_all:"):
            clear_staged()
            st.rerun()
        if ctx.detector is None:
            st.warning(_("No usable model: {error}. Choose another model in the sidebar.").format(
                error=ctx.model_error))
            return
        label = ngettext("Analyse {n} image", "Analyse {n} images", len(staged)).format(n=len(staged))
        run = c1.button(label, type="primary", icon=":material/play_arrow:", key="run_analysis")
    if run:
        with area.container():
            done = run_staged(ctx)
        if done:
            # draw the results from the stored analysis in a fresh run: drawn below this run's progress bars, they
            # would sit at other element positions than in every later run, and Streamlit would then show a stale
            # copy of each widget beside the new one while the next rerun is under way
            st.rerun()


def _heatmap(r: SceneResult) -> Path | None:
    """The scene's heatmap file, or None when it is not in this workspace (an imported case whose run wrote its
    outputs elsewhere, or a file removed since)."""
    return Path(r.heatmap_path) if r.heatmap_path is not None and Path(r.heatmap_path).is_file() else None


def missing_heatmap(r: SceneResult) -> None:
    """What a scene without its heatmap file still shows: scores, saved findings, and why the maps are missing."""
    v = judge(r)
    m1, m2, m3 = st.columns(3)
    m1.metric(_("Image score"), f"{r.image_score:.2f}", help=_(IMAGE_SCORE_NOTE))
    m2.metric(_("Verdict"), _(v.verdict), help=_(VERDICT_RULE))
    m3.metric(_("Findings saved"), v.n_counted, help=_saved_help(v))
    st.caption(f":material/rule: {v.rule}")
    st.warning(_("The heatmap of {name} is missing from this workspace: the analysis was imported from a "
                 "workbench whose run wrote its heatmaps outside its workspace, or the file was removed. Its saved "
                 "findings, reviews and report are all here; to see heatmaps, analyse the image again.").format(
                     name=r.scene_name), icon=":material/hide_image:")


def _saved_help(v: Verdict) -> str:
    """Help of the saved-findings count: the threshold they were cut at and how many were rejected."""
    t = _("not recorded") if v.threshold is None else f"{v.threshold:.2f}"
    return (_("extracted at threshold {t}; counted findings (rejected ones are not counted: {n}).").format(
        t=t, n=v.n_rejected) + " " + confidence_note())


def summary_table(results: list[SceneResult], threshold: float) -> None:
    """One row per image: verdict, score, stored and live finding counts, location."""
    rows = []
    for r in results:
        v = judge(r)
        live = None
        if not r.error and (r.change_path is not None or same_threshold(v.threshold, threshold)):
            live = v.n_counted  # saved at this threshold (a pair's: the change threshold): the saved count
        elif not r.error and _heatmap(r) is not None:
            live = sum(live_counts(str(r.heatmap_path), images.mtime(r.heatmap_path), threshold,
                                   str(r.meta.get("grade_scale", "copernicus-ems")), r.scene_name, r.width,
                                   r.height).values())
        loc = "—" if r.error else (_("not placed") if r.georef is None else
                                   (_("approximate") if r.georef.approximate else _("georeferenced")))
        # text cells: a failed image has no score or counts, and Streamlit would print a missing number as "None"
        rows.append({_("image"): r.scene_name, _("pre-event"): r.pre_scene_name or "", _("verdict"): _(v.verdict),
                     _("image score"): cells.num(r.image_score), _("threshold"): cells.num(v.threshold),
                     _("findings (saved)"): cells.MISSING if r.error else str(v.n_counted),
                     _("findings @ {thr:.2f}").format(thr=threshold): cells.num(live, "d"), _("location"): loc,
                     _("error"): r.error or "", _("rule"): v.rule})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={_("image score"): st.column_config.TextColumn(help=_(IMAGE_SCORE_NOTE)),
                                _("threshold"): st.column_config.TextColumn(
                                    help=_("the threshold the saved findings were cut at")),
                                _("verdict"): st.column_config.TextColumn(help=_(VERDICT_RULE))})
    st.caption(":material/rule: " + _("Verdict: {rule}").format(rule=_(VERDICT_RULE)))


def detail(ctx: shell.Context, aid: int, r: SceneResult, model: dict[str, Any], threshold: float,
           event_type: str = "other") -> None:
    """Original, heatmap and overlay side by side, scores, histogram, location."""
    if r.error:
        st.error(f"{r.scene_name}: {r.error}", icon=":material/broken_image:")
        return
    if _heatmap(r) is None:
        missing_heatmap(r)
        return
    hp, hm = str(r.heatmap_path), images.mtime(r.heatmap_path)
    scale = str(r.meta.get("grade_scale", "copernicus-ems"))
    live = live_counts(hp, hm, threshold, scale, r.scene_name, r.width, r.height)
    v = judge(r)
    pair = r.change_path is not None
    # one rule (core.detection.verdict): at the saved threshold the live count is the saved count, never a re-extraction
    n_live = v.n_counted if not pair and same_threshold(v.threshold, threshold) else sum(live.values())
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(_("Image score"), f"{r.image_score:.2f}", help=_(IMAGE_SCORE_NOTE))
    m2.metric(_("Verdict"), _(v.verdict), help=_(VERDICT_RULE))
    m3.metric(_("Change findings saved") if pair else _("Findings saved"), v.n_counted, help=_saved_help(v))
    m4.metric((_("Post-only findings @ {thr:.2f}") if pair else _("Findings @ {thr:.2f}")).format(thr=threshold),
              n_live,
              help=(", ".join(f"{_(SCALES[scale].get(k).label)}: {n}" for k, n in live.items()) or _("none"))
              + ("" if pair or same_threshold(v.threshold, threshold) else
                 " " + _("(a preview at the sidebar threshold; not saved)")))
    st.caption(f":material/rule: {v.rule}" + ("" if pair or same_threshold(v.threshold, threshold) else
                                              " · " + _("at the sidebar threshold {thr:.2f} (not saved): {verdict}, "
                                                        "{n} finding(s)").format(thr=threshold,
                                                                                 verdict=_(verdict_of(n_live)),
                                                                                 n=n_live)))
    for w in r.meta.get("warnings", []):
        st.caption(f":material/warning: {w}")
    if r.change_path is not None:
        compare.before_after(r)
        if ctx.can_work:
            compare.change_threshold_form(ctx, aid, r, model)
    else:
        advice, warn = mode_advice(event_type, has_pre=False)
        st.caption(f":material/{'warning' if warn else 'compare'}: "
                   + _("One image alone shows what is unusual in it, not what changed.") + f" {advice}")
    S.bind(S.W_OPACITY, S.OPACITY)
    st.slider(_("Heatmap opacity"), 0.0, 1.0, step=0.05, key=S.W_OPACITY, on_change=S.keep,
              args=(S.OPACITY, S.W_OPACITY))
    rgba = images.heat_rgba(hp, hm, threshold)
    try:
        rgb = images.source_preview(str(r.source_path), images.mtime(r.source_path))
    except CoreError as exc:
        rgb = None
        st.warning(_("The original image cannot be shown: {error}").format(error=exc))
    c1, c2, c3 = st.columns(3)
    if rgb is not None:
        c1.image(rgb, caption=_("original"), width="stretch")
    c2.image(images.heat_panel(hp, hm, threshold),
             caption=_("heatmap: grey below {thr:.2f}, colour above").format(thr=threshold),
             width="stretch")
    if rgb is not None:
        c3.image(blend(rgb, rgba, S.get(S.OPACITY)), caption=_("overlay"), width="stretch")
    kind = st.segmented_control(_("Histogram of"), ["pixels", "findings"], default="pixels", key=S.W_HIST_KIND,
                                format_func=i18n.fixed(["pixels", "findings"], _))
    st.plotly_chart(histogram(r, threshold, kind or "pixels"), width="stretch", config={"displayModeBar": False})
    if r.georef is None:
        if ctx.can_work:
            placement.placement_form(ctx, aid, r, model)
    else:
        w, s, e, n = r.bounds_wgs84 or (math.nan,) * 4
        st.caption(":material/location_on: " + (
            _("{method} georeference (approximate), {crs}; WGS84 bounds W {w:.5f} S {s:.5f} E {e:.5f} N {n:.5f}")
            if r.georef.approximate else
            _("{method} georeference, {crs}; WGS84 bounds W {w:.5f} S {s:.5f} E {e:.5f} N {n:.5f}")).format(
                method=_(r.georef.method), crs=r.georef.crs, w=w, s=s, e=e, n=n))


def results_section(ctx: shell.Context) -> None:
    """The chosen analysis of the case, read back from the workspace."""
    st.subheader(_("Results"))
    analysis = shell.pick_analysis(ctx, S.W_ANALYSIS)
    if analysis is None:
        st.info(_("No analysis in this case yet: add images above and run them."), icon=":material/info:")
        return
    aid = analysis["id"]
    left = analysis["n_inputs"] - analysis["n_done"] - analysis["n_failed"]
    if analysis["status"] == "interrupted" and left > 0:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.warning(_("Analysis #{id} was interrupted before {left} of its {n} images.").format(
            id=aid, left=left, n=analysis["n_inputs"]))
        if ctx.can_work and c2.button(_("Resume"), icon=":material/resume:", key="resume_analysis"):
            try:
                resume(ctx, analysis)
            except CoreError as exc:
                shell.show_error(exc, _("Resume"))
    results = ctx.ws.scene_results(aid)
    if not results:
        st.info(_("This analysis has no saved results yet."))
        return
    threshold = ctx.threshold or float(analysis["threshold"] or 1.0)
    summary_table(results, threshold)
    buildings_ui.analysis_summary(ctx, aid)
    ok = [r for r in results if not r.error]
    for r in results:
        if r.error:
            st.error(f"{r.scene_name}: {r.error}", icon=":material/broken_image:")
    if not ok:
        return
    names = [r.scene_name for r in ok]
    if S.get(S.SHOWN_SCENE) not in names:
        S.put(S.SHOWN_SCENE, names[0])
    S.bind(S.W_SHOWN_SCENE, S.SHOWN_SCENE)
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    c1.selectbox(_("Image"), names, key=S.W_SHOWN_SCENE, on_change=S.keep, args=(S.SHOWN_SCENE, S.W_SHOWN_SCENE))
    single = [r for r in ok if r.change_path is None]  # a pair's findings come from its change heatmap
    saved = [float(r.meta.get("threshold", math.nan)) for r in single]
    moved = not all(abs(t - threshold) < 0.005 for t in saved)
    if single and moved and ctx.can_work and c2.button(
            _("Save findings at threshold {thr:.2f}").format(thr=threshold), icon=":material/save:",
            help=_("Extract the findings of every image of this analysis again at the sidebar threshold and save "
                   "them (reviews are kept).")):
        try:
            with st.spinner(_("Extracting findings…")):
                for r in single:
                    ctx.ws.save_scene_result(aid, refind_findings(r, threshold, analysis["model"]),
                                             input_name=r.scene_name)
            st.rerun()
        except CoreError as exc:
            shell.show_error(exc)
    shown = next(r for r in ok if r.scene_name == S.get(S.SHOWN_SCENE))
    detail(ctx, aid, shown, analysis["model"], threshold,
           str((analysis.get("options") or {}).get("event_type") or "other"))


ctx = shell.context()
st.title(_("Analyze"))
if ctx.case_id is None:
    st.info(_("Create or choose a case in the sidebar first."), icon=":material/info:")
    st.stop()
if ctx.can_work:
    inputs_section(ctx)
else:
    st.info(_("You have a viewer account: you see the results of your cases and download their reports; "
              "analysing needs an analyst account."), icon=":material/visibility:")
st.divider()
results_section(ctx)
