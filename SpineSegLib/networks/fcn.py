"""The 3D FCN of Masuzawa et al. 2020 (Figures 4 and 5): both of its stages use this encoder-decoder.

Each level: two 3x3x3 convolutions (stride 1) with batch normalisation and ReLU; down by 2x2x2 max
pooling (stride 2); up by 4x4x4 deconvolutions of stride 2; encoder features concatenated into the
decoder (the 3D FCN of Roth et al. the paper builds on), widths doubling per level from ``width``.
MONAI's ``BasicUNet`` upsamples with 2x2x2 deconvolutions and fixed widths, so it is written here.
"""

from __future__ import annotations

import torch
from torch import nn

_NORMS = {"batch": nn.BatchNorm3d, "instance": nn.InstanceNorm3d}


def _double(cin: int, cout: int, norm: str | None, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a in (cin, cout):
        layers.append(nn.Conv3d(a, cout, 3, padding=1, bias=norm is None))
        if norm:
            layers.append(_NORMS[norm](cout, affine=True))
        layers.append(nn.ReLU(inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout3d(dropout))
    return nn.Sequential(*layers)


class FCN3D(nn.Module):
    """Masuzawa et al.'s 3D FCN.

    Args:
        in_channels: 1 (the Semantic Segmentation Net: CT) or 2 (the Iterative Instance Segmentation
            Net: CT + the memory channel of the vertebrae segmented so far).
        out_channels: 4 (background, cervical, thoracic, lumbar; softmax) or 1 (the next vertebra; sigmoid).
        width: channels of the first level; level ``k`` has ``width * 2**k``.
        num_levels: levels including the bottom one (input sizes divisible by ``2 ** (num_levels - 1)``).
        norm: ``"batch"`` (paper) or ``"instance"`` (batch 1 on a CPU) or None.
        dropout: spatial dropout after each convolution.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 4,
        width: int = 16,
        num_levels: int = 4,
        norm: str | None = "batch",
        dropout: float = 0.0,
    ):
        super().__init__()
        if norm is not None and norm not in _NORMS:
            raise ValueError(f"unknown norm {norm!r}; known: {sorted(_NORMS)}")
        self.size_divisor = 2 ** (num_levels - 1)
        widths = [width * 2**k for k in range(num_levels)]
        self.down = nn.ModuleList([_double(c, w, norm, dropout) for c, w in zip([in_channels, *widths[:-1]], widths)])
        self.upconv = nn.ModuleList(
            [nn.ConvTranspose3d(widths[k + 1], widths[k], 4, stride=2, padding=1) for k in range(num_levels - 1)]
        )
        self.up = nn.ModuleList([_double(2 * widths[k], widths[k], norm, dropout) for k in range(num_levels - 1)])
        self.head = nn.Conv3d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, block in enumerate(self.down):
            x = block(x)
            if k < len(self.down) - 1:
                skips.append(x)
                x = nn.functional.max_pool3d(x, 2)
        for k in reversed(range(len(self.upconv))):
            x = self.up[k](torch.cat([skips[k], self.upconv[k](x)], dim=1))
        return self.head(x)
