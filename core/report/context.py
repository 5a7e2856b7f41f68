"""What a report is built from: :class:`ReportContext`, plus the finding order and grade vocabulary it uses.

Every output (PDF, CSV, GeoJSON) numbers findings the same way (:func:`ordered_findings`): ``obj_id`` 1..N by
peak score, rejected findings last, so "#7" on the map, in the table and in the spreadsheet is the same region.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.detection.grading import SCALES, Grade
from core.errors import ReportError
from core.i18n import _
from core.report.extraction import Basis, is_paired, scene_basis
from core.types import Finding, SceneResult

_OTHER_COLOURS = ("#7b3294", "#2b83ba", "#008837", "#c51b7d")


def grade_key(grade: str) -> str:
    """Normalised grade value: lower case, words joined by ``-`` ("Possibly damaged" -> "possibly-damaged")."""
    return re.sub(r"[\s_-]+", "-", str(grade).strip().lower()).replace("analyzed", "analysed")


def _lookup(grade: str, scale: str | None) -> tuple[Grade, int] | None:
    key = grade_key(grade)
    scales = [SCALES[scale]] if scale in SCALES else []
    scales += [s for s in SCALES.values() if s.key != scale]
    for sc in scales:
        for rank, g in enumerate(sc.grades()):
            if g.key == key:
                # rank: most severe = 0, aligned on the severe end so scales of different lengths mix sensibly
                return g, rank + (4 - len(sc.damage))
    return None


def grade_label(grade: str, scale: str | None = None) -> str:
    """Human label of a grade from :mod:`core.detection.grading` ("possibly-damaged" -> "Possibly damaged")."""
    hit = _lookup(grade, scale)
    return hit[0].label if hit else str(grade)


def grade_rank(grade: str, scale: str | None = None) -> int:
    """Severity rank for sorting (0 = most severe; unknown grades last)."""
    hit = _lookup(grade, scale)
    return hit[1] if hit else 99


def grade_colour(grade: str, scale: str | None = None) -> str:
    """Hex colour of a grade, the same as on the app's maps (:mod:`core.detection.grading`)."""
    hit = _lookup(grade, scale)
    if hit:
        return hit[0].color
    return _OTHER_COLOURS[sum(map(ord, grade_key(grade))) % len(_OTHER_COLOURS)]


def is_rejected(f: Finding) -> bool:
    """True when an analyst rejected the finding (it is listed, never counted)."""
    return str(f.review_status).strip().lower() == "rejected"


def is_confirmed(f: Finding) -> bool:
    """True when an analyst confirmed the finding."""
    return str(f.review_status).strip().lower() == "confirmed"


def _score(v: float) -> float:
    return v if isinstance(v, (int, float)) and math.isfinite(v) else -math.inf


def ordered_findings(findings: Iterable[Finding]) -> list[tuple[int, Finding]]:
    """``(obj_id, finding)`` pairs: counted findings by peak score (desc), then rejected ones; obj_id from 1."""
    items = list(findings)
    for f in items:
        if not isinstance(f, Finding):
            raise ReportError(_("expected core.types.Finding objects, got {name}; pass the findings of a "
                                "SceneResult or a ReportContext").format(name=type(f).__name__))
    items.sort(key=lambda f: (is_rejected(f), -_score(f.score_max), -_score(f.score_mean), str(f.id)))
    return list(enumerate(items, start=1))


@dataclass
class ReportContext:
    """Everything one damage report is built from.

    ``handling`` is the handling / classification line printed on every page (e.g.
    "UNCLASSIFIED // FOR OFFICIAL USE ONLY" or "TLP:CLEAR"); it has no default on purpose: whoever releases the
    report decides it. ``report_time`` is converted to UTC (a naive datetime is taken as UTC). ``model_info`` keys
    used: ``name``, ``version``, ``arch``, ``sha256``, ``threshold`` and ``threshold_method``: the detector's
    *anomaly* threshold and how it was set, the fallback for single images whose findings record none (a pre/post
    scene's findings come from its change heatmap at its own change threshold: :mod:`core.report.extraction`).
    ``pre_sources`` maps ``SceneResult.pre_scene_name`` to the pre-event image file.
    """

    title: str
    handling: str
    scenes: list[SceneResult]
    event: str = ""
    aoi: str = ""
    analyst: str = ""
    organisation: str = ""
    report_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    model_info: dict[str, Any] = field(default_factory=dict)
    pre_sources: dict[str, Path] = field(default_factory=dict)
    top_n: int = 20
    summary_notes: str = ""
    phase2_notes: str = ""
    phase3_notes: str = ""
    max_map_figures: int = 6
    event_type: str = "other"  #: core.analysis.guidance.EVENT_MODES key: the method section says which mode suits it
    basemap_sources: list[str] = field(default_factory=list)  #: the map's offline basemaps (core.mapping.basemaps)
    #: per-building assessment (core.buildings.Building records) when the analysis was given footprints
    buildings: list[Any] = field(default_factory=list)
    building_calibration: dict[str, Any] | None = None  #: the few-label calibration of the buildings, if fitted
    #: the whole area of a multi-scene analysis (core.report.area.AreaSection, from ``area_of``): None = per scene only
    area: Any = None

    def validate(self) -> None:
        """Raise :class:`ReportError` saying what to fix when the context cannot make a report."""
        if not isinstance(self.title, str) or not self.title.strip():
            raise ReportError(_("the report needs a title; fill in the report title (--title on the command line)"))
        if not isinstance(self.handling, str) or not self.handling.strip():
            raise ReportError(_("the report needs a handling line (e.g. 'TLP:CLEAR' or 'UNCLASSIFIED // FOR "
                                "OFFICIAL USE ONLY'); fill in the handling / classification line (--handling on "
                                "the command line)"))
        if not isinstance(self.scenes, Sequence) or isinstance(self.scenes, (str, bytes)) or not self.scenes:
            raise ReportError(_("the report has no analysed scenes; analyse at least one image first"))
        for s in self.scenes:
            if not isinstance(s, SceneResult):
                raise ReportError(_("ReportContext.scenes must hold SceneResult objects, got {name}").format(
                                      name=type(s).__name__))
        if not isinstance(self.report_time, datetime):
            raise ReportError(_("ReportContext.report_time must be a datetime (UTC)"))
        if not isinstance(self.top_n, int) or self.top_n < 0:
            raise ReportError(_("top_n must be a whole number >= 0, got {top_n!r}").format(top_n=self.top_n))
        if not isinstance(self.model_info, dict) or not isinstance(self.pre_sources, dict):
            raise ReportError(_("model_info and pre_sources must be dictionaries"))
        ordered_findings(self.findings())  # type check of every finding

    @property
    def report_time_utc(self) -> datetime:
        """Report time in UTC (naive values are taken as UTC)."""
        t = self.report_time
        return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)

    def findings(self) -> list[Finding]:
        """All findings of all scenes, in scene order."""
        return [f for s in self.scenes for f in s.findings]

    def scene(self, name: str) -> SceneResult | None:
        """The scene result called ``name`` (None when absent)."""
        return next((s for s in self.scenes if s.scene_name == name), None)

    def basis(self, scene: SceneResult) -> Basis:
        """The heatmap (anomaly or change) ``scene``'s findings were extracted from and their threshold."""
        return scene_basis(scene, self.model_info)

    def threshold(self) -> float | None:
        """The one finding threshold of the report: every scene's findings cut from the same kind of heatmap at
        the same threshold; None when scenes differ (mixed single and pre/post scenes, or several thresholds:
        see :meth:`basis`) or none is recorded. Never a threshold no finding was extracted at."""
        keys = {(b.kind, b.threshold) for b in map(self.basis, self.scenes) if b.threshold is not None}
        return next(iter(keys))[1] if len(keys) == 1 else None

    def kind(self) -> str | None:
        """"change" or "anomaly" when every scene's findings come from that kind of heatmap, else None."""
        kinds = {self.basis(s).kind for s in self.scenes}
        return next(iter(kinds)) if len(kinds) == 1 else None

    def model(self, key: str, default: str = "not recorded") -> str:
        """A model_info value as text."""
        v = self.model_info.get(key)
        return default if v is None or v == "" else str(v)

    def pre_source(self, scene: SceneResult) -> Path | None:
        """File of the pre-event image compared with ``scene`` (None when not available)."""
        if not scene.pre_scene_name:
            return None
        p = self.pre_sources.get(scene.pre_scene_name)
        return Path(p) if p is not None and Path(p).is_file() else None


def pre_sources_of(results: Iterable[SceneResult]) -> dict[str, Path]:
    """``pre_scene_name`` -> pre-event image file, for each paired result that recorded one (``meta["pre_source"]``)."""
    return {r.pre_scene_name: Path(r.meta["pre_source"]) for r in results
            if r.pre_scene_name and r.meta.get("pre_source")}


def analysis_model_info(model: dict[str, Any], analyst_threshold: float | None,
                        results: Sequence[SceneResult]) -> dict[str, Any]:
    """The ``model_info`` of a stored analysis: its model description plus, when every single image was extracted
    at one anomaly threshold, that threshold and how it was set (``analyst_threshold`` None = the model's
    calibrated default).

    Pre/post results do not count: their findings come from the change heatmap at the change threshold each
    records (``meta["change"]``); their ``meta["threshold"]`` is only the post image's own anomaly threshold, so
    an analysis of pairs alone gets no ``threshold`` here and the report states each pair's change threshold.
    The model description's own ``threshold`` (its calibration default) is dropped for the same reason: it is
    stated only when images were really cut at it.
    """
    info = {k: v for k, v in model.items() if k not in ("threshold", "threshold_method")}
    thresholds = {r.meta.get("threshold") for r in results if not is_paired(r) and r.error is None}
    if len(thresholds) == 1 and isinstance(t := next(iter(thresholds)), (int, float)):
        info["threshold"] = float(t)
        info["threshold_method"] = ("model default (calibrated)" if analyst_threshold is None
                                    else "set by the analyst")
    return info
