"""Quality figures of the bundled default model (and of an AIDER one-vs-rest model trained here).

    python -m benchmarks.bench_quality [--model assets/models/default.pt] [--skip-aider] [--json out.json]

1. xBD Harvey building-level AUROC (damaged vs no-damage) and tile-level AUROC of the model's post-event heatmaps.
2. Joplin chips_aligned pre vs post patch AUROC (the chips' area is excluded from the default model's training).
3. AIDER one-vs-rest: train on flood as normal with fire as outlier exposure on a split (every 5th image of each
   class held out), evaluate held-out flood vs held-out fire (image-level AUROC).
Needs ../shared/data (or BDA_SHARED_DATA); exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from core.detector import Detector
from core.evaluation import evaluate_images, evaluate_xbd
from core.training import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]

DATA = Path(os.environ.get("BDA_SHARED_DATA", REPO.parent / "shared" / "data"))


def aider_split(holdout_every: int = 5) -> tuple[list[str], list[str], list[str], list[str]]:
    """(train flood, train fire, held-out flood, held-out fire) as sorted path lists."""
    flood = sorted(str(p) for p in (DATA / "aider/flooded_areas").glob("*.jpg"))
    fire = sorted(str(p) for p in (DATA / "aider/fire").glob("*.jpg"))

    def split(xs: list[str]) -> tuple[list[str], list[str]]:
        return ([x for i, x in enumerate(xs) if i % holdout_every],
                [x for i, x in enumerate(xs) if not i % holdout_every])

    (ftr, fte), (xtr, xte) = split(flood), split(fire)
    return ftr, xtr, fte, xte


def aider_one_vs_rest(arch: str, size: int, epochs: int, steps: int) -> dict:
    """Train flood-normal / fire-OE on the training split; AUROC on the held-out split."""
    ftr, xtr, fte, xte = aider_split()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        train(TrainConfig(arch=arch, normal=ftr, anomalies=xtr, out=f"{tmp}/aider.pt", input_size=size,
                          epochs=epochs, steps_per_epoch=steps, batch_size=16, optimizer="adam", lr=1e-3,
                          confetti="mix", name="aider-flood-vs-fire"))
        secs = time.perf_counter() - t
        det = Detector.load(f"{tmp}/aider.pt")
        r = evaluate_images(det, fte, xte)
    return {"auroc": r["auroc"], "n_normal": r["n_normal"], "n_anomalous": r["n_anomalous"],
            "train_files": {"flood": len(ftr), "fire": len(xtr)}, "arch": arch, "input_size": size,
            "steps": epochs * steps, "train_seconds": round(secs, 1)}


def main() -> int:
    """Print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--skip-aider", action="store_true")
    ap.add_argument("--aider-arch", default="fcdd-resnet18")
    ap.add_argument("--aider-size", type=int, default=128)
    ap.add_argument("--aider-epochs", type=int, default=6)
    ap.add_argument("--aider-steps", type=int, default=50)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    a = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: real data not found at {DATA} (set BDA_SHARED_DATA)")
        return 0
    det = Detector.load(a.model)
    out: dict = {"model": det.info()}
    size = det.input_size
    x = evaluate_xbd(det, DATA / "xbd/harvey")
    out["xbd_harvey"] = {k: v for k, v in x.items() if k not in ("building_scores", "building_labels")}
    print(f"xBD Harvey building AUROC {x['building_auroc']:.3f} ({x['n_damaged']} damaged / {x['n_undamaged']} "
          f"undamaged), tile AUROC {x['tile_auroc']:.3f} ({x['n_tiles']} tiles); scene median alone "
          f"{x['building_auroc_scene_median']:.3f}, within-scene {x['building_auroc_within_scene']:.3f} "
          f"({x['images_with_both_classes']} of {x['images']} images hold both classes)", flush=True)
    chips = DATA / "geotiff/joplin_tornado_xview2deploy/chips_aligned"
    j = evaluate_images(det, [str(chips / "pre")], [str(chips / "post")], patch=size)
    out["joplin_chips"] = {k: v for k, v in j.items() if k not in ("scores", "labels")}
    print(f"Joplin chips pre vs post patch AUROC {j['auroc']:.3f} ({j['n_normal']}+{j['n_anomalous']} patches of "
          f"{size} px)", flush=True)
    if not a.skip_aider:
        r = aider_one_vs_rest(a.aider_arch, a.aider_size, a.aider_epochs, a.aider_steps)
        out["aider_flood_vs_fire"] = r
        print(f"AIDER one-vs-rest (flood normal, fire anomalous, held-out split) AUROC {r['auroc']:.3f} "
              f"({r['n_normal']} flood / {r['n_anomalous']} fire held out; {r['arch']} trained {r['steps']} steps "
              f"in {r['train_seconds']:.0f} s)", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
