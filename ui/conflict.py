"""The panel a review conflict shows, for findings (Report page) and buildings (Map page) alike: who changed the
item, what and when, what this analyst wanted, and the two ways on (keep theirs / apply mine); and the audit rows
both kinds of item show in their review history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from core.i18n import _
from ui.markdown_text import plain


def audit_rows(rows: list[dict[str, Any]], describe: Callable[[dict[str, Any]], str],
               outcome: bool = True) -> list[dict[str, str]]:
    """Audit rows as a review history shows them: when (UTC), who, what changed (``describe``) and, with
    ``outcome``, whether the review was applied or the other analyst's kept."""
    out = []
    for r in rows:
        row = {_("when (UTC)"): str(r["at"])[:19].replace("T", " "), _("analyst"): r["analyst"],
               _("change"): describe(r)}
        if outcome:
            row[_("outcome")] = _(r.get("outcome") or "applied")
        out.append(row)
    return out


def choice(box: Any, conflict: dict[str, Any], describe: Callable[[dict[str, Any]], str],
           key: str) -> tuple[bool, bool]:
    """Draw ``conflict`` (its ``message``, the audit rows ``since`` and this analyst's unsaved ``mine``) in ``box``;
    return which button was pressed: (keep theirs, apply mine). ``key`` prefixes the buttons' widget keys."""
    import pandas as pd  # lazy: the Map page draws before pandas is needed

    with box, st.container(border=True):
        st.warning(plain(conflict["message"]), icon=":material/group:")
        st.dataframe(pd.DataFrame(audit_rows(conflict["since"], describe, outcome=False)), hide_index=True,
                     width="stretch")
        st.markdown(_("**Your change (not saved):** ") + "; ".join(
            f"{_(k)}: {plain(v or '—')}" for k, v in conflict["mine"].items()))
        c1, c2 = st.columns(2)
        keep = c1.button(_("Keep theirs"), icon=":material/undo:", key=f"{key}_keep", width="stretch")
        apply = c2.button(_("Apply mine"), icon=":material/done_all:", key=f"{key}_apply", width="stretch")
    return keep, apply
