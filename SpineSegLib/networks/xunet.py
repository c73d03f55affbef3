"""The two networks of Lu et al. 2023 (lumbar vertebrae): a localisation U-Net and the 3D multi-scale XUNet.

Neither is in MONAI: the localisation U-Net keeps one width on every level and passes only the
middle half of each skip's channels to the decoder (the paper's ``X_k[16:48]`` of 64 channels); the
XUNet fuses encoder features of several scales in every decoder level and has an Inception block
(1x1x1 / 3x3x3 / 5x5x5 branches and a max-pooling branch) at its bottom. Widths are the paper's
(Figures 1 and 3) times ``width / 32`` (XUNet) or ``width`` itself (localisation), so a CPU preset can
shrink them; ``norm="instance"`` makes small-budget training converge.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .unet import conv_block


def _resize(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``x`` brought to spatial ``size``: average pooling down, trilinear up (skip features of another scale)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    if all(a >= b for a, b in zip(x.shape[2:], size)):
        return F.adaptive_avg_pool3d(x, size)
    return F.interpolate(x, size=size, mode="trilinear", align_corners=False)


class LumbarLocalizationUNet(nn.Module):
    """Lu et al. 2023, Figure 1: a five-level U-Net of constant width regressing the lumbar heatmap.

    Args:
        in_channels: image channels (1).
        width: channels of every level (paper: 64).
        num_levels: levels including the bottom one (paper: 5; input sizes divisible by 2 ** (levels - 1)).
        dropout: dropout after each convolution.
        norm: ``None`` (paper) or ``"instance"``.

    Each decoder level concatenates the upsampled features with the middle half of the skip's channels
    (``X_k[w/4 : 3w/4]``, the paper's ``[16:48]`` of 64) and fuses them with two 3x3x3 convolutions; a
    1x1x1 convolution gives the heatmap.
    """

    def __init__(
        self, in_channels: int = 1, width: int = 64, num_levels: int = 5, dropout: float = 0.0, norm: str | None = None
    ):
        super().__init__()
        if width < 4 or width % 4:
            raise ValueError("width must be a multiple of 4")
        self.size_divisor = 2 ** (num_levels - 1)
        self._skip = (width // 4, 3 * width // 4)
        skip = self._skip[1] - self._skip[0]

        def double(cin: int) -> nn.Sequential:
            return nn.Sequential(
                conv_block(cin, width, 3, 0.1, dropout, norm), conv_block(width, width, 3, 0.1, dropout, norm)
            )

        self.down = nn.ModuleList([double(in_channels)] + [double(width) for _ in range(num_levels - 1)])
        self.up = nn.ModuleList([double(width + skip) for _ in range(num_levels - 1)])
        self.head = nn.Conv3d(width, 1, 1)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x[:, self._skip[0] : self._skip[1]])
                x = F.max_pool3d(x, 2)
        for block, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)


class InceptionBlock3D(nn.Module):
    """Lu et al. 2023, section 3.3: four branches concatenated.

    Layer 1: ``convblock1-1`` 1x1x1 (64), ``convblock1-2`` 1x1x1 (32), ``convblock1-3`` 3x3x3 (16), and a
    3x3x3 max pooling; layer 2: ``convblock2-1`` 3x3x3 (128) after 1-2, ``convblock2-2`` 5x5x5 (32) after
    1-3, ``convblock2-3`` 1x1x1 (32) after the pooling. Output: 1-1, 2-1, 2-2, 2-3 (256 channels at
    ``scale`` 1; every width is multiplied by ``scale``).
    """

    def __init__(self, in_channels: int, scale: float = 1.0, dropout: float = 0.0, norm: str | None = None):
        super().__init__()

        def w(n: int) -> int:
            return max(1, round(n * scale))

        def cb(cin: int, cout: int, k: int) -> nn.Module:
            return conv_block(cin, cout, k, 0.1, dropout, norm)

        self.b1 = cb(in_channels, w(64), 1)
        self.b2 = nn.Sequential(cb(in_channels, w(32), 1), cb(w(32), w(128), 3))
        self.b3 = nn.Sequential(cb(in_channels, w(16), 3), cb(w(16), w(32), 5))
        self.b4 = cb(in_channels, w(32), 1)
        self.out_channels = w(64) + w(128) + w(32) + w(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool3d(x, 3, stride=1, padding=1)
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(pooled)], dim=1)


class XUNet3D(nn.Module):
    """Lu et al. 2023, Figure 3: the 3D multi-scale XUNet segmenting L1-L5 (and L6) in the lumbar crop.

    Args:
        in_channels: image channels (1, the bone-windowed CT).
        out_channels: classes including background (softmax; 7 = background, L1-L5, L6).
        width: channels of the first level (paper: 32); the levels have width x 1, 2, 4, 8 and the
            Inception block's branches scale with ``width / 32``.
        dropout: dropout after each convolution.
        norm: ``None`` (paper) or ``"instance"``.

    Encoder: X1 (width, full size), X2 (2 width, 1/2), X3 (4 width, 1/4), each two 3x3x3 convolutions
    and a max pooling; the bottom a convolution (8 width, 1/8), a max pooling and the Inception block
    (X4, 8 width, 1/16). Decoder (multi-scale fusion): Y1 = [X2, X3, deconv(X4)] at 1/4 -> 4 width;
    Y2 = [X1, X2, up(Y1)] at 1/2 -> 2 width; Y3 = [X1, X2, up(Y2)] at full size -> width; 1x1x1 head.
    Input sizes must be divisible by 16.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 7,
        width: int = 32,
        dropout: float = 0.0,
        norm: str | None = None,
    ):
        super().__init__()
        self.size_divisor = 16
        w1, w2, w3, w4 = width, 2 * width, 4 * width, 8 * width

        def double(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                conv_block(cin, cout, 3, 0.1, dropout, norm), conv_block(cout, cout, 3, 0.1, dropout, norm)
            )

        self.enc1, self.enc2, self.enc3 = double(in_channels, w1), double(w1, w2), double(w2, w3)
        self.enc4 = conv_block(w3, w4, 3, 0.1, dropout, norm)
        self.inception = InceptionBlock3D(w4, scale=width / 32, dropout=dropout, norm=norm)
        x4 = self.inception.out_channels
        self.deconv4 = nn.ConvTranspose3d(x4, x4, kernel_size=4, stride=4)
        self.dec1 = double(w2 + w3 + x4, w3)
        self.deconv1 = nn.ConvTranspose3d(w3, w3, kernel_size=2, stride=2)
        self.dec2 = double(w1 + w2 + w3, w2)
        self.deconv2 = nn.ConvTranspose3d(w2, w2, kernel_size=2, stride=2)
        self.dec3 = double(w1 + w2 + w2, w1)
        self.head = nn.Conv3d(w1, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.enc1(x)
        x2 = self.enc2(F.max_pool3d(x1, 2))
        x3 = self.enc3(F.max_pool3d(x2, 2))
        x4 = self.inception(F.max_pool3d(self.enc4(F.max_pool3d(x3, 2)), 2))
        s4, s2, s1 = x3.shape[2:], x2.shape[2:], x1.shape[2:]
        y1 = self.dec1(torch.cat([_resize(x2, s4), x3, self.deconv4(x4)], dim=1))
        y2 = self.dec2(torch.cat([_resize(x1, s2), x2, self.deconv1(y1)], dim=1))
        y3 = self.dec3(torch.cat([x1, _resize(x2, s1), self.deconv2(y2)], dim=1))
        return self.head(y3)
