"""Stage 1: spine localisation at coarse resolution (Payer et al. 2020).

A U-Net regresses a heatmap of the spine centreline on an 8 mm grid; the bounding box of
the largest connected component of ``prediction / max > 0.5`` is the spine's box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from ..geometry import Grid
from ..labelmap import largest_component
from ..models import ModelCard
from .network_input import box_grid, image_box, predict, sample_input
from .params import SpineParams
from .progress import Reporter


@dataclass
class SpineBox:
    """The spine's axis-aligned physical box (LPS mm) and the heatmap it came from."""

    lo: np.ndarray
    hi: np.ndarray
    center: np.ndarray
    peak: float
    heatmap: sitk.Image  # float32 on the coarse network grid

    @property
    def size_mm(self) -> np.ndarray:
        return self.hi - self.lo


def localize_spine(
    image: sitk.Image,
    model: torch.nn.Module,
    card: ModelCard,
    device: torch.device,
    reporter: Reporter | None = None,
) -> SpineBox | None:
    """The spine box, or None when the heatmap has no convincing peak (no spine in the image)."""
    reporter = reporter or Reporter()
    params = SpineParams.from_card(card)
    lo, hi = image_box(image)
    grid = box_grid(lo, hi, card.spacing_mm, divisor=model.size_divisor)
    x = sample_input(image, grid, card.intensity)
    reporter(0.3, "spine localisation")
    heat = predict(model, x[None, None], device)[0, 0]
    reporter(1.0, "spine localisation")
    heat_img = grid.apply(sitk.GetImageFromArray(heat.astype(np.float32)))
    return spine_box_from_heatmap(heat, grid, heat_img, params)


def spine_box_from_heatmap(heat: np.ndarray, grid: Grid, heat_img: sitk.Image, params: SpineParams) -> SpineBox | None:
    peak = float(heat.max())
    if not peak >= params.min_peak:
        return None
    mask = largest_component(heat / peak > params.relative_threshold, connectivity=2)
    lo, hi = grid.mask_box(mask)
    return SpineBox(lo=lo, hi=hi, center=weighted_centre(heat, mask, grid), peak=peak, heatmap=heat_img)


def weighted_centre(heat: np.ndarray, mask: np.ndarray, grid: Grid) -> np.ndarray:
    """LPS centre of the ``mask`` voxels weighted by ``heat``."""
    kji = np.argwhere(mask)
    weights = heat[mask]
    return grid.index_to_physical((kji[:, ::-1] * weights[:, None]).sum(axis=0) / weights.sum())[0]
