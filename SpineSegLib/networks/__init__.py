"""Networks of the SpineSeg pipelines, built from JSON-serialisable configs (model cards)."""

from __future__ import annotations

from typing import Any

from torch import nn

from .fcn import FCN3D
from .scn import SpatialConfigurationNet
from .unet import UNetAvgLinear3D, UNetRegressor
from .xunet import LumbarLocalizationUNet, XUNet3D

ARCHITECTURES = {
    "unet": UNetRegressor,
    "scn": SpatialConfigurationNet,
    "lumbar_unet": LumbarLocalizationUNet,
    "xunet": XUNet3D,
    "fcn": FCN3D,
}


def build_network(config: dict[str, Any]) -> nn.Module:
    """Instantiate ``config["architecture"]`` with the remaining keys as keyword arguments."""
    cfg = dict(config)
    arch = cfg.pop("architecture")
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown network architecture {arch!r}; known: {sorted(ARCHITECTURES)}") from None
    return cls(**cfg)


__all__ = [
    "ARCHITECTURES",
    "FCN3D",
    "LumbarLocalizationUNet",
    "SpatialConfigurationNet",
    "UNetAvgLinear3D",
    "UNetRegressor",
    "XUNet3D",
    "build_network",
]
