"""The U-Net variant of Payer et al.: average-pool down, linear upsampling, constant width.

MONAI's U-Nets double the width per level and use strided/transposed convolutions; the
paper's network keeps one width on every level, pools by averaging and upsamples
linearly, so it is written here. Its convolution blocks are plain PyTorch laid out as
MONAI's ``Convolution`` (``conv``, then ``adn`` with ``N``, ``A``, ``D``): the same
state_dict keys, initialisation and outputs (Testing/test_training_pack.py), so that weights
trained either way load, and training runs on machines without MONAI.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_NORMS = {"instance": nn.InstanceNorm3d, "batch": nn.BatchNorm3d}


class ConvADN(nn.Sequential):
    """Conv3d ('same' zero padding) -> ``adn``: [norm ``N``] -> leaky ReLU ``A`` -> [dropout ``D``]."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, negative_slope: float, dropout: float, norm
    ):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)
        adn = nn.Sequential()
        if norm:
            if norm.lower() not in _NORMS:
                raise ValueError(f"unknown norm {norm!r}; known: {sorted(_NORMS)}")
            adn.add_module("N", _NORMS[norm.lower()](out_channels, affine=True))
        adn.add_module("A", nn.LeakyReLU(negative_slope))
        if dropout > 0:
            adn.add_module("D", nn.Dropout(dropout))
        self.adn = adn


def conv_block(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    negative_slope: float,
    dropout: float,
    norm: str | None = None,
) -> nn.Module:
    """Conv3d (zero padding, 'same' size) -> [norm] -> leaky ReLU -> dropout, He-initialised.

    The paper has no normalisation (``norm=None``); ``"instance"`` is an option that makes
    small-budget (CPU) training converge much faster.
    """
    block = ConvADN(in_channels, out_channels, kernel_size, negative_slope, dropout, norm)
    nn.init.kaiming_normal_(block.conv.weight, a=negative_slope, mode="fan_in", nonlinearity="leaky_relu")
    nn.init.zeros_(block.conv.bias)
    return block


class UNetAvgLinear3D(nn.Module):
    """Feature extractor: ``num_levels`` levels of ``convs_per_level`` convolutions, all ``num_filters`` wide.

    Input sizes must be divisible by ``2 ** (num_levels - 1)`` (see :attr:`size_divisor`);
    the output has ``num_filters`` channels at the input resolution (add a head on top).
    """

    def __init__(
        self,
        in_channels: int,
        num_filters: int = 64,
        num_levels: int = 5,
        convs_per_level: int = 2,
        dropout: float = 0.0,
        negative_slope: float = 0.1,
        kernel_size: int = 3,
        norm: str | None = None,
    ):
        super().__init__()
        if num_levels < 1:
            raise ValueError("num_levels must be >= 1")
        self.num_levels = num_levels

        def convs(first_in: int) -> nn.Sequential:
            layers = [conv_block(first_in, num_filters, kernel_size, negative_slope, dropout, norm)]
            layers += [
                conv_block(num_filters, num_filters, kernel_size, negative_slope, dropout, norm)
                for _ in range(convs_per_level - 1)
            ]
            return nn.Sequential(*layers)

        self.down = nn.ModuleList([convs(in_channels if i == 0 else num_filters) for i in range(num_levels)])
        self.up = nn.ModuleList([convs(2 * num_filters) for _ in range(num_levels - 1)])
        self.out_channels = num_filters

    @property
    def size_divisor(self) -> int:
        return 2 ** (self.num_levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            if level > 0:
                x = F.avg_pool3d(x, kernel_size=2)
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in reversed(self.up):
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = block(torch.cat([skip, x], dim=1))
        return x


def head(in_channels: int, out_channels: int, init_std: float | None = None) -> nn.Conv3d:
    """1x1x1 output convolution; heatmap heads start near zero (``init_std`` ~ 1e-3) as in the paper."""
    conv = nn.Conv3d(in_channels, out_channels, kernel_size=1)
    if init_std is not None:
        nn.init.trunc_normal_(conv.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
    nn.init.zeros_(conv.bias)
    return conv


class UNetRegressor(nn.Module):
    """U-Net + 1x1x1 head: the spine-localisation net (1 heatmap) and the segmentation net (1 logit)."""

    def __init__(self, in_channels: int, out_channels: int, head_init_std: float | None = None, **unet_kwargs):
        super().__init__()
        self.unet = UNetAvgLinear3D(in_channels, **unet_kwargs)
        self.head = head(self.unet.out_channels, out_channels, head_init_std)

    @property
    def size_divisor(self) -> int:
        return self.unet.size_divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.unet(x))
