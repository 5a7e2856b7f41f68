"""Old vs new speed, interleaved in one run on this machine (issue 14).

    python -m benchmarks.bench_speed [--old-ref f5281b7^] [--images 16] [--sizes 2048 4096] [--skip-cli]
                                     [--skip-predict] [--rounds 3]

Prints, old and new side by side:
1. ``Detector.predict`` tiles/s at 224 px, batch 8, for fcdd-vgg11 and fcdd-vgg16 (and 512 px for fcdd-vgg16):
   old = fp32 (the path before bf16),
   new = the load-time choice (bf16 + channels_last on a CPU with native bf16). Target: new ≥ 2× old.
2. ``python -m core analyze`` end to end on N xBD 1024² images (../shared/data/xbd/harvey), the same model in
   both (:data:`SAME_MODEL`, the old code's default), ``--no-workspace``:
   old = a ``git archive`` of ``--old-ref`` (the code before this work), new = this
   checkout; each run in a fresh interpreter, old and new alternating. Target: ≥ 2×.
3. Fixed cost of ``python -m core analyze`` on a 64² image, old and new: the process's CPU-seconds (user + sys)
   from its start to the first tile reaching the model (``benchmarks/cli_first_tile.py``; target ≤ 2), and the
   whole run's. Python's bytecode is cached for both trees, as in any installed checkout (see :func:`_installed_env`).
4. End to end / model time at 2048² (``--sizes``; a Joplin tile repeated into a GeoTIFF): the pipeline's total
   against the seconds inside ``Detector.predict``, and against the same tiles predicted alone. Target ≤ 1.1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BDA_SHARED_DATA", REPO.parent / "shared" / "data"))
#: The model both CLI runs analyse with: the old code's bundled default (FCDD ResNet-18: the weights and calibration
#: bundled today as fcdd-resnet18.pt, renamed on 2026-12-07), so old and new differ only in code. Since 2026-12-06
#: the app's default is feature matching, a different and heavier model.
SAME_MODEL = REPO / "assets" / "models" / "fcdd-resnet18.pt"


def _predict_rate(det, tiles: np.ndarray, iters: int) -> tuple[float, float]:
    """(tiles per wall second, tiles per CPU second of this process) of ``det.predict``."""
    det.predict(tiles)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(iters):
        det.predict(tiles)
    n = len(tiles) * iters
    return n / (time.perf_counter() - t), n / (time.process_time() - c)


def bench_predict(rounds: int) -> None:
    from core.detection.detector import Detector
    from core.models import build_model

    for arch, size, count in (("fcdd-vgg11", 224, 8), ("fcdd-vgg16", 224, 8), ("fcdd-vgg16", 512, 2)):
        tiles = np.random.default_rng(0).integers(0, 255, (count, size, size, 3), dtype=np.uint8)
        torch.manual_seed(0)
        net = build_model(arch)  # untrained: speed does not depend on the weights
        old = Detector.from_model(net, precision="fp32")
        new = Detector.from_model(net)
        olds, news = [], []
        for _ in range(rounds):  # interleaved
            olds.append(_predict_rate(old, tiles, 2))
            news.append(_predict_rate(new, tiles, 2))
        (mo, co), (mn, cn) = np.median(olds, axis=0), np.median(news, axis=0)
        print(f"predict {arch:11s} {size}² x{count} old fp32 {mo:6.2f} tiles/s ({co:5.2f}/CPU-s)   "
              f"new {'bf16' if new.amp else 'fp32'} {mn:6.2f} tiles/s ({cn:5.2f}/CPU-s)   "
              f"{mn / mo:.2f}x wall, {cn / co:.2f}x CPU (target >= 2x)", flush=True)


def _cpu_run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**env, "PYTHONPATH": str(cwd)})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _installed_env(tmp: Path) -> dict[str, str]:
    """The environment of the CLI runs: Python's bytecode cached, as in any installed checkout.

    Sandboxes often set ``PYTHONDONTWRITEBYTECODE``, which makes every run compile the project's ~70 modules again
    (0.1–0.15 CPU-s here); a user's checkout caches them after its first run. Each tree gets its cache under
    ``tmp`` (``PYTHONPYCACHEPREFIX``), filled by a warm-up run; the repository is not written to."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def old_checkout(ref: str, dest: Path) -> Path:
    """The code at ``ref`` extracted (git archive) into ``dest`` (models included)."""
    dest.mkdir(parents=True, exist_ok=True)
    arch = subprocess.run(["git", "archive", ref], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=arch, check=True)
    return dest


def bench_cli(old: Path, n_images: int, tmp: Path, rounds: int = 3) -> None:
    imgs = sorted((DATA / "xbd/harvey/images").glob("*_post_disaster.png"))
    imgs += sorted((DATA / "xbd/harvey/images").glob("*_pre_disaster.png"))
    imgs = imgs[:n_images]
    if len(imgs) < n_images:
        print(f"analyze: only {len(imgs)} xBD images found under {DATA}; skipped")
        return
    from PIL import Image

    tiny = tmp / "tiny.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tiny)
    py, env = sys.executable, _installed_env(tmp)
    driver = REPO / "benchmarks" / "cli_first_tile.py"
    roots = (("old", old), ("new", REPO))

    def analyze(name: str, root: Path, args: list[str]) -> tuple[float, float, dict[str, float]]:
        out, report = tmp / f"out-{name}-{len(args)}", tmp / f"first-{name}.json"
        wall, cpu = _cpu_run([py, str(driver), str(report), "analyze", *args, "--out", str(out), "--no-workspace",
                              "--quiet", "--device", "cpu", "--model", str(SAME_MODEL)], root, env)
        shutil.rmtree(out, ignore_errors=True)
        return wall, cpu, json.loads(report.read_text())

    for name, root in roots:  # warm-up: fills each tree's bytecode cache (not counted)
        analyze(name, root, [str(tiny)])
    first: dict[str, list[tuple[float, float, float]]] = {"old": [], "new": []}
    for _ in range(rounds):  # fixed cost: old and new alternating, one fresh interpreter each
        for name, root in roots:
            wall, cpu, fig = analyze(name, root, [str(tiny)])
            first[name].append((fig["first_tile_cpu_s"], cpu, wall))
    (of, oc, ow), (nf, nc, nw) = (np.median(first[k], axis=0) for k in ("old", "new"))
    print(f"{'fixed cost (64² image)':28s} start to first tile: old {of:4.2f} new {nf:4.2f} CPU-s (target <= 2); "
          f"whole run: old {oc:4.2f} CPU-s {ow:4.2f} s wall, new {nc:4.2f} CPU-s {nw:4.2f} s wall "
          f"(medians of {rounds}, bytecode cached)", flush=True)
    args = [str(p) for p in imgs]
    res = {name: analyze(name, root, args) for name, root in roots}
    (ow, oc, _o), (nw, nc, _n) = res["old"], res["new"]
    print(f"analyze {len(imgs)} xBD 1024²{'':8s} old {ow:6.1f} s wall {oc:6.1f} CPU-s   new {nw:6.1f} s wall "
          f"{nc:6.1f} CPU-s   {ow / nw:.2f}x wall, {oc / nc:.2f}x CPU (target >= 2x)", flush=True)


def bench_e2e(tmp: Path, model: str | None, size: int) -> None:
    from benchmarks.bench_large_raster import make_raster
    from core.detection.detector import Detector
    from core.detection.pipeline import analyze_scene
    from core.detection.scene_grid import GridReader, plan_tiles
    from core.detection.tile_grid import pad_to
    from core.imagery.reader import open_scene

    raster = tmp / f"r{size}.tif"
    make_raster(raster, size)
    det = Detector.load(model, device="cpu")
    scene = open_scene(raster)
    c0 = time.process_time()
    res = analyze_scene(scene, det, tmp / f"o{size}")
    cpu_e2e = time.process_time() - c0
    tm = res.meta["timing"]
    plan = plan_tiles(scene.height, scene.width, det.tile_size, det.rf, budget_px=det.tile_budget_px())
    reader = GridReader(scene, plan)
    tiles = [pad_to(*reader.read(w), *plan.tile_hw)[0] for w in plan.windows]
    t, c0 = time.perf_counter(), time.process_time()
    for x in tiles:
        det.predict(x[None])
    alone, cpu_alone = time.perf_counter() - t, time.process_time() - c0
    scene.close()
    print(f"{size}² {det.arch}: {tm['tiles']} tiles {res.meta['tile_shape']}, end-to-end {tm['total_s']:.2f} s, "
          f"inside predict {tm['model_s']:.2f} s (ratio {tm['total_s'] / tm['model_s']:.2f}), same tiles predicted "
          f"alone {alone:.2f} s (ratio {tm['total_s'] / alone:.2f}); CPU-s end to end {cpu_e2e:.1f} vs the tiles "
          f"alone {cpu_alone:.1f} (ratio {cpu_e2e / cpu_alone:.2f}); tail after the last tile {tm['tail_s']:.2f} s "
          "(target <= 1.1)", flush=True)


def main() -> int:
    """Print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--old-ref", default="f5281b7^", help="git ref of the old code (default: before bf16 and tiling)")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default=None, help="model of the 2048² run (default: the bundled one)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[2048], help="raster sides of the end-to-end runs")
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--skip-predict", action="store_true")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bda-speed-"))
    try:
        if not a.skip_predict:
            bench_predict(a.rounds)
        for size in a.sizes:
            bench_e2e(tmp, a.model, size)
        if not a.skip_cli:
            bench_cli(old_checkout(a.old_ref, tmp / "old"), a.images, tmp, a.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
