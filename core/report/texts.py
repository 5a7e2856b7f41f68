"""Words and number formats shared by every section of the PDF: section titles, the "not validated" phrase,
numbers, areas, shares and coordinates."""

from __future__ import annotations

import math

from core.i18n import N_, _

#: Section titles exactly as printed in English (tests and readers rely on them); printed as ``_(TITLES[k])``.
TITLES = {
    "summary": N_("1. Executive summary"),
    "table": N_("2. Phase 1 physical damage assessment"),
    "details": N_("3. Finding details"),
    "method": N_("4. Method and limitations"),
    "appendix": N_("Appendix A. Per-image scores"),
}
NOT_VALIDATED = N_("automatic extraction, not field-validated")


def title(key: str) -> str:
    """The section title ``key`` of :data:`TITLES` in the language in use."""
    return _(TITLES[key])


def fmt(v: object, digits: int = 2) -> str:
    """Number with ``digits`` decimals, or an em dash when unknown."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "—"
    return f"{v:,.{digits}f}"


def fmt_area(m2: float | None) -> str:
    """Area in m² (km² above one square kilometre)."""
    if m2 is None or not math.isfinite(m2):
        return "—"
    return f"{m2 / 1e6:,.3f} km²" if m2 >= 1e6 else f"{m2:,.0f} m²"


def fmt_share(x: float | None) -> str:
    """A fraction as a percentage."""
    return "—" if x is None or not math.isfinite(x) else (f"{100 * x:.2f} %" if x >= 0.0001 else "< 0.01 %")


def fmt_latlon(lat: float | None, lon: float | None) -> str:
    """'lat, lon' with 5 decimals (about 1 m), or a note when there are no coordinates."""
    if lat is None or lon is None:
        return _("no georef")
    return f"{lat:.5f}, {lon:.5f}"
