"""Stage 1 of ``lu_lumbar``: the lumbar box from the localisation U-Net's heatmap (paper section 3.2)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from ...geometry import Grid
from ...labelmap import largest_component
from ...models import ModelCard
from ...pipeline.network_input import box_grid, image_box, predict, sample_input
from ...pipeline.progress import Reporter
from ...pipeline.spine import SpineBox, weighted_centre
from .params import LocalisationParams


def localize_lumbar(
    image: sitk.Image, model: torch.nn.Module, card: ModelCard, device: torch.device, reporter: Reporter | None = None
) -> SpineBox | None:
    """The lumbar crop box (LPS mm), or None when the heatmap has no convincing peak."""
    reporter = reporter or Reporter()
    params = LocalisationParams.from_card(card)
    lo, hi = image_box(image)
    grid = box_grid(lo, hi, card.spacing_mm, divisor=int(model.size_divisor))
    x = sample_input(image, grid, card.intensity)
    reporter(0.3, "lumbar localisation")
    heat = predict(model, x[None, None], device)[0, 0]
    reporter(1.0, "lumbar localisation")
    heat_img = grid.apply(sitk.GetImageFromArray(heat.astype(np.float32)))
    return lumbar_box_from_heatmap(heat, grid, heat_img, params, (lo, hi))


def lumbar_box_from_heatmap(
    heat: np.ndarray,
    grid: Grid,
    heat_img: sitk.Image,
    params: LocalisationParams,
    image_bounds: tuple[np.ndarray, np.ndarray],
) -> SpineBox | None:
    """Box of the largest 6-connected region above ``relative_threshold`` x peak, expanded and clipped.

    The paper thresholds at 0.3 of the maximum, keeps the region with the largest extent (one bright
    blob, not the union of every blob) and grows the box by 0.1 of the image size per axis.
    """
    peak = float(heat.max())
    if not peak >= params.min_peak:
        return None
    # 6-connectivity: the 3D form of the paper's four-neighbourhood
    mask = largest_component(heat > params.relative_threshold * peak, connectivity=1)
    box_lo, box_hi = grid.mask_box(mask)
    ilo, ihi = (np.asarray(v, float) for v in image_bounds)
    grow = params.expand_fraction * (ihi - ilo)
    lo, hi = np.maximum(box_lo - grow, ilo), np.minimum(box_hi + grow, ihi)
    return SpineBox(lo=lo, hi=hi, center=weighted_centre(heat, mask, grid), peak=peak, heatmap=heat_img)
