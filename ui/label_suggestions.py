""""Suggest buildings to label" on the Map page: the unlabelled buildings most worth labelling next, a button that
opens the next one in the review form, and the list as a labels CSV template."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.buildings import Calibration
from core.buildings.calibrate import prior_calibration
from core.buildings.suggest import DEFAULT_N, label_template_csv, suggest_labels
from core.errors import CoreError
from core.i18n import N_, _
from ui import i18n, shell
from ui import state as S

#: Columns of the suggested buildings.
SUGGEST_COLUMNS = (N_("building"), N_("P(damaged)"), N_("why"), N_("score"))


def suggestions(bset: Any) -> None:
    """"Suggest buildings to label": the unlabelled buildings most worth labelling next
    (:func:`core.buildings.suggest.suggest_labels`), a button that opens the next one in the review form, and the
    list as a labels CSV template (for ``python -m core buildings calibrate --labels``)."""
    n_labels = sum(1 for b in bset.buildings if b.label)
    with st.expander(_("Suggest buildings to label"), expanded=n_labels < DEFAULT_N and not bset.calibration):
        st.caption(_("When few buildings are damaged, 20 buildings picked at random often hold no damaged one, and "
                     "the calibration cannot say where damage begins. These are picked for you: half near the "
                     "current boundary between damaged and not damaged, half spread over the score range, so that "
                     "10–20 labels hold both classes. Label them below, then calibrate; after calibrating, the "
                     "suggestions follow the new boundary. Cross-validated figures on labels picked this way "
                     "describe the hard cases near the boundary, so they read lower than on a random sample."))
        n = st.number_input(_("Buildings to suggest"), min_value=1, max_value=200, value=DEFAULT_N, step=5,
                            key="suggest_n")
        try:
            cal = bset.calibration or prior_calibration(bset.buildings)
            sug = suggest_labels(bset.buildings, int(n), cal)
        except CoreError as exc:
            shell.show_error(exc, _("Suggestions"))
            return
        pf = (cal.prior if isinstance(cal, Calibration) else None) or {}
        if pf.get("method") == "mixture":
            st.caption(_("Not calibrated yet: the suggestions read a prior from all buildings' scores. Damage is "
                         "assumed to begin at {boundary:.2f} on the primary map (mean, 90th percentile and ring "
                         "averaged), where the upper of two score groups ({share:.0%} of the buildings) takes "
                         "over.").format(boundary=pf["boundary"], share=pf.get("damaged_share") or 0.0))
        if not sug:
            st.info(_("Every analysed building is labelled."))
            return
        rows = [{"building": s.building_id, "P(damaged)": s.p_damaged, "why": _(s.reason), "score": s.score}
                for s in sug]
        import pandas as pd  # lazy: the Analyze page draws before pandas is needed

        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                     column_config={**i18n.column_labels(SUGGEST_COLUMNS),
                                    "P(damaged)": st.column_config.NumberColumn(_("P(damaged)"), format="%.2f"),
                                    "score": st.column_config.NumberColumn(_("score"), format="%.3f")})
        if st.button(_("Label the next suggested building"), key="next_suggested", width="stretch",
                     help=_("Opens the first building of the list in the review form below.")):
            S.put(S.BUILDING_SHOWN, sug[0].building_id)
            st.rerun()
        st.download_button(_("Labels CSV template"), data=label_template_csv(sug, bset.buildings).encode("utf-8"),
                           file_name="label_suggestions.csv", mime="text/csv", key="suggest_csv", width="stretch",
                           help=_("Fill its damaged column (1 / 0) and calibrate from the command line: "
                                  "python -m core buildings calibrate --analysis ID --labels label_suggestions.csv"))
