"""Engines that run an analysis: ``local`` (this process, core.analysis.run' own loop) and ``ray`` (a Ray cluster).

Only the names and the configuration live here, so that choosing an engine never imports Ray: the Ray engine
(:mod:`core.engine.ray_engine`) is imported only when a run uses it.

- :mod:`core.engine.tasks`: inputs cut into window tasks (one per analysis-grid tile, the receptive-field overlap
  included), the same plan :func:`core.detection.pipeline.analyze_scene` makes.
- :mod:`core.engine.scorer`: the stateful model worker (one model load per worker) that scores a batch of tasks.
- :mod:`core.engine.assemble`: the driver side, stitching the scored tiles into the per-scene heatmap, overlay and
  findings exactly as the local engine writes them.
- :mod:`core.engine.area`: area outputs of a run (mosaic VRT + COG, findings merged across seams, area summary).
"""

from __future__ import annotations

import os

ENGINES = ("local", "ray")
ENV_RAY_ADDRESS = "BDA_RAY_ADDRESS"  #: a Ray cluster address ("host:6379" or "auto"); shows the engine choice


def ray_address_from_env() -> str:
    """The Ray cluster address configured for this installation (``$BDA_RAY_ADDRESS``), "" when none."""
    return os.environ.get(ENV_RAY_ADDRESS, "").strip()
