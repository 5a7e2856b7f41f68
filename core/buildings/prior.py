"""The calibration's prior: where damage begins before any analyst label, read from all buildings' scores.

The few-label calibration (:mod:`core.buildings.calibrate`) is a Bayesian logistic pulled towards this prior, so the
prior decides the grades when the labels hold one class or a single damaged building, which is most of the time
with 20 random labels and a few per cent of buildings damaged.

What it reads: ``u``, the average of a building's mean, 90th percentile and context ring on the primary map (the
change heatmap when there is one, else the anomaly heatmap). Why not a fixed cut in calibrated units: those units
say how unusual a pixel is against the *model's* normal pixels, but a real pre/post pair differs everywhere
(season, light, water, registration), so the level of intact buildings moves from model to model and scene to
scene: on xBD Harvey the intact buildings sit at 0.4 on one bundled model's change map and at 3.7 on another's.

How: a two-component Gaussian mixture over ``u`` of every analysed building (EM, deterministic start at the 25th
and 90th percentiles): the upper component is taken as damage, and the prior boundary is where the two components'
weighted densities cross between their means (P(damage) = 0.5 under the mixture). The slope is
:data:`SLOPE_PER_SPREAD` logits per robust spread of ``u`` (its 10-90 % range / 2.563, σ for a normal). With fewer
than :data:`MIN_MIXTURE` buildings, or scores with no spread, the boundary falls back to
:data:`FALLBACK_BOUNDARY` calibrated units (the normal pixels' 99th percentile) and the slope to
:data:`FALLBACK_SLOPE` per unit.

Floor: the boundary is never below :data:`MIN_BOUNDARY` calibrated units (1 = the 99th percentile of the model's
normal pixels, or of no-change pixels on a change map): a building the model does not find unusual is not called
damaged. The mixture always finds an upper component, so without the floor an analysis where nothing is damaged
started with its top few per cent called damaged: on the four co-registered Joplin *pre-event* chips (77 intact
footprints, the default model) 9 buildings were graded damaged at u 0.46-0.57, while the post chips' buildings sit
at a median u of 0.82 (pre: 0.32). Undamaged labels still move the boundary up
(:func:`core.buildings.calibrate.fit_logistic`) as far as the labels show.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Statistics of the primary map averaged into the prior's score ``u``.
PRIOR_STATS = ("mean", "q90", "ring")
#: Fewest analysed buildings the mixture is fitted on.
MIN_MIXTURE = 8
#: Prior slope: logits per robust spread of ``u``.
SLOPE_PER_SPREAD = 4.0
#: Fallback boundary (calibrated units: the 99th percentile of normal pixels) and slope (logits per unit).
FALLBACK_BOUNDARY = 1.0
FALLBACK_SLOPE = 4.0
#: The lowest prior boundary (calibrated units): below the 99th percentile of normal pixels nothing is "damaged".
MIN_BOUNDARY = 1.0
_EM_ITERS = 200


@dataclass(frozen=True)
class PriorFit:
    """The prior's boundary and slope on ``u``, how they were found, and the mixture's share of damage."""

    boundary: float
    slope: float
    method: str  #: "mixture" or "fallback"
    damaged_share: float | None = None  #: weight of the upper component
    means: tuple[float, float] | None = None
    n: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


def robust_spread(u: np.ndarray) -> float:
    """σ of a normal with the same 10-90 % range as ``u``."""
    q = np.percentile(u, [10, 90])
    return float((q[1] - q[0]) / 2.563)


def two_gaussians(u: np.ndarray, iters: int = _EM_ITERS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means, standard deviations and weights (lower component first) of a 2-component Gaussian mixture fitted to
    the 1-D ``u`` by EM from a fixed start (deterministic)."""
    x = np.asarray(u, dtype=float)
    floor = max(1e-3 * float(np.ptp(x)), 1e-9)  # no component collapses onto one repeated value
    mu = np.percentile(x, [25, 90]).astype(float)
    sd = np.full(2, max(float(x.std()) / 2, floor))
    w = np.array([0.8, 0.2])
    for _ in range(iters):
        ll = -0.5 * ((x[:, None] - mu) / sd) ** 2 - np.log(sd) + np.log(w)
        r = np.exp(ll - ll.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0) + 1e-12
        w = nk / len(x)
        mu = (r * x[:, None]).sum(axis=0) / nk
        sd = np.maximum(np.sqrt((r * (x[:, None] - mu) ** 2).sum(axis=0) / nk), floor)
    o = np.argsort(mu)
    return mu[o], sd[o], w[o]


def crossing(mu: np.ndarray, sd: np.ndarray, w: np.ndarray, steps: int = 2001) -> float:
    """The lowest point between the two means where the upper component's weighted density reaches the lower's
    (the upper mean when it never does)."""
    g = np.linspace(mu[0], mu[1], steps)
    lo = np.log(w[0]) - np.log(sd[0]) - 0.5 * ((g - mu[0]) / sd[0]) ** 2
    hi = np.log(w[1]) - np.log(sd[1]) - 0.5 * ((g - mu[1]) / sd[1]) ** 2
    above = hi >= lo
    return float(g[int(np.argmax(above))] if above.any() else g[-1])


def fit_prior(u: np.ndarray) -> PriorFit:
    """The prior on the buildings' scores ``u`` (module docstring); non-finite values are left out."""
    x = np.asarray(u, dtype=float)
    x = x[np.isfinite(x)]
    spread = robust_spread(x) if len(x) else 0.0
    if len(x) < MIN_MIXTURE or spread <= 1e-9:
        return PriorFit(FALLBACK_BOUNDARY, FALLBACK_SLOPE, "fallback", n=len(x))
    mu, sd, w = two_gaussians(x)
    return PriorFit(max(crossing(mu, sd, w), MIN_BOUNDARY), SLOPE_PER_SPREAD / spread, "mixture",
                    damaged_share=float(w[1]), means=(float(mu[0]), float(mu[1])), n=len(x))


def primary_columns(features: list[str]) -> list[int]:
    """Columns of ``features`` holding :data:`PRIOR_STATS` of the primary map (change when present, else post)."""
    primary = next((m for m in ("change", "post") if any(f.startswith(f"{m}_") for f in features)), None)
    return [features.index(f"{primary}_{st}") for st in PRIOR_STATS if f"{primary}_{st}" in features]


def prior_weights(features: list[str], X: np.ndarray, c: np.ndarray, s: np.ndarray) -> tuple[
        np.ndarray, float, PriorFit | None]:
    """Weights and intercept, in the calibration's standardised units (``(X - c) / s``), of the prior logistic
    ``slope · (u - boundary)`` fitted on the raw feature rows ``X`` of every analysed building."""
    w0 = np.zeros(len(features))
    cols = primary_columns(features)
    if not cols:
        return w0, 0.0, None
    sub = X[:, cols]
    ok = np.isfinite(sub)
    n = ok.sum(axis=1)
    u = np.where(n > 0, np.where(ok, sub, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)  # mean of those present
    fit = fit_prior(u)
    k = len(cols)
    b0 = -fit.slope * fit.boundary
    for j in cols:  # slope/k per unit of each statistic; the centre c moves into the intercept
        w0[j] = fit.slope / k * s[j]
        b0 += fit.slope / k * c[j]
    return w0, float(b0), fit
