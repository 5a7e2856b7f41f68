"""Which mode suits which event: when a post-event image alone can be trusted, and when a pre-event image is needed.

A one-class map marks what is *unusual* in an image. That is damage where damage looks unlike normal ground (flood
water, debris fields, tarps), and it is not where a destroyed building becomes ash, mud or bare ground that looks
like any cleared lot (wildfire, tsunami) or where rubble keeps the colours and textures of intact roofs (earthquake).
Comparing co-registered pre- and post-event imagery answers all of them. The figures quoted are this project's own
measurements (``python -m benchmarks.bench_quality``); events without imagery in the project's data say so.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.i18n import N_, _


@dataclass(frozen=True)
class EventMode:
    """What one kind of event needs."""

    key: str
    label: str  #: English; shown with core.i18n._ (marked N_ below)
    post_only: str  #: "usable" or "unreliable"
    advice: str  #: one or two sentences for the analyst
    evidence: str  #: where the advice comes from ({harvey_post}, ... filled in by :func:`evidence_text`)


#: Building AUROC on xBD Harvey (hurricane flooding) from ``bench_quality``: post image alone with the default
#: feature-matching model (its bank holds the area's pre images), and the pre/post change map.
HARVEY_POST_ONLY = "0.90"
HARVEY_CHANGE = "0.99"
#: Joplin tornado chips, pre vs post patch AUROC (the chips are held out of every bundled model): the default
#: feature-matching model and Deeper FCDD.
JOPLIN_CHIPS = "0.97"
JOPLIN_CHIPS_FCDD = "1.00"

EVENT_MODES: dict[str, EventMode] = {m.key: m for m in (
    EventMode("flood", N_("Flood / hurricane"), "usable",
              N_("Flood water and debris look unlike normal ground, so the post-event map alone ranks flooded "
                 "buildings; a pre-event image of the same place ranks them better still."),
              N_("measured: xBD Harvey building AUROC {harvey_post} post-only with the default feature-matching "
                 "model, whose normal imagery includes the area's pre-event images (0.30 with the fast FCDD "
                 "ResNet-18), {harvey_change} with the pre/post change map")),
    EventMode("wind", N_("Tornado / windstorm"), "usable",
              N_("Debris fields, stripped roofs and tarps are unusual texture: the post-event map alone finds them. "
                 "A pre-event image separates new damage from what was always rough (scrap yards, building sites)."),
              N_("measured: Joplin tornado chips pre vs post patch AUROC {joplin} with the default model, "
                 "{joplin_fcdd} with Deeper FCDD")),
    EventMode("wildfire", N_("Wildfire"), "unreliable",
              N_("A burned house becomes ash and bare ground, which looks like any cleared lot: the post-event map "
                 "alone misses it. Add a pre-event image of the same place (change mode), or fit a normal model to "
                 "pre-event imagery of the area."),
              N_("not measured on this project's data (no wildfire imagery); feature matching on post images alone "
                 "failed on wildfire scenes in the team's experiment")),
    EventMode("tsunami", N_("Tsunami / storm surge"), "unreliable",
              N_("Wiped-out blocks become mud and bare ground that look like ordinary open land: use a pre-event "
                 "image of the same place (change mode)."),
              N_("not measured on this project's data (no tsunami imagery); post-only feature matching failed on "
                 "tsunami scenes in the team's experiment")),
    EventMode("earthquake", N_("Earthquake"), "unreliable",
              N_("Collapsed buildings keep the colours and textures of intact roofs from above; the post-event map "
                 "alone ranks them poorly. Use a pre-event image (change mode)."),
              N_("not measured on this project's data (no earthquake imagery)")),
    EventMode("conflict", N_("Conflict / explosion"), "usable",
              N_("Craters, scorch marks and rubble are unusual texture, but so are building sites and fields after "
                 "harvest: confirm with a pre-event image wherever one exists."),
              N_("not measured on this project's data (no conflict imagery)")),
    EventMode("other", N_("Other / not known"), "unreliable",
              N_("Without knowing the event, treat the post-event map as a pointer to what is unusual, not as a damage "
                 "map; a pre-event image of the same place makes it one."),
              N_("general")),
)}


def event_mode(key: str | None) -> EventMode:
    """The mode of event ``key`` (unknown or empty: "other")."""
    return EVENT_MODES.get((key or "other").strip().lower(), EVENT_MODES["other"])


def evidence_text(m: EventMode) -> str:
    """Where the advice of ``m`` comes from, in the language in use, with the measured figures filled in."""
    return _(m.evidence).format(harvey_post=HARVEY_POST_ONLY, harvey_change=HARVEY_CHANGE, joplin=JOPLIN_CHIPS,
                                joplin_fcdd=JOPLIN_CHIPS_FCDD)


def mode_advice(key: str | None, has_pre: bool) -> tuple[str, bool]:
    """(sentence for the analyst, whether it is a warning) for an event and whether a pre-event image was given,
    in the language in use (:mod:`core.i18n`)."""
    m = event_mode(key)
    label, evidence = _(m.label), evidence_text(m)
    if has_pre:
        return (_("{label}: compared with a pre-event image, the change map is the damage map here. "
                  "({evidence})").format(label=label, evidence=evidence), False)
    advice = f"{label}: {_(m.advice)} ({evidence})"
    return advice, m.post_only == "unreliable"
