"""FCDD's confetti noise: synthetic anomalies for training when no (or few) real anomalies are given.

Random blobs 8–54 px, rotated, coloured and softly blurred, blended into normal images (Liznerski et al., 2021).
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
