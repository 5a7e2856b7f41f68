"""The losses of the one-class objectives, as pure functions of scores and labels (``y = 1``: anomaly).

The nets (:mod:`core.models.fcdd`, :mod:`core.models.hsc`, :mod:`core.models.svdd`) compute their own per-sample
scores and hand them to these functions, so a score is written once, in the net, and a loss once, here.

* :func:`one_class_loss` (FCDD paper, Eq. 2; HSC, Ruff et al. 2020) on the pseudo-Huber score ``s``::

      mean over the batch of  (1 − y)·s − y·log(1 − exp(−s) + ε),   ε = :data:`EPS`

  Normal samples are pulled to s = 0, anomalies pushed to large s. Unlike the FCDD reference code, a batch made only
  of anomalies is trained as anomalies (the reference silently treats it as nominal). ``1 − exp(−s)`` is computed as
  ``−expm1(−s)``, the same number without cancellation for small s.
* :func:`svdd_loss` (Deep SVDD, Ruff et al. ICML 2018, one-class objective) on the squared distance ``d² = ‖z − c‖²``:
  the mean of ``d²`` over the *normal* samples of the batch; anomalies do not enter it (0 when there are none).
* :func:`sad_loss` (Deep SAD, Ruff et al. ICLR 2020, Eq. 4 without the weight-decay term, which the optimizer adds)::

      mean over the batch of  (1 − y)·d² + η·y·(d² + ε)^−1,   ε = :data:`SAD_EPS`

  Labelled anomalies are pushed away from the centre (their inverse distance is minimised); η weights them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.errors import ModelError

#: ε inside the FCDD/HSC log term: an anomaly at s = 0 costs −log ε ≈ 20.7, finite.
EPS = 1e-9
#: ε of Deep SAD's inverse distance (Ruff et al.'s reference code uses 1e-6): an anomaly at the centre costs η/ε.
SAD_EPS = 1e-6


def _labels(s: Tensor, y: Tensor) -> Tensor:
    if y.shape != s.shape:
        raise ModelError(f"labels must have one entry per sample: got {tuple(y.shape)} for {s.shape[0]} samples")
    return y.to(s.dtype)


def one_class_loss(s: Tensor, y: Tensor) -> Tensor:
    """``mean((1 − y)·s − y·log(1 − exp(−s) + ε))`` for scores ``s`` (N,) and labels ``y`` (N,), 1 = anomaly."""
    y = _labels(s, y)
    anomalous = -torch.log(-torch.expm1(-s) + EPS)
    return ((1 - y) * s + y * anomalous).mean()


def svdd_loss(d2: Tensor, y: Tensor) -> Tensor:
    """Mean squared distance ``d2`` (N,) of the normal samples (``y == 0``); anomalies are left out; 0 (with a
    gradient) for a batch without normal samples."""
    normal = 1 - _labels(d2, y)
    return (normal * d2).sum() / normal.sum().clamp_min(1)


def sad_loss(d2: Tensor, y: Tensor, eta: float = 1.0, eps: float = SAD_EPS) -> Tensor:
    """``mean((1 − y)·d² + η·y·(d² + ε)^−1)`` for squared distances ``d2`` (N,) and labels ``y`` (N,), 1 = anomaly."""
    y = _labels(d2, y)
    return ((1 - y) * d2 + eta * y / (d2 + eps)).mean()
