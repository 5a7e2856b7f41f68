"""Greedy coreset selection (k-center) for feature banks, as in PatchCore, with bounded memory and time.

Greedy k-center picks, one at a time, the feature farthest from everything picked so far, so the kept subset
covers the whole feature distribution (rare normal patterns survive, unlike random subsampling). Distances are
computed on a random Gaussian projection to ``proj_dim`` dimensions (Johnson-Lindenstrauss; PatchCore does the
same), and the candidates are capped at ``max_candidates`` by uniform sampling first, so the cost is
``O(max_candidates × size × proj_dim)`` whatever the amount of imagery.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def greedy_coreset(features: Tensor, size: int, *, proj_dim: int = 64, max_candidates: int = 50_000,
                   seed: int = 0) -> Tensor:
    """Indices (into ``features`` (N, D)) of a greedy k-center coreset of ``size`` rows (all rows when N ≤ size)."""
    n = features.size(0)
    if size <= 0 or n == 0:
        return torch.zeros(0, dtype=torch.long)
    if n <= size:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    cand = torch.randperm(n, generator=g)[:max_candidates] if n > max_candidates else torch.arange(n)
    x = features[cand].float()
    if x.size(1) > proj_dim:
        proj = torch.randn(x.size(1), proj_dim, generator=g) / proj_dim ** 0.5
        x = x @ proj
    xs = x.contiguous().numpy()
    norms = (xs * xs).sum(1)
    picked = np.empty(size, dtype=np.int64)
    nxt = int(torch.randint(xs.shape[0], (1,), generator=g))
    dist = np.full_like(norms, np.inf)
    tmp = np.empty_like(norms)
    # numpy, not torch: thousands of small steps, where torch's thread pool costs more than the arithmetic on a busy
    # machine (measured 45 ms against 3 ms a step on 2 shared cores), and torch's thread count is the server's
    for i in range(size):
        picked[i] = nxt
        np.dot(xs, xs[nxt], out=tmp)  # ‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖², the running minimum updated in place
        tmp *= -2.0
        tmp += norms
        tmp += norms[nxt]
        np.minimum(dist, tmp, out=dist)
        nxt = int(dist.argmax())
    return cand[torch.from_numpy(picked)]
