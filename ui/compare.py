"""The pre/post part of the Analyze page: pre-event inputs, their pairing with the post-event images, and the
before/after view of a paired result.

Pre-event images are references: they are never analysed on their own. Each staged post-event image gets the pre
image :func:`core.change.pairing.pair_report` picks (footprint overlap in any CRS, else file names); the analyst can
change it per post image. A post image with a pre goes through :func:`core.change.scene.analyze_pair` (``pre_path`` in
its input). ``streamlit-image-comparison`` is not used for the before/after view: it loads its script from a CDN
(cdn.knightlab.com), which an offline analyst does not have, so the view is an app-rendered wipe or blend driven
by an ``st.slider``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from rasterio.windows import Window

from core.change.coreg import PreOnGrid
from core.change.pairing import pair_report
from core.change.texts import coregistration_text
from core.detection.pipeline import refind_findings
from core.errors import CoreError
from core.file_names import clean_name, unique_name
from core.i18n import _, get_lang
from core.imagery.reader import open_scene
from core.report.rasters import overview_shape
from core.types import SceneResult
from ui import i18n, images, shell, uploads
from ui import state as S
from ui.markdown_text import in_code, plain

NONE = ""  #: selectbox value "no pre-event image"
SPLIT_COLOUR = np.array([245, 208, 0], np.uint8)  #: the wipe's dividing line (the threshold colour of the page)


# -- inputs ------------------------------------------------------------------------------------------------------
#: Files the pre-event uploader takes (xBD label .json beside their .png).
PRE_TYPES = ["jpg", "jpeg", "png", "tif", "tiff", "json"]


def stage_pre(name: str, path: Path, origin: str) -> None:
    """Add a pre-event image to the references (names unique among the pre images)."""
    pres = S.get(S.STAGED_PRE)
    name = clean_name(name, default="image")
    pres.append({"name": unique_name(name, [p["name"] for p in pres]), "path": str(path), "origin": origin})


def take_pre_uploads(ctx: shell.Context, files: list[Any]) -> None:
    """Write new pre-event uploads to the workspace and stage them as references."""
    uploads.save_uploads(ctx, files, lambda name, path: stage_pre(name, path, "upload"), types=PRE_TYPES)


@st.cache_data(max_entries=200, show_spinner=False)
def auto_pairs(posts: tuple[str, ...], pres: tuple[str, ...], mtimes: tuple[float, ...],
               lang: str) -> list[dict[str, Any]]:
    """:func:`core.change.scene.pair_report` of staged paths, as dicts (cached: each file is opened once per list;
    per language, since the report's notes are written in the language in use)."""
    del mtimes, lang  # cache key only
    return [r.to_dict() for r in pair_report(list(posts), list(pres))]


def pairing(staged: list[dict[str, Any]], pres: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per staged post image: ``{"post", "pre" (name or ""), "rule", "overlap", "note"}``; automatic
    pairs unless the analyst chose another pre (or none) for that post image."""
    if not staged:
        return []
    if not pres:
        return [{"post": s["name"], "pre": NONE, "rule": None, "overlap": None, "note": ""} for s in staged]
    posts, refs = tuple(s["path"] for s in staged), tuple(p["path"] for p in pres)
    with st.spinner(_("Pairing pre- and post-event images…")):
        report = auto_pairs(posts, refs, tuple(images.mtime(p) for p in posts + refs), get_lang())
    name_of = {p["path"]: p["name"] for p in pres}
    chosen: dict[str, str] = S.get(S.PAIRS)
    rows = []
    for s, r in zip(staged, report, strict=True):
        auto = name_of.get(r["pre"] or "", NONE)
        row = {"post": s["name"], "pre": auto, "rule": r["rule"], "overlap": r["overlap"], "note": r["note"]}
        if s["name"] in chosen and chosen[s["name"]] in (NONE, *name_of.values()) and chosen[s["name"]] != auto:
            pick = chosen[s["name"]]
            cand = next((c for c in r["candidates"] if name_of.get(c["pre"]) == pick), None)
            row.update(pre=pick, rule="manual" if pick else None,
                       overlap=cand["overlap"] if cand else None,
                       note=_("paired by hand") if pick else _("no pre-event image (chosen by hand)"))
        rows.append(row)
    return rows


def with_pre_paths(staged: list[dict[str, Any]], pres: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The staged post images with ``pre_path`` set where the pairing gives them a pre image."""
    path_of = {p["name"]: p["path"] for p in pres}
    pre_of = {row["post"]: row["pre"] for row in pairing(staged, pres)}
    return [dict(s, pre_path=path_of[pre_of[s["name"]]]) if pre_of.get(s["name"]) else dict(s) for s in staged]


def _keep_pair(post_name: str, widget_key: str) -> None:
    S.get(S.PAIRS)[post_name] = st.session_state[widget_key]


def pre_uploader(ctx: shell.Context) -> list[Any]:
    """The "pre-event images" uploader (returns the uploads of this run)."""
    # no type=: each file's type is checked on its own (uploads.save_uploads), one bad name never loses the batch
    return st.file_uploader(
        _("Pre-event images (optional): the same place before the event"),
        accept_multiple_files=True, key=S.pre_uploader_key(),
        help=_("Not analysed on their own: each post-event image is compared with the pre-event image that covers "
               "it (footprint overlap, else matching names such as 0_pre.tif / 0_post.tif).")) or []


def pairing_section(staged: list[dict[str, Any]]) -> None:
    """The pre-event list, the pairing table and a pre-event choice per post image."""
    pres = S.get(S.STAGED_PRE)
    if not pres:
        return
    st.caption(_(":material/compare: Pre-event images (references, not analysed alone): ")
               + ", ".join(p["name"] for p in pres))
    if not staged:
        st.info(_("Add the post-event images to compare with these pre-event images."), icon=":material/info:")
        if st.button(_("Clear pre-event images"), icon=":material/clear_all:"):
            S.put(S.STAGED_PRE, [])
            S.put(S.PAIRS, {})
            st.rerun()
        return
    rows = pairing(staged, pres)
    import pandas as pd  # lazy: the page draws before pandas is needed (first page in <= 3 s)

    st.dataframe(pd.DataFrame([{_("post-event image"): r["post"], _("pre-event image"): r["pre"] or _("— none —"),
                                _("rule"): _(r["rule"]) if r["rule"] else "", "overlap": None if r["overlap"] is None
                                else round(100 * r["overlap"], 1), _("note"): _(r["note"])} for r in rows]),
                 hide_index=True, width="stretch",
                 column_config={"overlap": st.column_config.NumberColumn(_("overlap %"), format="%.1f %%",
                                                                         help=_("share of the post footprint "
                                                                                "the pre image covers"))})
    options = [NONE] + [p["name"] for p in pres]
    with st.expander(_("Change a pairing")):
        for r in rows:
            key = S.pair_key(r["post"])
            st.session_state[key] = r["pre"]
            st.selectbox(_("Pre-event image for {name}").format(name=plain(r["post"])), options, key=key,
                         on_change=_keep_pair, args=(r["post"], key),
                         format_func=i18n.fixed(options, lambda v: v or _("none (analyse the post image alone)")))


# -- results -----------------------------------------------------------------------------------------------------
@st.cache_data(max_entries=100, show_spinner=False)
def pre_on_post(post_path: str, pre_path: str, post_mtime: float, pre_mtime: float, shift: tuple[float, float],
                max_side: int = images.PREVIEW_SIDE) -> np.ndarray:
    """The pre image on the post image's preview grid (the size of :func:`ui.images.source_preview`), with the
    residual shift the analysis applied (post pixels); uncovered pixels black."""
    del post_mtime, pre_mtime  # cache key only
    post, pre = open_scene(post_path), open_scene(pre_path)
    try:
        oh, ow = overview_shape(post.width, post.height, max_side)
        grid = PreOnGrid(post, pre, oh, ow, shift=(shift[0] * ow / post.width, shift[1] * oh / post.height))
        rgb, valid = grid.read(Window(0, 0, ow, oh))
    finally:
        pre.close()
        post.close()
    rgb = rgb.copy()
    rgb[~valid] = 0
    return rgb


def compose(pre: np.ndarray, post: np.ndarray, position: int, mode: str) -> np.ndarray:
    """Before/after image: ``wipe`` shows the pre image left of ``position`` % of the width and the post image
    right of it (a yellow line between); ``blend`` mixes them, 0 = all pre, 100 = all post."""
    if pre.shape != post.shape:
        raise ValueError(f"pre {pre.shape} and post {post.shape} previews differ in size")
    if mode == "blend":
        a = float(np.clip(position, 0, 100)) / 100.0
        return (pre.astype(np.float32) * (1 - a) + post.astype(np.float32) * a).round().astype(np.uint8)
    w = post.shape[1]
    x = int(round(w * float(np.clip(position, 0, 100)) / 100.0))
    out = post.copy()
    out[:, :x] = pre[:, :x]
    lo, hi = max(0, x - 1), min(w, x + 1)
    if hi > lo:
        out[:, lo:hi] = SPLIT_COLOUR
    return out


def before_after(r: SceneResult) -> None:
    """Before/after view of a paired result: a wipe/blend slider, the change heatmap beside it, the shift."""
    from core.mapping.webmap import change_threshold  # folium: only when a pair is shown

    st.markdown(_("**Before / after** — pre-event `{pre}` on the post-event grid vs `{post}`").format(
        pre=in_code(r.pre_scene_name), post=in_code(r.scene_name)))
    coreg = r.meta.get("coregistration") or {}
    thr = change_threshold(r)
    pre_path = str(r.meta.get("pre_source") or "")
    try:
        post = images.source_preview(str(r.source_path), images.mtime(r.source_path))
        shift = tuple(coreg.get("shift_px") or (0.0, 0.0)) if coreg.get("shift_applied") else (0.0, 0.0)
        with st.spinner(_("Putting the pre-event image on the post grid…")):
            pre = pre_on_post(str(r.source_path), pre_path, images.mtime(r.source_path), images.mtime(pre_path),
                              (float(shift[0]), float(shift[1])))
    except CoreError as exc:
        post = pre = None
        st.warning(_("The before/after view cannot be drawn: {error}").format(error=plain(exc)))
    c1, c2 = st.columns(2)
    with c1:
        if pre is not None and post is not None:
            S.bind(S.W_COMPARE_MODE, S.COMPARE_MODE)
            mode = st.segmented_control(_("Compare by"), ["wipe", "blend"], key=S.W_COMPARE_MODE,
                                        format_func=i18n.fixed(["wipe", "blend"], _), on_change=S.keep,
                                        args=(S.COMPARE_MODE, S.W_COMPARE_MODE)) or "wipe"
            pos = st.slider(_("Before ◀ ▶ After"), 0, 100, 50, key=S.W_COMPARE_POS,
                            help=_("wipe: pre-event left of the line, post-event right of it; blend: 0 = pre, "
                                   "100 = post"))
            st.image(compose(pre, post, pos, mode), width="stretch",
                     caption=_("before/after ({mode}): {pre} | {post}").format(mode=_(mode), pre=r.pre_scene_name,
                                                                               post=r.scene_name))
    with c2:
        if r.change_path is not None and Path(r.change_path).is_file():
            cp = str(r.change_path)
            st.image(images.heat_panel(cp, images.mtime(cp), thr), width="stretch",
                     caption=_("change heatmap: grey below {thr:.2f}, colour above").format(thr=thr))
        else:
            st.warning(_("The change heatmap file is missing from the workspace."))
    n_post = r.meta.get("post_only_findings")
    st.caption(f":material/compare_arrows: {plain(coregistration_text(coreg))} "
               + (_("Findings come from the change heatmap (threshold {thr:.2f}); the post image alone gave {n}.")
                  .format(thr=thr, n=n_post) if n_post is not None else
                  _("Findings come from the change heatmap (threshold {thr:.2f}).").format(thr=thr)))


def change_threshold_form(ctx: shell.Context, aid: int, r: SceneResult, model: dict[str, Any]) -> None:
    """Cut the pair's findings from its change heatmap again at another threshold, and save them (reviews kept)."""
    from core.mapping.webmap import change_threshold  # folium: only when a pair is shown

    saved = change_threshold(r)
    with st.form(f"change_thr_{aid}_{r.scene_name}", border=False):
        c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
        value = c1.number_input(_("Change threshold"), 0.0, 1000.0, round(saved, 2), step=0.1, format="%.2f",
                                help=_("In calibrated change units: 1 = the 99th percentile of the change between "
                                       "normal pre/post pairs. Higher: fewer, stronger changes."))
        if c2.form_submit_button(_("Save change findings at this threshold"), icon=":material/save:"):
            if abs(value - saved) < 0.005:
                st.info(_("The findings were already cut at {thr:.2f}.").format(thr=saved))
                return
            try:
                with st.spinner(_("Extracting change findings…")):
                    post_thr = float(r.meta.get("threshold") or ctx.threshold or 1.0)
                    ctx.ws.save_scene_result(aid, refind_findings(r, post_thr, model, change_threshold=value),
                                             input_name=r.scene_name)
                st.rerun()
            except CoreError as exc:
                shell.show_error(exc)
