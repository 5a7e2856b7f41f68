"""What a pre/post result records about itself, in words, composed when shown.

A result stores language-free data only: the co-registration's grid ``method`` code, the residual shift, and a
``shift_note`` record ``{"code": ..., parameters}`` (:func:`shift_note`); the change calibration's ``calibration``
source code (:data:`CALIBRATION_SOURCES`). The sentences are composed here, in the language in use
(:mod:`core.i18n`), by every face that shows them (Analyze page, CLI, PDF report), so a record written in an
English session reads in Korean in a Korean one and the other way round.

Records written before this (English sentences in ``description`` / ``note`` / ``calibration``) are still read:
a sentence that was one of the fixed texts is shown translated, any other one is shown as it was stored.
"""

from __future__ import annotations

import math
from typing import Any

from core.i18n import N_, _

#: How the pre image was put on the post grid (``PreOnGrid.mode``), in words.
GRID_METHODS: dict[str, str] = {
    "identity": N_("same pixel grid (no resampling)"),
    "georef": N_("reprojected through both georeferences (rasterio, bilinear)"),
    "resize": N_("resized onto the post image (no georeference on one side)"),
}

#: Why the residual shift is what it is (``shift_note["code"]``), with the parameters each one takes.
SHIFT_NOTES: dict[str, str] = {
    "too-small": N_("image too small to measure a shift"),
    "no-peak": N_("no window with a clear correlation peak (the scenes differ too much, e.g. season, flooding or "
                  "clouds)"),
    "no-overlap": N_("the images do not overlap with enough valid pixels to measure a shift"),
    "disagree": N_("{found} of {tried} windows gave a peak but they disagree (more than {agree_px} px apart)"),
    "agreed": N_("median of {used} agreeing windows out of {tried}"),
    "off": N_("residual shift estimation switched off"),
}

#: Where a pair's no-change statistics came from (``meta["change"]["calibration"]``).
CALIBRATION_SOURCES: dict[str, str] = {
    "generic": N_("generic default (the model has no change calibration of its own)"),
    "pre-image": N_("the pre-event image (per-pair no-change statistics)"),
    "checkpoint": N_("the model's own (fitted on held-out normal imagery when it was trained)"),
}

#: Fixed English sentences older records stored instead of a code -> that code (shown translated).
_OLD_SENTENCES: dict[str, str] = {
    "same pixel grid (no resampling)": "identity",
    "reprojected through both georeferences (rasterio, bilinear)": "georef",
    "resized onto the post image (no georeference on one side)": "resize",
    "generic default (the checkpoint has no change calibration; see core.change.features)": "generic",
    "pre image (per-pair no-change statistics)": "pre-image",
}


def shift_note(code: str, **params: Any) -> dict[str, Any]:
    """A language-free note on the residual shift: ``{"code": code, **params}`` (codes: :data:`SHIFT_NOTES`)."""
    if code not in SHIFT_NOTES:
        raise ValueError(f"unknown shift note code {code!r}")
    return {"code": code, **params}


def _finite(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _pair(v: object) -> tuple[float | None, float | None]:
    if isinstance(v, (list, tuple)) and len(v) >= 2:
        return _finite(v[0]), _finite(v[1])
    return None, None


def grid_method_text(coreg: dict[str, Any]) -> str:
    """How the pre image was put on the post grid: from the ``method`` code, else an old record's
    ``description`` as stored."""
    code = coreg.get("method")
    if isinstance(code, str) and code in GRID_METHODS:
        return _(GRID_METHODS[code])
    old = coreg.get("description")
    if isinstance(old, str) and old.strip():
        return _(GRID_METHODS[_OLD_SENTENCES[old]]) if _OLD_SENTENCES.get(old) in GRID_METHODS else old[:200]
    return str(code)[:200] if code else _("method not recorded")


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if not text or text.endswith(".") else ".")


def shift_note_text(coreg: dict[str, Any]) -> str:
    """The note on the residual shift, as one or two sentences ("" when nothing is recorded)."""
    note = coreg.get("shift_note")
    if not isinstance(note, dict) or note.get("code") not in SHIFT_NOTES:  # an older record: its sentence as stored
        old = coreg.get("note")
        return _sentence(str(old)[:400]) if isinstance(old, str) and old.strip() else ""
    params = {k: v for k, v in note.items() if k != "code"}
    template = SHIFT_NOTES[note["code"]]
    try:
        text = _sentence(_(template).format(**params))
    except (KeyError, IndexError, ValueError):  # a hand-edited record missing a parameter
        text = _sentence(_(template))
    confident, applied = bool(coreg.get("shift_confident")), bool(coreg.get("shift_applied"))
    if confident and not applied:
        text += " " + _("Not applied: both images are on one georeferenced grid, co-registered by their producer (a "
                        "translation cannot fix parallax); use the shift policy 'apply' to force it.")
    elif not confident and note["code"] != "off":
        text += " " + _("No residual shift applied.")
    return text


def coregistration_text(coreg: dict[str, Any] | None) -> str:
    """One line on how the pre image was put on the post grid: method, residual shift dx/dy in px and m, applied,
    and why. Copes with missing or malformed entries (an old or hand-edited record)."""
    if not coreg or not isinstance(coreg, dict):
        return _("Co-registration: not recorded.")
    dx, dy = _pair(coreg.get("shift_px"))
    mx, my = _pair(coreg.get("shift_m"))
    if dx is None or dy is None:
        shift = _("residual shift not recorded")
    else:
        m = f" ({mx:+.2f} m, {my:+.2f} m)" if mx is not None and my is not None else \
            _(" (no ground distance: no georeference)")
        shift = _("residual shift dx {dx:+.2f} px, dy {dy:+.2f} px{m}, {applied}").format(
            dx=dx, dy=dy, m=m, applied=_("applied") if coreg.get("shift_applied") else _("not applied"))
    line = _("Co-registration: {how}; {shift}.").format(how=grid_method_text(coreg), shift=shift)
    note = shift_note_text(coreg)
    return f"{line} {note}".strip()


def calibration_code(value: object) -> str | None:
    """The calibration source code of a stored ``meta["change"]["calibration"]`` (old sentences included), or None
    for anything else."""
    if not isinstance(value, str):
        return None
    code = _OLD_SENTENCES.get(value, value)
    return code if code in CALIBRATION_SOURCES else None


def calibration_text(value: object) -> str:
    """Where a pair's no-change statistics came from, in words ("" when not recorded; an unknown stored text as
    it is)."""
    code = calibration_code(value)
    if code is not None:
        return _(CALIBRATION_SOURCES[code])
    return str(value).strip()[:300] if isinstance(value, str) else ""
