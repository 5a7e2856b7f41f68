"""Figures the report states: counts and areas per grade, area assessed, per-scene score statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.detection.heatmap import default_vmax
from core.report import _geo
from core.report.context import (
    ReportContext,
    grade_key,
    grade_label,
    grade_rank,
    is_confirmed,
    is_rejected,
    ordered_findings,
)
from core.report.extraction import ANOMALY, CHANGE, Basis, anomaly_threshold, scene_basis
from core.report.rasters import read_scores
from core.types import Finding, SceneResult

DISPLAY_THRESHOLD = 1.0  #: colour-ramp start when no threshold is recorded (99th percentile of normal pixels)
HEAT_PREVIEW_SIDE = 900  #: longest side of the downsampled heatmap kept per scene (maps, histogram, valid area)


@dataclass
class SceneStats:
    """One scene as the report sees it.

    ``heat`` is the heatmap the scene's findings were extracted from (``basis``): the change heatmap of a pre/post
    scene, the anomaly heatmap of a single image. ``anomaly_threshold`` is the threshold of the scene's own
    anomaly heatmap (for a pair: the post-only reference, no finding was cut at it).
    """

    result: SceneResult
    heat: np.ndarray | None  #: downsampled calibrated scores (NaN nodata); None when no heatmap file
    valid_fraction: float | None  #: share of the scene with valid scores
    area_m2: float | None  #: ground area assessed (valid part), None without georeferencing
    pixel_m: tuple[float, float] | None  #: metres per column / row step at the centre
    counted: int = 0
    rejected: int = 0
    peak: float | None = None
    basis: Basis = field(default_factory=lambda: Basis(ANOMALY, None, None, "not recorded"))
    anomaly_threshold: float | None = None

    @property
    def display_threshold(self) -> float:
        """Where this scene's heatmap colour ramp starts: its finding threshold, or 1.0 when none is recorded."""
        return self.basis.threshold if self.basis.threshold is not None else DISPLAY_THRESHOLD

    @property
    def vmax(self) -> float:
        """Top of this scene's colour ramp (:func:`core.detection.heatmap.default_vmax` of its threshold)."""
        return default_vmax(self.display_threshold)


@dataclass
class GradeRow:
    """Counted findings of one grade."""

    grade: str
    count: int
    confirmed: int
    area_m2: float | None  #: None when no finding of the grade has a ground area (no georeferencing)
    share: float | None  #: of the area assessed
    without_area: int = 0  #: findings of this grade without a ground area


@dataclass
class ReportSummary:
    """Everything the executive summary and appendix print, computed once."""

    scenes: list[SceneStats]
    ordered: list[tuple[int, Finding]]
    grades: list[GradeRow]
    assessed_area_m2: float | None
    scenes_without_area: int
    damaged_area_m2: float
    damaged_share: float | None
    threshold: float | None  #: the one finding threshold (:meth:`ReportContext.threshold`), None when they differ
    samples: dict[str, np.ndarray] = field(repr=False)  #: kind -> pixel scores sampled from the finding heatmaps
    obj_id: dict[int, int] = field(default_factory=dict, repr=False)  #: id(finding) -> obj_id
    scene_of: dict[int, SceneResult] = field(default_factory=dict, repr=False)  #: id(finding) -> its scene
    stats_of: dict[int, SceneStats] = field(default_factory=dict, repr=False)  #: id(finding) -> its scene's stats

    @property
    def kinds(self) -> list[str]:
        """Kinds of heatmap the findings come from, in report order (anomaly first, then change)."""
        present = {st.basis.kind for st in self.scenes}
        return [k for k in (ANOMALY, CHANGE) if k in present]

    def thresholds(self, kind: str) -> list[float]:
        """Distinct finding thresholds of the scenes whose findings come from ``kind`` heatmaps, ascending."""
        return sorted({st.basis.threshold for st in self.scenes
                       if st.basis.kind == kind and st.basis.threshold is not None})

    def scenes_of(self, kind: str) -> list[tuple[int, SceneStats]]:
        """(S-number from 1, stats) of the scenes whose findings come from ``kind`` heatmaps."""
        return [(k, st) for k, st in enumerate(self.scenes, start=1) if st.basis.kind == kind]

    @property
    def counted(self) -> list[tuple[int, Finding]]:
        """(obj_id, finding) of findings counted in the assessment (not rejected)."""
        return [(i, f) for i, f in self.ordered if not is_rejected(f)]

    @property
    def rejected(self) -> list[tuple[int, Finding]]:
        """(obj_id, finding) of findings rejected by an analyst."""
        return [(i, f) for i, f in self.ordered if is_rejected(f)]

    @property
    def confirmed(self) -> int:
        """Number of analyst-confirmed findings."""
        return sum(1 for _, f in self.ordered if is_confirmed(f))

    @property
    def without_georef(self) -> int:
        """Counted findings that have no WGS84 geometry (absent from the GeoJSON)."""
        return sum(1 for _, f in self.counted if f.geometry is None)


def _finite(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def scene_stats(sr: SceneResult, basis: Basis | None = None,
                model_info: dict[str, Any] | None = None) -> SceneStats:
    """Downsampled finding heatmap (``basis``: the change heatmap of a pair, else the anomaly heatmap), valid
    share and assessed ground area of one scene."""
    basis = basis or scene_basis(sr, model_info)
    heat = read_scores(basis.path, max_side=HEAT_PREVIEW_SIDE, full_size=(sr.width, sr.height))
    valid = float(np.isfinite(heat).mean()) if heat is not None and heat.size else None
    pixel_m = area = None
    if sr.georef is not None and sr.width > 0 and sr.height > 0:
        try:
            pixel_m = _geo.pixel_size_m(sr.georef, sr.width / 2, sr.height / 2)
        except Exception:  # noqa: BLE001 - a broken CRS means "no area", never a failed report
            pixel_m = None
        if pixel_m is not None and all(math.isfinite(v) and v > 0 for v in pixel_m):
            area = pixel_m[0] * pixel_m[1] * sr.width * sr.height * (valid if valid is not None else 1.0)
        else:
            pixel_m = None
    st = SceneStats(sr, heat, valid, area, pixel_m, basis=basis, anomaly_threshold=anomaly_threshold(sr, model_info))
    st.counted = sum(1 for f in sr.findings if not is_rejected(f))
    st.rejected = len(sr.findings) - st.counted
    peaks = [v for f in sr.findings if not is_rejected(f) and (v := _finite(f.score_max)) is not None]
    st.peak = max(peaks) if peaks else None
    return st


def summarise(ctx: ReportContext) -> ReportSummary:
    """Compute the report's numbers (reads each heatmap once, downsampled)."""
    stats = [scene_stats(s, ctx.basis(s), ctx.model_info) for s in ctx.scenes]
    ordered = ordered_findings(ctx.findings())
    by_grade: dict[str, list[Finding]] = {}
    for _, f in ordered:
        if not is_rejected(f):
            by_grade.setdefault(grade_key(f.grade), []).append(f)
    areas = [s.area_m2 for s in stats if s.area_m2 is not None]
    assessed = sum(areas) if areas else None
    rows = []
    for key in sorted(by_grade, key=lambda k: (grade_rank(k, by_grade[k][0].grade_scale), k)):
        fs = by_grade[key]
        known = [v for f in fs if (v := _finite(f.area_m2)) is not None]
        a = sum(known) if known else None
        rows.append(GradeRow(grade_label(fs[0].grade, fs[0].grade_scale), len(fs), sum(map(is_confirmed, fs)), a,
                             a / assessed if assessed and a is not None else None, len(fs) - len(known)))
    damaged = sum(r.area_m2 for r in rows if r.area_m2 is not None)
    samples = {kind: np.concatenate([s.heat[np.isfinite(s.heat)].ravel() for s in stats
                                     if s.heat is not None and s.basis.kind == kind] or [np.zeros(0, np.float32)])
               for kind in (ANOMALY, CHANGE)}
    return ReportSummary(stats, ordered, rows, assessed, sum(1 for s in stats if s.area_m2 is None), damaged,
                         damaged / assessed if assessed else None, ctx.threshold(), samples,
                         {id(f): i for i, f in ordered}, {id(f): s.result for s in stats for f in s.result.findings},
                         {id(f): s for s in stats for f in s.result.findings})
