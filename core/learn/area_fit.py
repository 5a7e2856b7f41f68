"""Fit a feature-matching model (PatchCore) to normal imagery of an area: embed, coreset, calibrate. No gradients.

The normal images' training rows (everything but the held-out strip of each georeferenced scene, see
:class:`core.learn.samples.PatchPool`) are embedded whole, in windows of at most :data:`WINDOW` px, and every cell whose
window is at least 90 % valid becomes a candidate bank feature. A greedy coreset keeps ``bank_share`` of them, at
most ``bank_max`` (memory: ``bank_max × D × 4`` bytes, D = 768 for VGG16). The held-out strips calibrate the scores
exactly as for trained models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from rasterio.windows import Window

from core.detection.detector import IMAGENET_MEAN, IMAGENET_STD, to_tensor, use_bf16
from core.errors import TrainingDataError
from core.i18n import _
from core.imagery.nodata import read_valid
from core.learn.samples import PatchPool
from core.models.coreset import greedy_coreset
from core.models.patchcore import PatchCoreNet

#: Largest window embedded at once (px); bounds the trunk's activation memory.
WINDOW = 1024
#: Default share of candidate cells kept in the bank, and the cap.
BANK_SHARE = 0.1
BANK_MAX = 16_384
#: Candidate cells considered by the coreset at most (uniformly sampled beyond).
MAX_CANDIDATES = 50_000

Progress = Callable[[dict[str, Any]], None]


def frame_at_input_scale(rgb: np.ndarray, valid: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo (no georeferencing) resized so its short side is ``size`` px: the scale at which frames are scored
    (:func:`core.learn.evaluation.evaluate_images`) and calibrated (:meth:`PatchPool.grid`). The pool caches frames
    at twice that for FCDD's random crops; a bank built there matched features of another scale (AIDER fire vs
    flood: 0.67 with the bank at twice the scored scale)."""
    h, w = rgb.shape[:2]
    s = size / min(h, w)
    shape = (max(size, round(w * s)), max(size, round(h * s)))
    ok = np.ones((h, w), bool) if valid is None else valid
    return (cv2.resize(rgb, shape, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR),
            cv2.resize(ok.astype(np.uint8), shape, interpolation=cv2.INTER_NEAREST) > 0)


def _windows(pool: PatchPool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rgb, valid) windows covering the training rows of every image in ``pool``."""
    for it in pool.items:
        r_lo, r_hi = it.rows
        width = it.scene.width
        frame = None
        if not it.georef:  # a photo: embedded whole at the scale it is scored at
            rgb, valid = (it.cached, it.valid) if it.cached is not None else read_valid(it.scene)
            frame = frame_at_input_scale(rgb, valid, pool.patch)
            r_lo, r_hi, width = 0, frame[0].shape[0], frame[0].shape[1]
        for r in range(r_lo, r_hi, WINDOW):
            for c in range(0, width, WINDOW):
                h, w = min(WINDOW, r_hi - r), min(WINDOW, width - c)
                if h < 32 or w < 32:
                    continue
                if frame is not None:
                    rgb, valid = frame[0][r:r + h, c:c + w], frame[1][r:r + h, c:c + w]
                elif it.cached is not None and it.valid is not None:
                    rgb, valid = it.cached[r:r + h, c:c + w], it.valid[r:r + h, c:c + w]
                else:
                    rgb, valid = read_valid(it.scene, Window(c, r, w, h))
                for r0, c0, r1, c1 in it.exclude:  # excluded areas (held-out evaluation imagery) are never banked
                    rr0, rr1, cc0, cc1 = max(r0 - r, 0), min(r1 - r, h), max(c0 - c, 0), min(c1 - c, w)
                    if rr0 < rr1 and cc0 < cc1:
                        valid = valid.copy()
                        valid[rr0:rr1, cc0:cc1] = False
                if valid.any():
                    yield rgb, valid


def embed_pool(net: PatchCoreNet, pool: PatchPool, device: torch.device, progress: Progress | None = None,
               should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
    """Cell embeddings (M, D) of every valid cell of the pool's training rows."""
    feats: list[torch.Tensor] = []
    bf16 = use_bf16(device)  # the same precision the detector will query the bank with
    wins = list(_windows(pool))
    bar = None
    if progress is None:  # the CLI: a progress bar
        from tqdm import tqdm

        bar = tqdm(total=len(wins), desc="embedding normal imagery", unit="window")
    for k, (rgb, valid) in enumerate(wins):
        if should_stop is not None and should_stop():
            break
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            e = net.embed(to_tensor(rgb[None], IMAGENET_MEAN, IMAGENET_STD).to(device))[0].float()
        h, w = e.shape[-2:]
        ok = F.adaptive_avg_pool2d(torch.from_numpy(valid.astype(np.float32))[None, None], (h, w))[0, 0] >= 0.9
        feats.append(e.permute(1, 2, 0)[ok.to(e.device)].cpu())
        if progress is not None:
            progress({"event": "embed", "done": k + 1, "total": len(wins), "cells": sum(len(f) for f in feats)})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if not feats or sum(len(f) for f in feats) == 0:
        raise TrainingDataError(_("no valid normal pixels to fit the feature bank; give normal images of the area"))
    return torch.cat(feats)


def fit_bank(net: PatchCoreNet, pool: PatchPool, device: torch.device, *, bank_share: float = BANK_SHARE,
             bank_max: int = BANK_MAX, seed: int = 0, progress: Progress | None = None,
             should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Embed ``pool`` and store a greedy coreset of it as ``net``'s bank; return what was done (for the metadata)."""
    t0 = time.perf_counter()
    net.eval()
    feats = embed_pool(net, pool, device, progress, should_stop)
    t_embed = time.perf_counter() - t0
    size = int(min(bank_max, max(1, round(len(feats) * bank_share))))
    if progress is not None:
        progress({"event": "coreset", "cells": len(feats), "bank": size})
    idx = greedy_coreset(feats, size, max_candidates=MAX_CANDIDATES, seed=seed)
    net.set_bank(feats[idx].to(device))
    return {"cells": int(len(feats)), "bank": int(len(idx)), "bank_share": bank_share, "bank_max": bank_max,
            "neighbours": int(net.neighbours),
            "embed_seconds": round(t_embed, 1), "coreset_seconds": round(time.perf_counter() - t0 - t_embed, 1)}
