"""Which mode suits which event: the advice, its recording with the analysis, and its place in the report."""

from __future__ import annotations

import pytest

from core.analysis.guidance import EVENT_MODES, event_mode, mode_advice
from core.analysis.run import AnalysisOptions
from core.errors import InputError


def test_events_whose_damage_looks_like_bare_ground_need_a_pre_image() -> None:
    for key in ("wildfire", "tsunami", "earthquake"):
        text, warn = mode_advice(key, has_pre=False)
        assert warn and "pre-event" in text and EVENT_MODES[key].label in text
        text, warn = mode_advice(key, has_pre=True)
        assert not warn and "change map" in text
    text, warn = mode_advice("flood", has_pre=False)
    assert not warn and "Harvey" in text  # the measured figure travels with the advice
    assert event_mode(None).key == event_mode("no such event").key == "other"
    assert mode_advice("other", has_pre=False)[1]  # unknown event: not a damage map on its own


def test_the_event_type_is_an_option_of_the_analysis() -> None:
    opts = AnalysisOptions(event_type="wildfire")
    opts.check()
    assert opts.record()["event_type"] == "wildfire"
    assert AnalysisOptions.from_record(None, opts.record()).event_type == "wildfire"
    assert AnalysisOptions.from_record(None, {}).event_type == "other"  # analyses made before keep a default
    with pytest.raises(InputError, match="unknown event type"):
        AnalysisOptions(event_type="volcano").check()
