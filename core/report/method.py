"""Section 4, method and limitations: how the findings were made (detector, thresholds, change detection and the
co-registration of each pre/post pair), what they cannot say, and the phase 2/3 fields. Also the threshold lines
of the cover, so that the cover and section 4 state the same thresholds in the same words."""

from __future__ import annotations

from typing import Any

from core.analysis.guidance import mode_advice
from core.change.texts import calibration_code, calibration_text
from core.change.texts import coregistration_text as describe_coregistration
from core.i18n import N_, _
from core.report._io import clean_text
from core.report.context import ReportContext
from core.report.extraction import ANOMALY, CHANGE, KIND_UNITS, change_meta, coregistration_meta
from core.report.layout import GREY, ReportPDF
from core.report.summary import ReportSummary, SceneStats
from core.report.texts import NOT_VALIDATED, fmt, title

CHANGE_EXPLAINED = N_(
    "Where a pre-event image of the same place was given, the findings come from a change heatmap, not from the "
    "post-event image alone: a one-class detector on the post-event image alone also marks whatever was always "
    "unusual there (a car park, a quarry), while damage is what differs between before and after. The pre-event "
    "image is first put on the post-event image's pixel grid (co-registration, below). Both images then pass "
    "through the first layers of the detector's network, which describe colour and fine texture around every "
    "pixel. The change score of a pixel is how far the post-event description lies from the pre-event one, "
    "measured against how varied the pre-event scene itself is (so that a quiet rural scene and a busy suburb "
    "share one scale), smoothed over the detector's receptive field and calibrated against what no change looks "
    "like (images compared with re-lit, slightly shifted copies of themselves): 0 is the median no-change pixel, "
    "1 the 99th percentile of no-change pixels. Only pixels that both images cover are scored; nodata borders "
    "are filled from the other image first so that they do not read as change. Regions of the change heatmap "
    "above the change threshold are outlined, measured and graded as described above for anomaly regions, in "
    "change units. The post-event image's own anomaly heatmap is kept for reference only (shown beside the change "
    "heatmap in section 3); none of its regions is counted.")


#: Threshold methods stored in English with analyses (core/report/context.py, core/cli/analyze.py), shown translated.
STORED_METHODS = (N_("model default (calibrated)"), N_("set by the analyst"),
                  N_("model calibration default (99.9th percentile of held-out normal pixels)"))


def coregistration_text(coreg: dict[str, Any]) -> str:
    """:func:`core.change.texts.coregistration_text`, cleaned for the PDF's fonts."""
    return clean_text(describe_coregistration(coreg), 800)


def pre_date(st: SceneStats) -> str | None:
    """Capture date-time of a scene's pre-event image, when recorded (scene meta, else its findings)."""
    sr = st.result
    d = sr.meta.get("pre_capture_time") if isinstance(sr.meta, dict) else None
    if not d:
        d = next((f.pre_source_date for f in sr.findings if f.pre_source_date), None)
    return clean_text(d, 30) or None


def threshold_rows(ctx: ReportContext, s: ReportSummary) -> list[tuple[str, str]]:
    """Cover lines stating the finding threshold(s): one per kind of heatmap present (anomaly, change), with the
    units and how each was set; per scene where scenes of one kind differ."""
    rows = []
    for kind in s.kinds:
        scenes = s.scenes_of(kind)
        ts = s.thresholds(kind)
        key = _("Finding threshold") if len(s.kinds) == 1 else \
            (_("Finding threshold, single images") if kind == ANOMALY else _("Finding threshold, pre/post pairs"))
        units = _(KIND_UNITS[kind])
        if not ts:
            value = _("not recorded")
        elif len(ts) == 1:
            methods = sorted({_(st.basis.method) for _k, st in scenes if st.basis.threshold is not None})
            value = f"{fmt(ts[0], 3)} {units} — {'; '.join(methods)}"
        else:
            value = _("differs per scene: ") + ", ".join(f"S{k} {fmt(st.basis.threshold, 3)}" for k, st in scenes
                                                        if st.basis.threshold is not None) + f" ({units})"
        if kind == CHANGE:
            value += _(". Findings are cut from the change heatmap of each pre/post pair (section 4)")
        rows.append((key, value))
    return rows


def _anomaly_paragraph(ctx: ReportContext, s: ReportSummary, only: bool) -> str:
    scenes = s.scenes_of(ANOMALY)
    ts = s.thresholds(ANOMALY)
    if len(ts) == 1:
        methods = "; ".join(sorted({_(st.basis.method) for _k, st in scenes if st.basis.threshold is not None}))
        thr = _("Threshold: {thr} calibrated anomaly units; how it was set: {methods}.").format(
            thr=fmt(ts[0], 3), methods=methods)
    elif ts:
        thr = _("Thresholds differ per image: ") + "; ".join(
            f"S{k} {fmt(st.basis.threshold, 3)} ({_(st.basis.method)})" for k, st in scenes
            if st.basis.threshold is not None) + "."
    else:
        thr = _("Threshold: not recorded.")
    who = "" if only else _("Single images (no pre-event image): findings come from the anomaly heatmap.") + " "
    return who + _("Anomaly scores are calibrated against the model's own held-out normal images: 0 is the median "
                   "normal pixel, 1 the 99th percentile of normal pixels. {thr} Regions above it are outlined, "
                   "measured (geodesic area) and graded from their score relative to the threshold; confidence is "
                   "the margin over the threshold mapped to 0..1.").format(thr=thr)


def _pair_line(k: int, st: SceneStats) -> str:
    sr = st.result
    unknown = _("date unknown")
    when = clean_text(sr.capture_time, 30) or unknown
    pre = clean_text(sr.pre_scene_name, 100) or _("not recorded")
    line = _("S{k} {name} (captured {when}) against pre-event image {pre} (captured {pre_when}). {coreg} Change "
             "threshold {thr}: {method}.").format(
                 k=k, name=clean_text(sr.scene_name, 100), when=when, pre=pre, pre_when=pre_date(st) or unknown,
                 coreg=coregistration_text(coregistration_meta(sr)), thr=fmt(st.basis.threshold, 3),
                 method=_(st.basis.method))
    n_post = sr.meta.get("post_only_findings") if isinstance(sr.meta, dict) else None
    if isinstance(n_post, int) and not isinstance(n_post, bool):
        line += " " + _("The post-event image alone (anomaly threshold {thr}) gave {n} region(s); they are not "
                        "counted.").format(thr=fmt(st.anomaly_threshold, 3), n=n_post)
    return line


def _change_section(pdf: ReportPDF, s: ReportSummary) -> None:
    pdf.h2(_("Change detection (pre/post pairs)"))
    pdf.para(_(CHANGE_EXPLAINED))
    scenes = s.scenes_of(CHANGE)
    sources = sorted({clean_text(calibration_text(change_meta(st.result).get("calibration")), 300)
                      for _k, st in scenes} - {""})
    ts = s.thresholds(CHANGE)
    thr = (_("Change threshold: {thr} calibrated change units.").format(thr=fmt(ts[0], 3)) if len(ts) == 1 else
           _("Change thresholds differ per pair (below).") if ts else _("Change threshold: not recorded."))
    pdf.para(thr + (" " + _("Change calibration: {sources}.").format(sources="; ".join(sources)) if sources else ""))
    pdf.para(_("Pairs compared, pre-event images and their co-registration (shift dx/dy: where the post-event "
               "content lies in the pre-event image, in post-event pixels and metres):"), size=8.5)
    pdf.bullets([_pair_line(k, st) for k, st in scenes], size=8.5)


def limitations(s: ReportSummary) -> list[str]:
    """The limitation bullets, with the change-detection ones when any scene is a pre/post pair."""
    scores = _("anomaly or change scores") if len(s.kinds) > 1 else \
        (_("change scores") if s.kinds == [CHANGE] else _("anomaly scores"))
    items = [
        _("Findings not confirmed by an analyst are {not_validated}.").format(not_validated=_(NOT_VALIDATED)),
        _("Grades are derived from {scores}, not from observed structural damage; a confirmed grade reflects the "
          "analyst's visual review of the imagery only.").format(scores=scores),
        _("Areas measure the region of the heatmap above its threshold, not building footprints; neighbouring "
          "damage can merge."),
        _("Locations from drone GPS footprints or fitted georeferencing are approximate (marked in the CSV)."),
        _("Clouds, shadows, smoke, new construction and seasonal change can raise scores without damage; damage "
          "hidden under intact roofs or outside the imagery is not seen."),
        _("Images without georeferencing give findings without coordinates or areas."),
    ]
    if CHANGE in s.kinds:
        items += [
            _("Change findings mark what differs between the pre- and post-event images, not damage as such: "
              "season, sun angle and shadows, moved vehicles, construction or clearing since the pre-event image "
              "and a different viewing angle (parallax of tall objects) also raise the change score; damage "
              "already present in the pre-event image is not seen."),
            _("A residual misalignment of the two images makes edges read as change. The residual shift is "
              "measured by phase correlation and applied only as stated per pair above; a shift cannot correct "
              "parallax."),
        ]
        if any(calibration_code(change_meta(st.result).get("calibration")) == "generic"
               for _k, st in s.scenes_of(CHANGE)):
            items.append(_("The change scores use a generic no-change calibration (the model carries none of its "
                           "own), so the change threshold may sit higher or lower on this imagery than intended."))
    return items


def method(pdf: ReportPDF, ctx: ReportContext, s: ReportSummary) -> None:
    """How the findings were made, what they cannot say, and the phase 2/3 fields."""
    pdf.h1(title("method"))
    pdf.h2(_("Detector and threshold"))
    pdf.para(_("Detector: {name} ({arch}), version {version}, checkpoint SHA-256 {sha}. It is a one-class anomaly "
               "detector ({family}) made from normal imagery only; it marks what departs from normal scenes, not a "
               "specific damage type.").format(
                   name=ctx.model("name"), arch=ctx.model("arch"), version=ctx.model("version"),
                   sha=ctx.model("sha256"), family=_(str(ctx.model("family", "FCDD / HSC")))))
    advice, _warn = mode_advice(ctx.event_type, has_pre=CHANGE in s.kinds)
    pdf.para(_("Event type and mode: {advice}").format(advice=advice))
    if ANOMALY in s.kinds:
        pdf.para(_anomaly_paragraph(ctx, s, only=s.kinds == [ANOMALY]))
    if CHANGE in s.kinds:
        _change_section(pdf, s)
    if ctx.buildings:
        pdf.h2(_("Buildings"))
        if ctx.building_calibration:
            from core.buildings import Calibration

            cal = Calibration.from_dict(ctx.building_calibration)
            pdf.para(_("Each building footprint was rasterised on the heatmaps' grid and summarised (mean, 90th "
                       "percentile, share above the threshold, a 3 m ring around it). The grades were then "
                       "calibrated on analyst labels: {summary}. The model is a logistic regression, "
                       "monotone in the scores and regularised towards a prior read from all buildings' scores (a "
                       "two-component mixture: damage begins where the upper component takes over); labelled "
                       "buildings keep their label.").format(summary=cal.summary()))
        else:
            pdf.para(_("Each building footprint was rasterised on the heatmaps' grid and summarised (mean, 90th "
                       "percentile, a 3 m ring around it) on the primary map (the change heatmap when there is a "
                       "pre-event image). No analyst labels: the grades come from a prior read from all buildings' "
                       "scores (a two-component mixture: damage begins where the upper component takes over, and "
                       "never below the model's 99th percentile of normal pixels, so buildings the model does not "
                       "find unusual are not called damaged); no building is graded destroyed without grade "
                       "labels. Label buildings and calibrate before relying on the counts."))
    pdf.h2(_("Limitations"))
    pdf.bullets(limitations(s), size=8.5)
    for key, heading in (("phase2_notes", _("Phase 2 — functional damage assessment")),
                         ("phase3_notes", _("Phase 3 — target-system assessment"))):
        pdf.h2(heading)
        text = getattr(ctx, key)
        if text.strip():
            pdf.para(text)
        else:
            pdf.para(_("Not assessed by this tool. Analyst notes:"), size=8, colour=GREY)
            pdf.blank_box(6)
