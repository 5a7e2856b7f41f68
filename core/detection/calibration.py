"""Score calibration: raw FCDD/HSC anomaly values -> units that mean the same in every image.

Per-image min-max stretching paints every normal image as anomalous, so heatmaps are normalised globally against
statistics of the model's own held-out *normal* images, stored in the checkpoint at training time.

Calibrated pixel score ``s = (a - q50) / (q99 - q50)``: 0 is a median normal pixel, 1 is the 99th percentile of
normal pixels. Image scores use the same form with image-level quantiles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.i18n import _

_QS = (0.5, 0.9, 0.95, 0.99, 0.995, 0.999)


@dataclass(frozen=True)
class Calibration:
    """Normal-score statistics of a model and the default thresholds derived from them."""

    pixel_q50: float
    pixel_q99: float
    image_q50: float
    image_q99: float
    threshold: float  #: default pixel threshold for findings, calibrated units
    image_threshold: float  #: default image-verdict threshold, calibrated units
    n_images: int = 0
    pixel_quantiles: dict[str, float] | None = None
    image_quantiles: dict[str, float] | None = None

    def pixel(self, a: np.ndarray | float) -> np.ndarray | float:
        """Raw upsampled anomaly values -> calibrated pixel scores."""
        return (np.asarray(a, dtype=np.float32) - self.pixel_q50) / max(self.pixel_q99 - self.pixel_q50, 1e-12)

    def image(self, m: float) -> float:
        """Raw image score (FCDD: mean of A) -> calibrated image score."""
        return float((m - self.image_q50) / max(self.image_q99 - self.image_q50, 1e-12))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form stored in checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @classmethod
    def fit(cls, pixel_values: np.ndarray, image_scores: np.ndarray) -> Calibration:
        """Fit from raw anomaly values of held-out normal pixels (any shape) and normal image scores.

        Default thresholds: the 99.9th percentile of normal pixels for findings, the 99th percentile of normal
        image scores for the image verdict (both expressed in calibrated units).
        """
        px = np.asarray(pixel_values, dtype=np.float64).ravel()
        px = px[np.isfinite(px)]
        im = np.asarray(image_scores, dtype=np.float64).ravel()
        im = im[np.isfinite(im)]
        if px.size == 0 or im.size == 0:
            raise ValueError(_("calibration needs at least one finite normal pixel and image score"))
        pq = {str(q): float(v) for q, v in zip(_QS, np.quantile(px, _QS), strict=True)}
        iq = {str(q): float(v) for q, v in zip(_QS, np.quantile(im, _QS), strict=True)}
        p50, p99 = pq["0.5"], pq["0.99"]
        i50, i99 = iq["0.5"], iq["0.99"]
        if p99 - p50 <= 1e-12:  # degenerate (constant) maps: fall back to a scale from the spread
            p99 = p50 + max(float(px.std()), 1e-6)
        # image scores summarise pixels of the same units: with few calibration images (an area fitted to one or
        # two pre-event images) their spread can be nearly 0 and would blow calibrated image scores up to 10^5;
        # a spread of at least a quarter of the pixels' keeps them on the pixels' scale
        i99 = max(i99, i50 + 0.25 * (p99 - p50), i50 + 1e-6)
        thr = (pq["0.999"] - p50) / (p99 - p50)
        return cls(pixel_q50=p50, pixel_q99=p99, image_q50=i50, image_q99=i99,
                   threshold=float(max(thr, 1.0)), image_threshold=1.0, n_images=int(im.size),
                   pixel_quantiles=pq, image_quantiles=iq)
