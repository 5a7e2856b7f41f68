"""Table cells that never show the text "None": missing numbers become a dash or a short reason.

Streamlit draws a null cell of a dataframe as a grey "None"; a finding of an image without georeferencing has no
area, latitude or longitude, and the analyst should read why, not "None".
"""

from __future__ import annotations

import math

MISSING = "—"
NOT_PLACED = "not placed"  #: what a missing location or area shows: the image has no georeferencing


def num(value: float | int | None, spec: str = ".2f", missing: str = MISSING) -> str:
    """``value`` formatted with ``spec``; ``missing`` for None, NaN and infinities."""
    if value is None or isinstance(value, bool):
        return missing
    try:
        v = float(value)
    except (TypeError, ValueError):
        return missing
    if not math.isfinite(v):
        return missing
    return format(int(v), spec) if spec.endswith("d") else format(v, spec)


def text(value: object, missing: str = MISSING) -> str:
    """``value`` as text; ``missing`` for None and empty strings."""
    return missing if value is None or str(value).strip() == "" or str(value) == "None" else str(value)
