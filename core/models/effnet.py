"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile/edge: no squeeze-excitation, ReLU6, fixed stem
and head) written out here, truncated like the project's other trunks.

Layout of the full network (width and depth multipliers 1.0)::

    stem   conv3×3 s2 → 32, BN, ReLU6                                       stride 2
    stage1 MBConv1 k3 s1 → 16  ×1   (blocks 0)                               stride 2
    stage2 MBConv6 k3 s2 → 24  ×2   (blocks 1–2)                             stride 4
    stage3 MBConv6 k5 s2 → 40  ×2   (blocks 3–4)                             stride 8   ← default cut
    stage4 MBConv6 k3 s2 → 80  ×3   (blocks 5–7)                             stride 16
    stage5 MBConv6 k5 s1 → 112 ×3   (blocks 8–10)                            stride 16  ← "-s16" cut
    stage6 MBConv6 k5 s2 → 192 ×4, stage7 MBConv6 k3 s1 → 320 ×1, head conv1×1 → 1280 (not built)

An MBConv block: 1×1 expansion (absent when the ratio is 1), BN, ReLU6; depthwise k×k (the block's stride), BN,
ReLU6; 1×1 projection, BN (no activation); plus the input when stride is 1 and the channels match (no drop-connect
at inference). Batch norms use TensorFlow's ε = 1e-3, as the weights were trained with.

Padding is symmetric (``k // 2``), not TensorFlow's input-size-dependent "SAME" (which pads stride-2 layers more at
the bottom/right): the receptive-field arithmetic (:mod:`core.models.receptive`) needs one fixed geometry. On even
input sizes this shifts each stride-2 layer's sampling grid by one input pixel; the features are the same filters,
and the classifier's top-1 on a real photograph is unchanged (tests/test_effnet.py).

Measured as feature matching (``patchcore-effnet-lite0``, bank fitted with assets/models/train_patchcore.sh's recipe,
``python -m benchmarks.bench_quality --skip-aider``, 2026-12-06): Harvey building AUROC post-only 0.738 (within scene
0.666), change 0.983 (0.435), Joplin chips 0.685, against HED VGG16's 0.866 (0.752), 0.990 (0.683), 0.812; about half
VGG16's seconds per 1024² (59 s vs 121 s interleaved on a heavily shared 2-core CPU). Adding the stride-16 blocks
5-10 upsampled to stride 8 (PatchCore's layer2 + layer3 recipe) measured worse (post-only 0.623, Joplin 0.519), so
the trunk stops at stride 8.
"""

from __future__ import annotations

import torch
from torch import nn

from core.models.backbones import Trunk

#: TensorFlow's batch-norm epsilon, which the EfficientNet weights were trained with.
BN_EPS = 1e-3

#: (kernel, stride, expand ratio, out channels, repeats) of the seven stages of EfficientNet-Lite0.
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1),
)
STEM_CHANNELS = 32


class ConvBN(nn.Sequential):
    """Conv (no bias, symmetric padding) + BN (ε 1e-3) + optional ReLU6: ``conv``, ``bn`` (and ``act``)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        if act:
            self.act = nn.ReLU6(inplace=True)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (EfficientNet-Lite)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid, 1) if expand != 1 else None
        self.depthwise = ConvBN(mid, mid, k, stride, groups=mid)
        self.project = ConvBN(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout
        self.stride, self.out_channels = stride, cout

    def main_path(self) -> list[nn.Module]:
        """Modules of the main path in order (the identity skip adds nothing to the receptive field)."""
        return [m for m in (self.expand, self.depthwise, self.project) if m is not None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N,cin,H,W) -> (N,cout,H/stride,W/stride)."""
        y = x
        for m in self.main_path():
            y = m(y)
        return y + x if self.residual else y


def lite0_blocks(n_blocks: int) -> list[MBConv]:
    """The first ``n_blocks`` MBConv blocks of EfficientNet-Lite0, in order (indices as in the weights file)."""
    blocks: list[MBConv] = []
    cin = STEM_CHANNELS
    for k, stride, expand, cout, repeats in LITE0_STAGES:
        for r in range(repeats):
            if len(blocks) == n_blocks:
                return blocks
            blocks.append(MBConv(cin, cout, k, stride if r == 0 else 1, expand))
            cin = cout
    if len(blocks) < n_blocks:
        raise ValueError(f"EfficientNet-Lite0 has {len(blocks)} blocks, not {n_blocks}")
    return blocks


class EfficientNetLiteTrunk(Trunk):
    """EfficientNet-Lite0 stem + its first ``n_blocks`` MBConv blocks (5: stride 8, 40 channels; 11: stride 16,
    112 channels). Parameter names: ``stem.conv``, ``stem.bn``, ``blocks.N.{expand,depthwise,project}.{conv,bn}``."""

    def __init__(self, n_blocks: int = 5) -> None:
        super().__init__()
        self.stem = ConvBN(3, STEM_CHANNELS, 3, stride=2)
        blocks = lite0_blocks(n_blocks)
        self.blocks = nn.Sequential(*blocks)
        # stages end where the next block strides (and at the output): indices of their last blocks
        self._stage_ends = [i - 1 for i in range(1, len(blocks)) if blocks[i].stride != 1] + [len(blocks) - 1]
        self.stage_channels = [blocks[i].out_channels for i in self._stage_ends]  #: channels of :meth:`stages`
        self.out_channels = blocks[-1].out_channels
        self._init()

    def _init(self) -> None:
        for m in self.modules():  # torchvision EfficientNet's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def layers(self) -> list[nn.Module]:
        """Modules in execution order, for receptive-field tracking."""
        return [self.stem, self.blocks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) -> (N,C,H/s,W/s)."""
        out: torch.Tensor = self.blocks(self.stem(x))
        return out

    def last_stage(self) -> list[nn.Module]:
        """The blocks at the output's resolution (fine-tuned when the rest is frozen)."""
        start = self._stage_ends[-2] + 1 if len(self._stage_ends) > 1 else 0
        return list(self.blocks)[start:]

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last activation at each resolution, finest first (Lite0 cut at block 5: strides 2, 4, 8)."""
        x = self.stem(x)
        outs = []
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i in self._stage_ends:
                outs.append(x)
        return outs
