"""SpatialConfiguration-Net (Payer et al. 2019/2020) for vertebra heatmap regression.

heatmaps = local_appearance * spatial_configuration: a U-Net proposes candidate locations
per vertebra (tanh), a coarse branch that sees all channels at 1/``spatial_downsample``
resolution suppresses the candidates that do not fit the spine's configuration (tanh).
No library has this network, hence hand-written.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .unet import UNetAvgLinear3D, head


class SpatialConfigurationNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        num_labels: int = 26,
        num_filters: int = 64,
        local_levels: int = 4,
        spatial_levels: int = 4,
        spatial_filters: int | None = None,
        spatial_downsample: int = 4,
        dropout: float = 0.0,
        negative_slope: float = 0.1,
        head_init_std: float = 1e-3,
        spatial_bias_init: float = 2.0,
        norm: str | None = None,
    ):
        super().__init__()
        self.spatial_downsample = spatial_downsample
        self.local = UNetAvgLinear3D(
            in_channels,
            num_filters,
            local_levels,
            convs_per_level=2,
            dropout=dropout,
            negative_slope=negative_slope,
            norm=norm,
        )
        self.local_head = head(num_filters, num_labels, head_init_std)
        sf = spatial_filters or num_filters
        self.spatial = UNetAvgLinear3D(
            num_labels, sf, spatial_levels, convs_per_level=1, dropout=dropout, negative_slope=negative_slope
        )
        self.spatial_head = head(sf, num_labels, head_init_std)
        # Start the spatial factor near 1 (tanh(2) = 0.96) instead of 0: with both factors near 0
        # the product passes almost no gradient to either branch and training stalls for long.
        nn.init.constant_(self.spatial_head.bias, spatial_bias_init)

    @property
    def size_divisor(self) -> int:
        return max(self.local.size_divisor, self.spatial_downsample * self.spatial.size_divisor)

    def forward_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(heatmaps, local appearance, spatial configuration) for inspection and training."""
        local = torch.tanh(self.local_head(self.local(x)))
        coarse = F.avg_pool3d(local, kernel_size=self.spatial_downsample)
        spatial = self.spatial_head(self.spatial(coarse))
        # Paper: cubic upsampling; PyTorch has no 3-D bicubic, trilinear is the documented substitute.
        spatial = torch.tanh(F.interpolate(spatial, size=x.shape[2:], mode="trilinear", align_corners=False))
        return local * spatial, local, spatial

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(x)[0]
