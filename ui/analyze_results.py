"""Analyze page, the results: the chosen analysis read back from the workspace, one row per image, and the shown
image's maps, scores, histogram and location.

Everything shown comes from the workspace (an analysis record per run), so a refresh or a page change shows it
again without recomputing; derived images are cached by file path + modification time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from core.analysis.guidance import mode_advice
from core.detection.findings import extract_findings
from core.detection.grading import SCALES
from core.detection.heatmap import PREVIEW_MAX, blend, read_heatmap
from core.detection.pipeline import MAX_FINDINGS, refind_findings
from core.detection.verdict import (
    IMAGE_SCORE_NOTE,
    VERDICT_RULE,
    Verdict,
    broad_anomaly_note,
    confidence_note,
    judge,
    same_threshold,
    verdict_of,
)
from core.errors import CoreError
from core.i18n import _, say
from core.types import SceneResult
from ui import analyze_run, cells, compare, i18n, images, placement, shell
from ui import buildings as buildings_ui
from ui import state as S
from ui.markdown_text import plain


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
                     name=plain(r.scene_name)), icon=":material/hide_image:")


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
                     _("error"): r.error_text(), _("rule"): v.rule})
    import pandas as pd  # lazy: a workspace without analyses draws no table

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
        st.error(f"{plain(r.scene_name)}: {plain(r.error_text())}", icon=":material/broken_image:")
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
    # in the language in use, not stored; a pair's findings come from its change map, so not for a pair
    broad = None if r.change_path is not None else broad_anomaly_note(r.meta.get("share_above_threshold"))
    for w in [*r.meta.get("warnings", []), *([broad] if broad else [])]:
        st.caption(f":material/warning: {plain(say(w))}")  # stored as language-free records, put in words here
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
        st.warning(_("The original image cannot be shown: {error}").format(error=plain(exc)))
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
                method=_(r.georef.method), crs=plain(r.georef.crs), w=w, s=s, e=e, n=n))


def section(ctx: shell.Context) -> None:
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
                analyze_run.resume(ctx, analysis)
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
            st.error(f"{plain(r.scene_name)}: {plain(r.error_text())}", icon=":material/broken_image:")
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


