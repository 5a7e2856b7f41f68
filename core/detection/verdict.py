"""The one rule behind a scene's verdict, its threshold and its finding counts.

Every face (Analyze, Map and Report pages, the PDF, the CLI) states a scene's result through :func:`judge`, so the
verdict, the threshold it was decided at and the number of findings can never disagree:

* **Threshold.** Finding thresholds are set, stored and shown to two decimals (:func:`canonical_threshold`): the
  pipeline's default is the model's calibrated threshold rounded as the sidebar shows it, so "Findings saved" and
  "Findings @ 5.31" count the same regions when the sidebar shows the saved threshold (before, the saved findings
  were cut at 5.3074 and the live count at 5.31: 40 vs 39).
* **Findings.** A finding is a connected region of the heatmap the scene's findings come from (the anomaly heatmap
  of a single image, the change heatmap of a pre/post pair) whose score reaches the threshold. Findings an analyst
  rejected are listed but not counted.
* **Verdict.** "anomalous" when at least one counted finding exists at that threshold, else "normal". The image
  score (the calibrated mean of the whole image) ranks images; it does not decide the verdict, so a verdict can
  always be checked against the threshold and the peak score shown beside it.

Confidence (:data:`CONFIDENCE_NOTE`) is a finding's margin over the threshold, not a probability of damage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.detection.grading import CONFIDENCE_K, check_threshold
from core.i18n import N_, _, ngettext
from core.types import Finding, SceneResult

ANOMALOUS, NORMAL, ERROR = "anomalous", "normal", "error"
#: Decimals thresholds are stored and shown with.
THRESHOLD_DECIMALS = 2

#: What a finding's confidence means, written where confidence is shown (pages, PDF).
_CONFIDENCE_TEXT = N_("Confidence is the finding's margin over the threshold, not a probability of damage: "
                      "1 / (1 + exp(-{k} · (s − t) / t)) of the region's 90th-percentile score s against the "
                      "threshold t: 50 % at the threshold, 88 % at 1.5 × t, about 100 % from 2.5 × t.")
CONFIDENCE_NOTE = _CONFIDENCE_TEXT.format(k=f"{CONFIDENCE_K:g}")  #: in English; :func:`confidence_note` translates

#: The verdict rule in one sentence (pages, PDF, CLI help).
VERDICT_RULE = N_("an image is anomalous when at least one finding (a region of the heatmap its findings come from) "
                  "reaches the threshold and was not rejected by an analyst; otherwise normal.")

#: What the image score means (it ranks images; the verdict comes from the findings).
IMAGE_SCORE_NOTE = N_("Image score: the calibrated mean anomaly of the whole image (1 = the 99th percentile of the "
                      "model's normal images). It ranks images; the verdict comes from the findings at the "
                      "threshold.")


#: Share of an image above the threshold from which its map is read as a whole, not finding by finding. The default
#: threshold is the 99.9th percentile of the model's normal pixels, so about 0.1 % of a normal image reaches it.
#: Measured with the default model: intact Joplin pre-event chips of another acquisition 0.2 %, 5.8 %, 59 % and 61 %
#: (the last two: the whole image unlike the model's normal imagery), flooded Harvey post images 7-30 %.
BROAD_SHARE = 0.20


def share_above(heat: np.ndarray, threshold: float) -> float:
    """The share of ``heat``'s finite pixels at or above ``threshold`` (0 when none is finite)."""
    fin = heat[np.isfinite(heat)]
    return float((fin >= threshold).mean()) if fin.size else 0.0


def broad_anomaly_note(share: object) -> str | None:
    """From :data:`BROAD_SHARE` of an image above the threshold (``meta["share_above_threshold"]``), a note for the
    analyst in the language in use (written when shown, not stored): such a map cannot tell widespread damage from
    imagery unlike the model's normal imagery. None below it, or when the share was not recorded."""
    if not isinstance(share, (int, float)) or not math.isfinite(share) or share < BROAD_SHARE:
        return None
    return _("{pct} % of the image is above the threshold (about 0.1 % of the model's normal imagery is): "
             "either damage covers much of it, or the image as a whole is unlike the imagery the model "
             "knows as normal (another sensor, season, light or area). The findings cannot tell which: "
             "compare with a pre-event image of the same place, or fit a normal model to pre-event imagery "
             "of this area.").format(pct=f"{100 * share:.0f}")


def confidence_note() -> str:
    """:data:`CONFIDENCE_NOTE` in the language in use."""
    return _(_CONFIDENCE_TEXT).format(k=f"{CONFIDENCE_K:g}")


def canonical_threshold(threshold: float) -> float:
    """``threshold`` as it is stored and shown: a positive finite number rounded to two decimals."""
    t = round(check_threshold(threshold), THRESHOLD_DECIMALS)
    return t if t > 0 else 10.0 ** -THRESHOLD_DECIMALS


def same_threshold(a: float | None, b: float | None) -> bool:
    """True when two thresholds show as the same number (both rounded to two decimals)."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return False
    return round(a, THRESHOLD_DECIMALS) == round(b, THRESHOLD_DECIMALS)


def verdict_of(n_counted: int) -> str:
    """The verdict for ``n_counted`` counted findings: "anomalous" from one on, else "normal"."""
    return ANOMALOUS if n_counted > 0 else NORMAL


def counted(findings: list[Finding]) -> list[Finding]:
    """The findings that count: all but those an analyst rejected."""
    return [f for f in findings if f.review_status != "rejected"]


def _finite(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


@dataclass(frozen=True)
class Verdict:
    """A scene's verdict with everything needed to check it."""

    verdict: str  #: "anomalous" | "normal" | "error"
    kind: str  #: "anomaly" (single image) | "change" (pre/post pair)
    threshold: float | None  #: the threshold the findings were cut at
    n_findings: int  #: all findings at the threshold, rejected included
    n_counted: int  #: findings that count (not rejected)
    n_rejected: int
    peak: float | None  #: highest score of a counted finding, else the heatmap's maximum
    image_score: float | None

    @property
    def rule(self) -> str:
        """The rule written out with this scene's numbers, e.g. "anomalous: 39 findings reach threshold 5.31
        (peak 9.84 ≥ 5.31)"."""
        if self.verdict == ERROR:
            return _("no verdict: the analysis of this image failed")
        change = self.kind == "change"
        t = "?" if self.threshold is None else f"{self.threshold:.2f}"
        peak = "" if self.peak is None else f"{self.peak:.2f}"
        if self.verdict == ANOMALOUS:
            n = self.n_counted
            s = (ngettext("anomalous: {n} change finding reach threshold {t}",
                          "anomalous: {n} change findings reach threshold {t}", n) if change else
                 ngettext("anomalous: {n} anomaly finding reach threshold {t}",
                          "anomalous: {n} anomaly findings reach threshold {t}", n)).format(n=n, t=t)
            s += _(" (peak {peak} ≥ {t})").format(peak=peak, t=t) if peak else ""
        elif self.n_rejected:
            n = self.n_rejected
            s = (ngettext("normal: the {n} change finding at threshold {t} was rejected by an analyst",
                          "normal: the {n} change findings at threshold {t} were rejected by an analyst", n)
                 if change else
                 ngettext("normal: the {n} anomaly finding at threshold {t} was rejected by an analyst",
                          "normal: the {n} anomaly findings at threshold {t} were rejected by an analyst", n)
                 ).format(n=n, t=t)
        else:
            s = (_("normal: no change region reaches threshold {t}") if change else
                 _("normal: no anomaly region reaches threshold {t}")).format(t=t)
            s += _(" (peak {peak} < {t})").format(peak=peak, t=t) if peak else ""
        return s

    @property
    def counts_label(self) -> str:
        """"39" or "39 (+2 rejected)": the count every page shows."""
        return str(self.n_counted) + (f" (+{self.n_rejected} rejected)" if self.n_rejected else "")


def _is_pair(r: SceneResult) -> bool:
    return r.change_path is not None or isinstance(r.meta.get("change"), dict)


def saved_threshold(r: SceneResult) -> float | None:
    """The threshold ``r``'s saved findings were cut at: the change threshold of a pair, the anomaly threshold of a
    single image (the findings' own first, then what the analysis recorded)."""
    own = [t for f in r.findings if (t := _finite(f.threshold)) is not None]
    if own:
        return max(set(own), key=own.count)
    if _is_pair(r):
        c = r.meta.get("change")
        return _finite(c.get("threshold")) if isinstance(c, dict) else None
    return _finite(r.meta.get("threshold"))


def _heat_max(r: SceneResult) -> float | None:
    if _is_pair(r):
        c = r.meta.get("change")
        stats = c.get("stats") if isinstance(c, dict) else None
    else:
        stats = r.meta.get("heatmap_stats")
    return _finite(stats.get("max")) if isinstance(stats, dict) else None


def judge(r: SceneResult, findings: list[Finding] | None = None, threshold: float | None = None) -> Verdict:
    """The verdict of ``r`` by the module's rule: from its saved findings at their threshold, or from ``findings``
    cut at ``threshold`` (a preview at another threshold; give both)."""
    kind = "change" if _is_pair(r) else "anomaly"
    if r.error:
        return Verdict(ERROR, kind, None, 0, 0, 0, None, None)
    fs = r.findings if findings is None else findings
    thr = saved_threshold(r) if threshold is None else threshold
    keep = counted(fs)
    peaks = [v for f in keep if (v := _finite(f.score_max)) is not None]
    peak = max(peaks) if peaks else _heat_max(r)
    if not keep and peak is not None and thr is not None and peak >= thr:
        peak = None  # the heatmap's max reaches t only in regions too small to count: do not show a contradiction
    return Verdict(verdict_of(len(keep)), kind, thr, len(fs), len(keep), len(fs) - len(keep), peak,
                   _finite(r.image_score))


def verdict_summary(results: list[SceneResult]) -> dict[str, Any]:
    """Counts over many scenes, as every page and the report state them: scenes per verdict and counted findings."""
    vs = [judge(r) for r in results]
    return {"scenes": len(vs), "anomalous": sum(v.verdict == ANOMALOUS for v in vs),
            "normal": sum(v.verdict == NORMAL for v in vs), "failed": sum(v.verdict == ERROR for v in vs),
            "findings": sum(v.n_counted for v in vs), "rejected": sum(v.n_rejected for v in vs)}
