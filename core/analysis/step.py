"""Analyse one input of an analysis, never raising for a bad one: the step :class:`core.analysis.run.AnalysisRun` loops.

A failed input becomes a ``SceneResult`` with ``error`` set (a clear message for the user), so the rest still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import CoreError
from core.i18n import _, is_message, record_of, recording
from core.types import SceneResult

log = logging.getLogger(__name__)

OnTiles = Callable[[int, int], None]  #: progress of one input: (tiles done, tiles in all)


def failed_result(name: str, path: str | Path, message: str | BaseException) -> SceneResult:
    """The record of an input that could not be analysed: ``error`` is the sentence in the language of the run, and
    when it was made inside :func:`core.i18n.recording`, ``meta["error_message"]`` its language-free record (read
    with :meth:`SceneResult.error_text`)."""
    record = record_of(message)
    return SceneResult(scene_name=name, width=0, height=0, image_score=float("nan"), verdict="error", georef=None,
                       bounds_wgs84=None, heatmap_path=None, overlay_path=None, source_path=Path(path),
                       meta={"error_message": record} if is_message(record) else {},
                       error=str(message))


def analyze_input(item: dict[str, Any], det: Any, out_dir: str | Path, *, threshold: float | None = None,
                  change_threshold: float | None = None, grade_scale: str = "copernicus-ems", resample: bool = True,
                  progress: OnTiles | None = None) -> SceneResult:
    """Analyse one input ``{"path", "name"?, "pre_path"?}``; never raises for a bad input (see module doc).
    ``threshold`` cuts a single image's findings from its anomaly heatmap; ``change_threshold`` cuts a pair's
    from its change heatmap (None: the model's calibrated default of each)."""
    path = str(item["path"])
    name = str(item.get("name") or Path(path).name)
    with recording():  # a failure's message is stored as a record: read later in the reader's language
        return _analyze(path, name, item.get("pre_path"), det, out_dir, threshold=threshold,
                        change_threshold=change_threshold, grade_scale=grade_scale, resample=resample,
                        progress=progress)


def _analyze(path: str, name: str, pre_path: Any, det: Any, out_dir: str | Path, *, threshold: float | None,
             change_threshold: float | None, grade_scale: str, resample: bool, progress: OnTiles | None
             ) -> SceneResult:
    from core.detection.pipeline import analyze_scene
    from core.imagery.reader import open_scene

    try:
        scene = open_scene(path, name=name)
        try:
            if pre_path:
                from core.change.scene import analyze_pair

                res = analyze_pair(scene, pre_path, det, out_dir, threshold=threshold,
                                   change_threshold=change_threshold, grade_scale=grade_scale, progress=progress,
                                   resample_to_model_gsd=resample)
            else:
                res = analyze_scene(scene, det, out_dir, threshold=threshold, grade_scale=grade_scale,
                                    resample_to_model_gsd=resample, progress=progress)
        finally:
            scene.close()
        res.source_path = Path(path).resolve()
        return res
    except CoreError as exc:
        return failed_result(name, path, exc)
    except MemoryError:
        return failed_result(name, path, _("not enough memory to analyse this image; convert it to a tiled GeoTIFF "
                                           "or analyse it on a machine with more memory"))
    except Exception as exc:  # noqa: BLE001 - one broken file must not end the batch; logged in full
        log.exception("analysis of %s failed", name)
        return failed_result(name, path, _("unexpected error ({kind}: {exc}); the log has details").format(
            kind=type(exc).__name__, exc=exc))
