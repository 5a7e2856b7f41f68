"""Benchmark the report writers: 500 findings over 20 real Joplin tiles; prints seconds per format.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_report [--scenes 20] [--findings 500] [--keep DIR]

Inputs are built as in the report tests (texture score of the real imagery -> heatmap -> findings), so
every scene has a float32 heatmap GeoTIFF, an overlay PNG and graded, georeferenced findings; preparing them is
not timed. Target: PDF + CSV + GeoJSON + package together under 15 s on a CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from core.report import ReportContext, write_csv, write_geojson, write_package, write_pdf
from tests.support.data import SHARED_DATA
from tests.support.report import JOPLIN, MODEL, NOTES, analyse

REPO = Path(__file__).resolve().parents[1]

THRESHOLD = 1.0  #: lower than the tests' so that every tile has enough regions for 25 findings


def build(n_scenes: int, n_findings: int, out: Path) -> ReportContext:
    """``n_scenes`` analysed real tiles (cycling over the 14 georeferenced Joplin tiles) with ``n_findings``."""
    tiles = sorted((SHARED_DATA / JOPLIN / "post").glob("*.tif")) + \
        sorted((SHARED_DATA / JOPLIN / "chips_aligned" / "post").glob("*.tif")) + \
        sorted((SHARED_DATA / JOPLIN / "pre").glob("*.tif"))
    if not tiles:
        raise SystemExit(f"real data not found under {SHARED_DATA / JOPLIN}")
    per = -(-n_findings // n_scenes)
    scenes = []
    for k in range(n_scenes):
        tile = tiles[k % len(tiles)]
        folder = out / f"s{k:02d}"
        folder.mkdir()
        sr = analyse(tile, folder, max_findings=2 * per, threshold=THRESHOLD)
        scenes.append(dataclasses.replace(sr, scene_name=f"{k:02d}_{tile.name}"))
    keep = [min(per, len(sr.findings)) for sr in scenes]
    for k, sr in enumerate(scenes):  # top up from tiles with more regions until n_findings are kept
        keep[k] += min(len(sr.findings) - keep[k], max(0, n_findings - sum(keep)))
    for k, sr in enumerate(scenes):
        sr.findings = sr.findings[: keep[k]]
        for i, f in enumerate(sr.findings):
            f.scene_name = sr.scene_name
            f.id = f"{Path(sr.scene_name).stem}-F{i + 1:03d}"
            if i % 7 == 0:
                f.review_status, f.analyst, f.notes = "confirmed", "김민준", NOTES["ko"]
            elif i % 11 == 0:
                f.review_status, f.notes = "rejected", NOTES["ru"]
    return ReportContext(title="Benchmark report", handling="TLP:CLEAR", scenes=scenes, event="benchmark",
                         model_info=dict(MODEL) | {"threshold": THRESHOLD}, analyst="bench")


def main(argv: list[str] | None = None) -> int:
    """Build the inputs once, then time each writer."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--findings", type=int, default=500)
    ap.add_argument("--keep", type=Path, help="write the outputs here instead of a temporary folder")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        ctx = build(args.scenes, args.findings, work)
        n = len(ctx.findings())
        print(f"inputs: {len(ctx.scenes)} scenes, {n} findings, prepared in {time.perf_counter() - t0:.1f} s "
              "(not timed below)")
        out = args.keep or work
        out.mkdir(parents=True, exist_ok=True)
        total_wall = total_cpu = 0.0
        for name, fn, target in (("pdf", write_pdf, "report.pdf"), ("csv", write_csv, "findings.csv"),
                                 ("geojson", write_geojson, "findings.geojson"),
                                 ("package", write_package, "package.zip")):
            w, c = time.perf_counter(), time.process_time()
            path = fn(ctx, out / target)
            w, c = time.perf_counter() - w, time.process_time() - c
            total_wall, total_cpu = total_wall + w, total_cpu + c
            print(f"{name:8s} {w:6.2f} s wall  {c:6.2f} s cpu  {path.stat().st_size / 1e6:7.2f} MB")
        print(f"{'total':8s} {total_wall:6.2f} s wall  {total_cpu:6.2f} s cpu  (target < 15 s)")
        w, c = time.perf_counter(), time.process_time()
        write_package(ctx, out / "package_reuse.zip", pdf_path=out / "report.pdf")
        print(f"package reusing the written PDF (pdf_path=...): {time.perf_counter() - w:.2f} s wall  "
              f"{time.process_time() - c:.2f} s cpu")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
