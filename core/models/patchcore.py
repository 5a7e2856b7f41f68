"""Feature matching against a memory bank of normal patches (PatchCore; SPADE / PaDiM / PANDA lineage).

Roth et al., "Towards Total Recall in Industrial Anomaly Detection" (CVPR 2022). A *pretrained* trunk is not
trained at all; "fitting" stores locally aggregated mid-level features of normal imagery in a memory bank (reduced
by a greedy coreset, :mod:`core.models.coreset`), and a location's anomaly is the distance of its feature to the
nearest bank entry. That makes a normal model of one area in seconds to minutes on a CPU, from pre-event imagery of
that area, with no labels.

Embedding per map cell (stride 8): the trunk's last ``stages`` stages (:data:`STAGES` = 3 for new fits; VGG16:
conv2_2 at stride 2 and conv3_3 at stride 4, average-pooled to stride 8, and conv4_3), each 3×3 average-aggregated
(PatchCore's local neighbourhood) and concatenated, raw: 896 numbers for VGG16. Checkpoints written before the
count was stored used the last two (768) and load that way. The third stage adds finer texture: with the bundled
recipe, Harvey post-only building AUROC 0.890 -> 0.904 and Joplin chips 0.959 -> 0.973, within a Harvey scene
0.745 -> 0.735 (``assets/models/patchcore-vgg16.md``). Raw, not L2-normalised: the feature's magnitude carries what
is unusual about flood water or debris (smooth or cluttered surfaces); on xBD Harvey with a bank of the pre images,
building AUROC is 0.89 raw against 0.29 normalised.

The anomaly map is the mean Euclidean distance to the ``neighbours`` nearest bank features (k = :data:`NEIGHBOURS`
for new fits; checkpoints written before k was stored load with k = 1, the distance to the nearest one, as they were
fitted and calibrated). The bank is a coreset: each entry stands for a region of normal features, and one nearest
entry is a noisy estimate of how normal a cell is; the mean over a few is a smoother local density (SPADE's k-NN
mean, Cohen & Hoshen 2020). On this project's data a larger k ranked scenes apart better and buildings within a
scene about as well (``assets/models/patchcore-vgg16.md``); the image score is the mean of the
highest 1 % of cells (a robust maximum: damage is often a small part of a scene); a scene larger than one tile
scores the valid-area-weighted mean of its tiles' scores. Heatmaps are the
distance map upsampled with the receptive-field Gaussian, exactly like FCDD's, so calibration, thresholds, findings
and reports work unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ModelError
from core.i18n import _
from core.models.backbones import Trunk
from core.models.base import OneClassNet
from core.models.upsample import gaussian_upsample

#: Queries per chunk of the nearest-neighbour search (bounds memory at chunk × bank floats).
KNN_CHUNK = 4096
#: Nearest bank features whose mean distance is a cell's anomaly, for new fits.
NEIGHBOURS = 9
#: Most neighbours a model may average (bounds the search's top-k).
MAX_NEIGHBOURS = 256
#: How many of the trunk's last stages new fits embed.
STAGES = 3
#: Share of map cells whose mean is the image score.
TOP_SHARE = 0.01


def nearest_distance(queries: Tensor, bank: Tensor, chunk: int = KNN_CHUNK, k: int = 1) -> Tensor:
    """Mean Euclidean distance from each row of ``queries`` (Q, D) to its ``k`` nearest rows of ``bank`` (M, D),
    (Q,), in fp32 (k = 1: the distance to the nearest row; k is capped at M).

    Batched over queries (memory ``chunk × M``); ``‖q‖² − 2 q·m + ‖m‖²`` through one matrix product per chunk.
    Exact, in fp32 even under bf16 autocast: bf16 cancels badly in that sum for raw features, and a bf16 shortlist
    re-ranked in fp32 measured no faster end to end on an AMD CPU without AMX (10.7 vs 9.8 s and 12.9 vs 15.6 s per
    1024² image, interleaved), so the search stays exact. With AMX the bf16 product itself is 4.2× faster (4,096 ×
    896 queries against 12,288 entries: 0.078 vs 0.325 s; with the shortlist's top-32 0.19 vs 0.39 s exact): a
    lead for CPUs that have it, not measured end to end.
    """
    if bank.numel() == 0:
        raise ModelError(_("the feature bank is empty: fit the model on normal imagery first "
                           "(python -m core train --arch patchcore-... --normal ...)"))
    queries, bank = queries.float(), bank.float()
    bn = (bank * bank).sum(1)
    out = []
    for i in range(0, queries.size(0), chunk):
        q = queries[i:i + chunk]
        d2 = (q * q).sum(1, keepdim=True) - 2.0 * q @ bank.T + bn
        near = d2.min(1, keepdim=True).values if k == 1 else d2.topk(min(k, bank.size(0)), 1, largest=False).values
        out.append(near.clamp_min(0).sqrt().mean(1))
    return torch.cat(out) if out else queries.new_zeros(0)


def _whole(v: Any, lo: int, hi: int) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and lo <= v <= hi


class Aggregate(nn.AvgPool2d):
    """PatchCore's local neighbourhood aggregation: 3×3 average, stride 1 (counted in the receptive field)."""

    def __init__(self) -> None:
        super().__init__(kernel_size=3, stride=1, padding=1, count_include_pad=False)


class PatchCoreNet(OneClassNet):
    """Pretrained trunk + memory bank of normal cell embeddings; anomaly = distance to the nearest bank entry."""

    objective = "patchcore"
    family = "Feature matching (PatchCore)"
    trained_by_gradient = False
    learns_from_anomalies = False
    options = ("neighbours", "stages")
    neighbours: Tensor  #: k of the k-NN mean (an int64 scalar buffer)
    stages: Tensor  #: how many of the trunk's last stages the embedding takes (an int64 scalar buffer)
    #: The distance map is local (conv trunk + kNN per cell), so scenes run in the fewest large tiles. The image
    #: score is then the top-1 % mean over each large tile (the whole image up to the tile budget, ~2.4 Mpx in
    #: bf16), valid-area-weighted over tiles: 2.2-2.5x faster per 1024² image than 512-px tiles (36.9-40.0 s vs
    #: 16.1-19.8 s under load, interleaved), with identical heatmaps beyond the receptive field.
    tile_invariant = True

    def __init__(self, arch: str, backbone_name: str, backbone: Trunk, rf_layers: list[nn.Module],
                 stage_channels: list[int], pretrained: str = "none", sigma: float | None = None,
                 neighbours: int = NEIGHBOURS, stages: int = STAGES) -> None:
        if not _whole(neighbours, 1, MAX_NEIGHBOURS):
            raise ModelError(_("the number of nearest bank features averaged must be a whole number from 1 to "
                               "{most}, got {value!r}; give --neighbours in that range").format(
                                   most=MAX_NEIGHBOURS, value=neighbours))
        if not _whole(stages, 2, len(stage_channels)):
            raise ModelError(_("{arch} embeds 2 to {most} of its trunk's last stages, got {value!r}; give --stages "
                               "in that range").format(arch=arch, most=len(stage_channels), value=stages))
        agg = Aggregate()  # part of the receptive field
        super().__init__(arch, backbone_name, backbone, [*rf_layers, agg], pretrained, sigma)
        self.aggregate = agg
        self.stage_channels = list(stage_channels)
        self.dim = int(sum(stage_channels[-stages:]))
        self.register_buffer("bank", torch.zeros(0, self.dim))
        # k of the k-NN mean and the embedding's stages, stored in the checkpoint beside the bank they made
        self.register_buffer("neighbours", torch.tensor(neighbours, dtype=torch.int64))
        self.register_buffer("stages", torch.tensor(stages, dtype=torch.int64))
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone.eval()  # never batch statistics: the bank and the queries must see the same trunk

    @classmethod
    def from_trunk(cls, arch: str, backbone_name: str, trunk: Trunk, pretrained: str = "none",
                   **options: Any) -> PatchCoreNet:
        """Build over ``trunk``: the embedding takes its last ``stages`` stages (``trunk.stage_channels``)."""
        return cls(arch, backbone_name, trunk, trunk.layers(), trunk.stage_channels, pretrained=pretrained, **options)

    def train(self, mode: bool = True) -> PatchCoreNet:
        """The pretrained trunk always runs in eval mode (batch norms keep their statistics)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # fitted before these were stored: the nearest feature alone, the last two stages
        for key, legacy, least, most in (("neighbours", 1, 1, MAX_NEIGHBOURS),
                                         ("stages", 2, 2, len(self.stage_channels))):
            v = state_dict.setdefault(prefix + key, torch.tensor(legacy))
            if not (isinstance(v, Tensor) and v.numel() == 1 and not v.is_floating_point()
                    and least <= int(v) <= most):
                raise ModelError(_("{arch}: the checkpoint's {key} is not a whole number from {least} to {most}; the "
                                   "file is damaged: fit the model again").format(
                                       arch=self.arch, key=key, least=least, most=most))
            state_dict[prefix + key] = v.reshape(()).to(torch.int64)
        self.dim = int(sum(self.stage_channels[-int(state_dict[prefix + "stages"]):]))
        bank = state_dict.get(prefix + "bank")
        if isinstance(bank, Tensor):  # the bank's size is whatever fitting kept
            if bank.dim() != 2 or bank.size(1) != self.dim:
                raise ModelError(_("{arch}: the checkpoint's feature bank is {shape}, expected (M, {dim}); the file "
                                   "does not belong to this architecture: fit the model again").format(
                                       arch=self.arch, shape=tuple(bank.shape), dim=self.dim))
            self.bank = torch.empty_like(bank, dtype=torch.float32)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if not keep_vars:  # the bank is stored in half precision (half the file; distances change < 0.1 %)
            destination[prefix + "bank"] = self.bank.half()

    def embed(self, x: Tensor) -> Tensor:
        """Cell embeddings (N, D, h, w) at the model stride: the last ``stages`` trunk stages, each average-pooled to
        the model stride, 3×3-aggregated, concatenated."""
        self._check_input(x)
        stages = self.backbone.stages(x)[-int(self.stages):]
        hw = (int(stages[-1].shape[-2]), int(stages[-1].shape[-1]))
        parts = []
        for f in stages:
            f = f.float()
            if f.shape[-2:] != hw:
                f = F.adaptive_avg_pool2d(f, hw)
            parts.append(self.aggregate(f))
        return torch.cat(parts, 1)

    def set_bank(self, features: Tensor) -> None:
        """Store (M, D) normal features as the bank."""
        if features.dim() != 2 or features.size(1) != self.dim:
            raise ModelError(f"bank features must be (M, {self.dim}), got {tuple(features.shape)}")
        self.bank = features.detach().float().contiguous().to(self.bank.device)

    @property
    def output_description(self) -> str:
        """What :meth:`forward` returns, for people."""
        return "distance map (N,1,h,w)"

    def forward(self, x: Tensor) -> Tensor:
        """Distance map (N,1,h,w): every cell's mean distance to its ``neighbours`` nearest bank features."""
        e = self.embed(x)
        n, d, h, w = e.shape
        with torch.autocast(e.device.type, enabled=False):  # ‖q‖² − 2q·m + ‖m‖² cancels badly in bf16
            dist = nearest_distance(e.float().permute(0, 2, 3, 1).reshape(-1, d), self.bank, k=int(self.neighbours))
        return dist.view(n, 1, h, w)

    def anomaly(self, out: Tensor) -> Tensor:
        """The distance map itself, (N,1,h,w)."""
        return out

    def image_score(self, out: Tensor) -> Tensor:
        """Mean of the highest :data:`TOP_SHARE` of cells, (N,)."""
        flat = out.flatten(1)
        k = max(1, round(flat.size(1) * TOP_SHARE))
        return flat.topk(k, dim=1).values.mean(1)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """Refused: feature matching is fitted, not trained by gradient (its memory bank is built from normal
        imagery by :func:`core.learn.area_fit.fit_bank`)."""
        raise ModelError(_("{arch} is feature matching: it has no training loss. Fit it on normal imagery "
                           "(python -m core train --arch {arch} --normal ...), which builds its memory bank").format(
                               arch=self.arch))

    def heatmap(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Gaussian-upsampled distance map at the input's exact H×W (N,H,W) float32, and image scores (N,)."""
        with torch.no_grad():
            a = self(x).float()
            maps = gaussian_upsample(a, self.rf, (x.size(2), x.size(3)), self.sigma)
        return maps[:, 0].contiguous(), self.image_score(a)
