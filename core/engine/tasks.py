"""Inputs cut into window tasks for a distributed engine: one task per analysis-grid tile of a scene.

The plan is the one ``pipeline.analyze_scene`` makes (tiles overlapping by the model's receptive field,
offsets on its stride, resampled to the model's ground sample distance when the scene differs), so a scene scored
task by task and stitched on the driver gives the heatmap the local engine writes. A task is a plain dict (what a
Ray Data row holds): the worker reopens the file and reads its window itself, so pixels never pass the driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rasterio.windows import Window

from core.detection.scene_grid import TilePlan, plan_tiles, resample_factor
from core.i18n import Message
from core.types import Scene


@dataclass(frozen=True)
class ScenePlan:
    """The tiling of one scene of a run and the warnings it gave (resampling limits)."""

    index: int  #: position of the scene among the run's scenes sent to the workers
    path: str
    name: str
    plan: TilePlan
    warnings: tuple[Message, ...] = ()  #: language-free records (core.i18n.message)


def plan_scene(index: int, scene: Scene, det: Any, path: str, resample: bool = True) -> ScenePlan:
    """The tile plan of ``scene`` for detector ``det`` (its tile size, receptive field and GSD)."""
    factor, warnings = resample_factor(scene, getattr(det, "gsd_m", None), resample,
                                       frame_side=getattr(det, "frame_side", None))
    budget = det.tile_budget_px() if hasattr(det, "tile_budget_px") else None  # as analyze_scene plans it
    plan = plan_tiles(scene.height, scene.width, int(det.tile_size), det.rf, factor, budget_px=budget)
    return ScenePlan(index=index, path=path, name=scene.name, plan=plan, warnings=tuple(warnings))


def window_tasks(sp: ScenePlan) -> list[dict[str, Any]]:
    """One task per window of ``sp``, in row-major order (the order the driver stitches them in)."""
    p = sp.plan
    return [{"scene": sp.index, "tile_no": k, "path": sp.path, "name": sp.name, "row": w.row_off, "col": w.col_off,
             "height": w.height, "width": w.width, "tile": p.tile,
             "tile_h": p.tile_hw[0], "tile_w": p.tile_hw[1], "grid_h": p.grid_h, "grid_w": p.grid_w,
             "factor": p.factor} for k, w in enumerate(p.windows)]


def task_window(task: dict[str, Any]) -> Window:
    """The analysis-grid window a task (or a scored task) names."""
    return Window(int(task["col"]), int(task["row"]), int(task["width"]), int(task["height"]))


def task_plan(task: dict[str, Any]) -> TilePlan:
    """The grid a task's window lies on (without the window list, which a worker does not need)."""
    return TilePlan(tile=int(task["tile"]), overlap=0, grid_h=int(task["grid_h"]), grid_w=int(task["grid_w"]),
                    factor=float(task["factor"]), windows=[])
