"""Peak memory and pipeline overhead on a large raster.

    python -m benchmarks.bench_large_raster [--size 20000] [--model M] [--threads 2] [--keep]

Generates a SIZE×SIZE RGB tiled GeoTIFF in a temp folder by repeating a real Joplin post tile (or noise when
../shared/data is absent), analyses it with `pipeline.analyze_scene` and prints: peak RSS (target ≤ 2 GB at
20000² on CPU), end-to-end seconds, seconds inside the model's forward passes (heatmap included) and their ratio
(target ≤ 1.3: reading, stitching and writing overlap with compute).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from core.detection.detector import Detector
from core.detection.pipeline import analyze_scene
from core.imagery.reader import open_scene

REPO = Path(__file__).resolve().parents[1]

DATA = Path(os.environ.get("BDA_SHARED_DATA", REPO.parent / "shared" / "data"))
TILE = DATA / "geotiff/joplin_tornado_xview2deploy/post/tile_31500-5137.tif"


def make_raster(path: Path, n: int) -> None:
    """Write an n×n tiled, deflate-compressed RGB GeoTIFF (a real tile repeated, or noise)."""
    if TILE.is_file():
        with rasterio.open(TILE) as src:
            t, crs, transform = src.read(), src.crs, src.transform
    else:
        t = np.random.default_rng(0).integers(0, 255, (3, 1024, 1024), dtype=np.uint8)
        crs, transform = "EPSG:32615", rasterio.transform.from_origin(500000, 4100000, 0.6, 0.6)
    reps = -(-n // t.shape[2])
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=3, dtype="uint8", crs=crs,
                       transform=transform, tiled=True, blockxsize=512, blockysize=512, compress="deflate",
                       zlevel=1, BIGTIFF="IF_SAFER") as ds:
        for r in range(0, n, t.shape[1]):
            h = min(t.shape[1], n - r)
            ds.write(np.concatenate([t[:, :h]] * reps, axis=2)[:, :, :n], window=Window(0, r, n, h))


def main() -> int:
    """Print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bda-large-"))
    raster = tmp / f"large_{a.size}.tif"
    t0 = time.perf_counter()
    make_raster(raster, a.size)
    mb = raster.stat().st_size / 1e6
    print(f"raster {a.size}x{a.size} written in {time.perf_counter() - t0:.0f} s ({mb:.0f} MB)", flush=True)
    det = Detector.load(a.model, device="cpu")
    scene = open_scene(raster)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 30 or done == total:
            last[0] = time.perf_counter()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"  {done}/{total} tiles, peak RSS {rss:.0f} MB", flush=True)

    res = analyze_scene(scene, det, tmp / "out", progress=progress)
    scene.close()
    tm = res.meta["timing"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model {det.name} ({det.arch}), tile {res.meta['tile_size']} px, overlap {res.meta['overlap']} px, "
          f"{tm['tiles']} tiles, {len(res.findings)} findings")
    print(f"peak RSS {peak:.0f} MB (target <= 2048 MB at 20000 px)")
    print(f"end-to-end {tm['total_s']:.1f} s, model forward {tm['model_s']:.1f} s, ratio "
          f"{tm['total_s'] / max(tm['model_s'], 1e-9):.2f} (target <= 1.3), reader wait {tm['read_wait_s']:.1f} s")
    if not a.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
