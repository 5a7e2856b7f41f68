"""Run ``python -m core ARGS`` and record the process's CPU seconds when its first tile reaches the model.

    python benchmarks/cli_first_tile.py REPORT.json analyze IMAGE ... (with the checkout to time on PYTHONPATH)

Used by :mod:`benchmarks.bench_speed` for issue 14's "fixed cost ≤ 2 CPU-s from start to the first tile": the
driver wraps ``Detector.predict`` (the current module, or ``core.detector`` of the code before the move) so that
its first call writes ``{"first_tile_cpu_s": user + sys}`` of this process (interpreter start-up, imports, model
load and reading included) to REPORT.json; ``{"end_cpu_s": ...}`` is added when the command returns (before the
interpreter's own shutdown). Nothing else of the command changes.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    """Run the command; write the report; return the command's exit status."""
    report, argv = Path(sys.argv[1]), sys.argv[2:]
    try:
        mod = importlib.import_module("core.detection.detector")
    except ModuleNotFoundError:  # the code before core/ was split into packages
        mod = importlib.import_module("core.detector")
    figures: dict[str, float] = {}
    predict = mod.Detector.predict

    def first_tile(self, *a, **k):  # type: ignore[no-untyped-def]
        figures.setdefault("first_tile_cpu_s", _cpu())
        return predict(self, *a, **k)

    mod.Detector.predict = first_tile
    try:
        cli = importlib.import_module("core.cli.main").main
    except ModuleNotFoundError:  # core/cli.py before the CLI became a package
        cli = importlib.import_module("core.cli").main
    try:
        return int(cli(argv) or 0)
    finally:
        figures["end_cpu_s"] = _cpu()
        report.write_text(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
