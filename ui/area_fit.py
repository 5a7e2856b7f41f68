"""Analyze page: fit a normal model (feature matching) to the staged pre-event imagery of the area, in the background.

The fit is an ordinary training job (``core.learn.jobs``, arch ``patchcore-vgg16``): its progress is shown here while it
runs, the model is registered in the workspace when it ends, and "Use it" makes it the sidebar's model.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.errors import CoreError
from core.i18n import _, get_lang, ngettext, use
from core.store.analyses import case_display_name
from core.store.jobs import ACTIVE
from ui import shell
from ui import state as S
from ui.markdown_text import plain

#: The architecture an area fit builds (feature matching on the offline pretrained VGG16 trunk).
AREA_ARCH = "patchcore-vgg16"
POLL_S = 2.0


def start_fit(ctx: shell.Context, paths: list[str], name: str) -> int:
    """Start fitting ``AREA_ARCH`` to ``paths`` as a background job of the workspace; returns the job id."""
    from core.learn import jobs  # torch: only when a fit starts (the page draws before torch is loaded)
    from core.learn.training import TrainConfig

    cfg = TrainConfig(arch=AREA_ARCH, normal=paths, pretrained="auto", input_size=128, name=name)
    with use(get_lang()):  # the job's progress messages in the language of whoever started it
        return jobs.runner(ctx.ws.root).start_training(cfg)


def _progress(ctx: shell.Context, job_id: int, polling: bool) -> None:
    job = ctx.ws.get_job(job_id)
    if job is None:
        return
    st.progress(float(job["progress"] or 0.0), text=_("Area model, job #{id}: {message}").format(
        id=job_id, message=plain(job["message"] or _(str(job["status"])))))
    if job["status"] in ACTIVE:
        return
    if polling:
        st.rerun()  # it ended: redraw the page (the model is in the sidebar's list now) and stop polling
    if job["status"] == "done":
        res = job.get("result") or {}
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.success(_("Model #{id} “{name}” is fitted to this area and registered.").format(
            id=res.get("model_id"), name=plain(res.get("name"))), icon=":material/check_circle:")
        if c2.button(_("Use it"), key=f"use_area_model_{job_id}", icon=":material/swap_horiz:"):
            S.put(S.MODEL_PATH, str(res.get("path", "")))
            S.put(S.AREA_FIT_JOB, None)
            st.rerun()
    else:
        st.error(_("Fitting the area model did not finish ({status}): {message}").format(
            status=_(str(job["status"])), message=plain(job["message"] or job.get("error"))))


def section(ctx: shell.Context) -> None:
    """The "fit a normal model to this area" control and its job's progress (drawn on every run, at one place)."""
    box = st.container()
    pres = S.get(S.STAGED_PRE)
    job_id = S.get(S.AREA_FIT_JOB)
    if not pres and job_id is None:
        return
    with box:
        if pres and ctx.is_admin:
            label = ngettext("Fit a normal model to this pre-event image",
                             "Fit a normal model to these {n} pre-event images", len(pres)).format(n=len(pres))
            if st.button(label, icon=":material/model_training:", key="fit_area_model",
                         help=_("Feature matching (PatchCore) on the pretrained HED VGG16 trunk: the pre-event "
                                "imagery becomes the model of 'normal' for this area. Useful when pre-event images "
                                "exist but are not co-registered to the post-event ones. Runs in the background "
                                "(minutes on a CPU) and is saved in the workspace's models.")):
                try:
                    name = ngettext("area: {case} ({n} pre-event image)", "area: {case} ({n} pre-event images)",
                                    len(pres)).format(case=case_name(ctx), n=len(pres))
                    S.put(S.AREA_FIT_JOB, start_fit(ctx, [str(Path(p["path"])) for p in pres], name))
                except CoreError as exc:
                    shell.show_error(exc, _("Fit a normal model"))
        elif pres:
            st.caption(_("An admin can fit a normal model to these pre-event images (models are for admins)."))
        job_id = S.get(S.AREA_FIT_JOB)
        if job_id is not None:
            job = ctx.ws.get_job(job_id)
            running = job is not None and job["status"] in ACTIVE
            st.fragment(run_every=POLL_S if running else None)(_progress)(ctx, job_id, running)


def case_name(ctx: shell.Context) -> str:
    """The name of the case the page works in ("case" when none is chosen)."""
    case = next((c for c in ctx.ws.list_cases() if c["id"] == ctx.case_id), None)
    return case_display_name(case["name"]) if case else _("case")
