"""The torchvision VGG and ResNet layers the trunks use, built without importing torchvision.

``import torchvision`` loads all of torchvision (its detection ops import ``torch._dynamo``, sympy and triton):
about 1.5 CPU-s before an analysis can start, for four layer recipes. These builders make the same modules, with
the same parameter names, and draw random initial weights in the same order from the same generator, so a seeded
untrained trunk and a torchvision state_dict are exactly what they were with torchvision (tests/test_models.py
compares both with torchvision's own classes).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

#: torchvision.models.vgg.cfgs: channels per conv, "M" a 2×2 max-pool.
VGG_CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


@dataclass(frozen=True)
class HubWeights:
    """Where torchvision's DEFAULT ImageNet weights of a trunk come from (only the file name is used: the torch
    hub cache is looked up, nothing is downloaded)."""

    url: str


VGG11_BN = HubWeights("https://download.pytorch.org/models/vgg11_bn-6002323d.pth")
VGG16_BN = HubWeights("https://download.pytorch.org/models/vgg16_bn-6c64b313.pth")
RESNET18 = HubWeights("https://download.pytorch.org/models/resnet18-f37072fd.pth")
RESNET50 = HubWeights("https://download.pytorch.org/models/resnet50-11ad3fa6.pth")


def vgg_make_layers(cfg: list[int | str], batch_norm: bool = False) -> nn.Sequential:
    """torchvision.models.vgg.make_layers."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            assert isinstance(v, int)
            conv = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            layers += [conv, nn.BatchNorm2d(v), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, groups=1, bias=False, dilation=1)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock (same attributes and forward)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """conv-bn-relu-conv-bn + identity (or downsample), relu."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        y: Tensor = self.relu(out + identity)
        return y


class Bottleneck(nn.Module):
    """torchvision.models.resnet.Bottleneck (ResNet V1.5: stride on the 3×3 conv)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """1×1, 3×3, 1×1 convs with batch norm + identity (or downsample), relu."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        y: Tensor = self.relu(out + identity)
        return y


class ResNet(nn.Module):
    """torchvision.models.resnet.ResNet with its default arguments (all layers and ``fc`` are built, so random
    initialisation draws the same numbers in the same order; the trunk keeps the stem, layer1 and layer2)."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)


def resnet18(weights: None = None) -> ResNet:
    """torchvision.models.resnet18(weights=None)."""
    return ResNet(BasicBlock, [2, 2, 2, 2])


def resnet50(weights: None = None) -> ResNet:
    """torchvision.models.resnet50(weights=None)."""
    return ResNet(Bottleneck, [3, 4, 6, 3])
