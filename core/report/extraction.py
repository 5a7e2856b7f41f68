"""What each scene's findings were extracted from: which heatmap (anomaly or change), its raster and threshold.

A single image's findings are cut from its *anomaly* heatmap (``SceneResult.heatmap_path``) at the detector's
anomaly threshold. A pre/post result's findings are cut from its *change* heatmap (``SceneResult.change_path``,
:func:`core.change.scene.analyze_pair`) at the change threshold, in change units; its anomaly heatmap ("post-only") is
kept for reference and never gave a counted finding. Every place the report states a threshold or draws the
heatmap behind the findings asks :func:`scene_basis`, so the two kinds of heatmap are never mixed.

The threshold stated is always one the findings were extracted at: the findings' own threshold first, then the
threshold recorded with the scene (``meta["change"]["threshold"]`` for a pair, ``meta["threshold"]`` for a single
image), and for a single image only, last, the detector's ``model_info["threshold"]``. ``model_info["threshold"]``
is the detector's *anomaly* threshold (what ``analysis.json`` and :func:`core.report.analysis_model_info` record);
it never stands for a pair's change threshold.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.detection.verdict import same_threshold
from core.i18n import N_
from core.types import Finding, SceneResult

ANOMALY, CHANGE = "anomaly", "change"
#: How each kind of heatmap is named in the report, and its units.
KIND_LABEL = {ANOMALY: N_("anomaly heatmap"), CHANGE: N_("change heatmap")}
KIND_UNITS = {ANOMALY: N_("calibrated anomaly units"), CHANGE: N_("calibrated change units")}
KIND_SCALE = {ANOMALY: "0 = median normal pixel, 1 = 99th percentile of normal pixels",
              CHANGE: "0 = median no-change pixel, 1 = 99th percentile of no-change pixels"}
CHANGE_DEFAULT_METHOD = N_("change calibration default (99.9th percentile of no-change pixels)")


@dataclass(frozen=True)
class Basis:
    """The heatmap a scene's findings come from: ``kind`` (:data:`ANOMALY` | :data:`CHANGE`), its raster file,
    the threshold the findings were cut at (None when nothing records one) and how that threshold was set."""

    kind: str
    path: Path | None
    threshold: float | None
    method: str

    @property
    def label(self) -> str:
        """"change heatmap" or "anomaly heatmap"."""
        return KIND_LABEL[self.kind]

    @property
    def units(self) -> str:
        """"calibrated change units" or "calibrated anomaly units"."""
        return KIND_UNITS[self.kind]


def _finite(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def change_meta(sr: SceneResult) -> dict[str, Any]:
    """``meta["change"]`` of a pre/post result ({} when absent or malformed)."""
    c = sr.meta.get("change") if isinstance(sr.meta, dict) else None
    return c if isinstance(c, dict) else {}


def coregistration_meta(sr: SceneResult) -> dict[str, Any]:
    """``meta["coregistration"]`` of a pre/post result ({} when absent or malformed)."""
    c = sr.meta.get("coregistration") if isinstance(sr.meta, dict) else None
    return c if isinstance(c, dict) else {}


def is_paired(sr: SceneResult) -> bool:
    """True when the scene's findings come from a change heatmap (a pre/post result)."""
    return sr.change_path is not None or bool(change_meta(sr))


def findings_threshold(findings: list[Finding]) -> float | None:
    """The threshold most of ``findings`` were extracted at (None when none records a finite one)."""
    vals = [v for f in findings if (v := _finite(f.threshold)) is not None]
    return Counter(vals).most_common(1)[0][0] if vals else None


def anomaly_threshold(sr: SceneResult, model_info: dict[str, Any] | None = None) -> float | None:
    """Threshold of the scene's own anomaly heatmap: ``meta["threshold"]``, else ``model_info["threshold"]``.

    For a single image this is its finding threshold when the findings record none; for a pair it is the
    post-only reference threshold (no counted finding was cut at it).
    """
    meta = sr.meta if isinstance(sr.meta, dict) else {}
    for v in (meta.get("threshold"), (model_info or {}).get("threshold")):
        if (t := _finite(v)) is not None:
            return t
    return None


def _change_method(sr: SceneResult, threshold: float | None) -> str:
    c = change_meta(sr)
    recorded = _finite(c.get("threshold"))
    stats = c.get("calibration_stats") if isinstance(c.get("calibration_stats"), dict) else {}
    default = _finite(stats.get("threshold"))
    if threshold is None:
        return N_("not recorded")
    if recorded is not None and not math.isclose(recorded, threshold, rel_tol=1e-6, abs_tol=1e-9):
        return N_("recorded with the findings")
    if default is not None and same_threshold(threshold, default):  # thresholds are stored to two decimals
        return CHANGE_DEFAULT_METHOD
    return N_("set by the analyst") if default is not None else N_("recorded with the analysis")


def scene_basis(sr: SceneResult, model_info: dict[str, Any] | None = None) -> Basis:
    """The heatmap ``sr``'s findings were extracted from, with the threshold they were cut at (module docstring)."""
    mi = model_info or {}
    own = findings_threshold(sr.findings)
    if is_paired(sr):
        t = own if own is not None else _finite(change_meta(sr).get("threshold"))
        return Basis(CHANGE, sr.change_path, t, _change_method(sr, t))
    t = own if own is not None else anomaly_threshold(sr, mi)
    model_t = _finite(mi.get("threshold"))
    if t is None:
        method = N_("not recorded")
    elif model_t is not None and math.isclose(t, model_t, rel_tol=1e-6, abs_tol=1e-9):
        method = str(mi.get("threshold_method") or "not recorded")
    else:
        method = N_("recorded with the findings")
    return Basis(ANOMALY, sr.heatmap_path, t, method)


def finding_kind(f: Finding, scene: SceneResult | None = None) -> str:
    """:data:`CHANGE` or :data:`ANOMALY`: the heatmap ``f`` was extracted from (its scene decides when known)."""
    if scene is not None:
        return CHANGE if is_paired(scene) else ANOMALY
    return CHANGE if f.pre_source_name else ANOMALY
