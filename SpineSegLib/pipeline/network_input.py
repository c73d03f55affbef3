"""Network grids and inputs: axis-aligned LPS grids sized for a network, sampled and normalised."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from ..geometry import Grid, resample_to_grid
from .device import inference_context, memory_format
from .intensity import normalize, pad_value


def round_up(n: int, divisor: int) -> int:
    return int(-(-int(n) // divisor) * divisor)


def box_grid(
    lo: Sequence[float], hi: Sequence[float], spacing: Sequence[float], divisor: int = 1, min_size: int = 1
) -> Grid:
    """LPS-aligned grid covering the physical box [lo, hi], its size rounded up to ``divisor`` (box centred)."""
    lo_a, hi_a = np.asarray(lo, float), np.asarray(hi, float)
    sp = np.broadcast_to(np.asarray(spacing, float), (3,))
    size = np.maximum(np.ceil((hi_a - lo_a) / sp).astype(int), min_size)
    size = np.array([round_up(s, divisor) for s in size])
    return Grid.centered((lo_a + hi_a) / 2.0, size, sp)


def image_box(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) LPS corners of the axis-aligned bounding box of the image's voxel box."""
    corners = Grid.of(image).corners()
    return corners.min(axis=0), corners.max(axis=0)


def sample_input(
    image: sitk.Image, grid: Grid, intensity: dict[str, Any], reference: np.ndarray | None = None
) -> np.ndarray:
    """``image`` resampled onto ``grid`` (linear, outside = the pad value) and normalised: [k, j, i] float32."""
    resampled = resample_to_grid(
        image, grid, interpolator="linear", default_value=pad_value(intensity), pixel_type=sitk.sitkFloat32
    )
    return normalize(sitk.GetArrayFromImage(resampled), intensity, reference)


def predict(model: torch.nn.Module, batch: np.ndarray, device: torch.device, mixed: bool = False) -> np.ndarray:
    """Run ``model`` on a (B, C, K, J, I) float32 batch; returns float32 numpy on the CPU.

    ``mixed``: reduced precision (float16 on CUDA, bfloat16 on capable CPUs).
    """
    fmt = memory_format(device)
    model = model.to(memory_format=fmt)
    with inference_context(device, mixed):
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(device).contiguous(memory_format=fmt)
        y = model(x)
    return y.float().contiguous().cpu().numpy()
