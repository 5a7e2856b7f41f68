"""Synthetic anomalies for training when no (or few) real anomalies are given.

``confetti``: FCDD's confetti noise, random blobs 8–54 px, rotated, coloured and softly blurred, blended into normal
images (Liznerski et al., 2021). ``region``: a disaster-shaped variant of the same idea: one large irregular region
(a fifth to a half of the patch) whose texture is replaced by a smooth, low-frequency surface in earth/water
tones (standing water, mud, ash) or by the scene's own material shuffled into clutter (debris) — the region-scale
changes that small confetti blobs do not teach.
"""

from __future__ import annotations

import cv2
import numpy as np


def confetti(rgb: np.ndarray, rng: np.random.Generator, n_blobs: tuple[int, int] = (1, 8),
             size: tuple[int, int] = (8, 54)) -> tuple[np.ndarray, np.ndarray]:
    """Return (rgb uint8 with blobs blended in, float mask in [0,1] of where blobs are).

    Each blob is a rotated rectangle or ellipse of side ``size`` px with a random colour (or a random grey / dark
    'burn' tone), blended with a Gaussian-blurred alpha so edges are not perfectly sharp.
    """
    h, w = rgb.shape[:2]
    out = rgb.astype(np.float32)
    total = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(n_blobs[0], n_blobs[1] + 1))):
        bw, bh = (int(v) for v in rng.integers(size[0], size[1] + 1, size=2))
        cx, cy = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        angle = float(rng.uniform(0, 180))
        mask = np.zeros((h, w), np.uint8)
        if rng.random() < 0.5:
            box = cv2.boxPoints(((cx, cy), (bw, bh), angle)).astype(np.int32)
            cv2.fillConvexPoly(mask, box, 255)
        else:
            cv2.ellipse(mask, ((cx, cy), (bw, bh), angle), 255, -1)
        k = int(rng.choice([1, 3, 5]))
        alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (k, k), 0) if k > 1 else mask / 255.0
        alpha *= float(rng.uniform(0.6, 1.0))
        kind = rng.random()
        if kind < 0.5:
            colour = rng.uniform(0, 255, size=3)
        elif kind < 0.75:
            colour = np.full(3, rng.uniform(0, 60))  # dark, like char or debris shadow
        else:
            colour = np.full(3, rng.uniform(150, 255))  # bright, like exposed material
        if rng.random() < 0.3:  # textured blob
            noise = rng.normal(0, 25, size=(h, w, 1)).astype(np.float32)
            fill = np.clip(colour[None, None, :] + noise, 0, 255)
        else:
            fill = colour[None, None, :]
        out = out * (1 - alpha[..., None]) + fill * alpha[..., None]
        total = np.maximum(total, alpha)
    return np.clip(out, 0, 255).astype(np.uint8), total


def _smooth_field(h: int, w: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    """Low-frequency noise in [0,1] (bicubic upsampling of a coarse random grid)."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def region(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (rgb uint8 with one large smooth or cluttered region blended in, float mask of the region)."""
    h, w = rgb.shape[:2]
    mask = (_smooth_field(h, w, rng, int(rng.integers(2, 5))) > rng.uniform(0.45, 0.7)).astype(np.float32)
    if mask.mean() < 0.1:  # make sure something sizeable is there
        cv2.ellipse(mask, ((w / 2, h / 2), (w * 0.6, h * 0.4), float(rng.uniform(0, 180))), 1.0, -1)
    k = 2 * int(max(h, w) * 0.02) + 1
    alpha = cv2.GaussianBlur(mask, (k, k), 0) * float(rng.uniform(0.75, 1.0))
    x = rgb.astype(np.float32)
    if rng.random() < 0.7:  # smooth surface: water / mud / ash / sand, keeps a trace of the scene below
        tone = rng.uniform([60, 50, 30], [170, 150, 120]) if rng.random() < 0.6 else rng.uniform(20, 200, 3)
        shade = 0.8 + 0.4 * _smooth_field(h, w, rng, 6)[..., None]
        fill = tone[None, None, :] * shade + 0.15 * (x - x.mean())
    else:  # clutter: a debris field made of the scene's own material, blocks shuffled and darkened
        b = int(rng.integers(3, 9))
        gh, gw = -(-h // b), -(-w // b)
        pad = np.pad(x, ((0, gh * b - h), (0, gw * b - w), (0, 0)), mode="reflect")
        blocks = pad.reshape(gh, b, gw, b, 3).transpose(0, 2, 1, 3, 4).reshape(gh * gw, b, b, 3)
        blocks = blocks[rng.permutation(gh * gw)] * rng.uniform(0.6, 1.1, (gh * gw, 1, 1, 1))
        fill = blocks.reshape(gh, gw, b, b, 3).transpose(0, 2, 1, 3, 4).reshape(gh * b, gw * b, 3)[:h, :w]
    out = x * (1 - alpha[..., None]) + fill * alpha[..., None]
    return np.clip(out, 0, 255).astype(np.uint8), alpha
