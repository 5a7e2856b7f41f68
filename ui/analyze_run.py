"""Analyze page, the run: the engine and run options, and an analysis run with a progress bar per image and per tile.

The lifecycle itself is :class:`core.analysis.run.AnalysisRun`; this module only draws its progress and records
the options the analyst chose (damage scale, event type, resampling, engine).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.analysis.guidance import EVENT_MODES, mode_advice
from core.analysis.run import AnalysisInput, AnalysisOptions, AnalysisRun
from core.detection.grading import SCALES
from core.engine import ray_address_from_env
from core.i18n import _
from core.types import SceneResult
from ui import footprints, i18n, shell, sidebar
from ui import state as S
from ui.markdown_text import plain


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
            id=aid, k=k + 1, n=n, name=plain(item.name)))
        tiles_bar.progress(0.0, text=_("{name}: reading").format(name=plain(item.name)))

    def on_tiles(done: int, total: int) -> None:
        tiles_bar.progress(min(done / max(total, 1), 1.0), text=_("{name}: tile {done} of {total}").format(
            name=plain(current[0]), done=done, total=total))

    def on_result(item: AnalysisInput, result: SceneResult) -> None:
        if result.error:
            shown.error(f"{plain(item.name)}: {plain(result.error_text())}", icon=":material/broken_image:")

    sidebar.refresh_case_caption(ctx.ws, ctx.case_id)  # the sidebar was drawn before this analysis existed
    try:
        run.run(on_input=on_input, on_tiles=on_tiles, on_result=on_result)
    finally:
        sidebar.refresh_case_caption(ctx.ws, ctx.case_id)
    if run.area is not None:  # two or more georeferenced scenes: one mosaic and one set of findings for the area
        f = run.area["findings"]
        if (run.area.get("mosaic") or {}).get("skipped"):
            st.toast(_("{merged} area findings ({joined} joined across scene seams). The scenes lie far apart, so no "
                       "mosaic image was made: the Map page shows each scene's heatmap.").format(
                           merged=f["merged"], joined=f["joined_across_seams"]), icon=":material/map:")
        else:
            st.toast(_("Area mosaic written; {merged} area findings ({joined} joined across scene seams). The Map "
                       "page shows the mosaic.").format(merged=f["merged"], joined=f["joined_across_seams"]),
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
                              footprints=tuple(footprints.staged_paths()), engine=engine,
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
                   .format(id=analysis["id"], name=plain(model.get("name", "?"))))
        return
    run_batch(ctx, AnalysisRun.resume(ctx.ws, analysis["id"], det))
    st.rerun()


def options(ctx: shell.Context, staged: list[dict[str, str]], col: Any) -> None:
    """The run's options under the staged list: damage scale and event type (in ``col``) with the event's advice,
    resampling to the model's scale, and the engine when a Ray cluster is configured."""
    S.bind(S.W_GRADE_SCALE, S.GRADE_SCALE)
    col.selectbox(_("Damage scale"), list(SCALES), key=S.W_GRADE_SCALE,
                  format_func=i18n.fixed(SCALES, lambda k: _(SCALES[k].name)),
                  on_change=S.keep, args=(S.GRADE_SCALE, S.W_GRADE_SCALE))
    S.bind(S.W_EVENT_TYPE, S.EVENT_TYPE)
    event = col.selectbox(_("Event type"), list(EVENT_MODES), key=S.W_EVENT_TYPE,
                          format_func=i18n.fixed(EVENT_MODES, lambda k: _(EVENT_MODES[k].label)),
                          on_change=S.keep, args=(S.EVENT_TYPE, S.W_EVENT_TYPE),
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
