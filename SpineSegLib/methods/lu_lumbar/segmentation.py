"""Stage 2 of ``lu_lumbar``: the XUNet's softmax over the lumbar crop, as a label map on the input grid.

The crop is resampled on an LPS-aligned grid at the card's spacing (its size a multiple of the
network's divisor), windowed (bone window), and segmented in one pass. Each class probability is
resampled (linear) onto the input grid over the crop's box; the label of a voxel is the arg-max
class; each vertebra keeps its largest component and one below ``min_volume_mm3`` is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import SimpleITK as sitk
import torch
from scipy import special

from ... import labels as L
from ...geometry import Grid
from ...labelmap import fill_enclosed_background, largest_component
from ...models import ModelCard
from ...pipeline.network_input import box_grid, predict, sample_input
from ...pipeline.progress import Reporter
from ...pipeline.segmentation import crop_on_image_grid
from ...pipeline.spine import SpineBox
from .params import LumbarSegmentationParams


def segment_lumbar(
    image: sitk.Image,
    box: SpineBox,
    model: torch.nn.Module,
    card: ModelCard,
    device: torch.device,
    labels: Iterable[int] | None = None,
    reporter: Reporter | None = None,
) -> sitk.Image:
    """uint8 label map (VerSe ids of ``card.labels``; channel 0 is background) on ``image``'s grid."""
    reporter = reporter or Reporter()
    params = LumbarSegmentationParams.from_card(card)
    grid = box_grid(box.lo, box.hi, card.spacing_mm, divisor=int(model.size_divisor))
    x = sample_input(image, grid, card.intensity)
    reporter.check()
    reporter(0.2, "lumbar segmentation")
    prob = special.softmax(predict(model, x[None, None], device, params.mixed_precision)[0], axis=0)
    reporter(0.7, "lumbar segmentation")
    image_grid = Grid.of(image)
    placed = [crop_on_image_grid(p, grid, image_grid) for p in prob]
    out = np.zeros(image_grid.shape_kji, dtype=np.uint8)
    if placed[0] is not None:  # None: the crop misses the image (cannot happen for a box inside it)
        slices = placed[0][1]
        ids = np.asarray([0, *card.labels], dtype=np.uint8)
        # Outside the crop the resampled probabilities are 0 for every class: background wins the tie.
        block = ids[np.argmax(np.stack([p for p, _ in placed]), axis=0)]
        _clean(block, params, float(np.prod(image.GetSpacing())), None if labels is None else set(labels))
        out[slices] = block
    reporter(1.0, "lumbar segmentation")
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(image)
    return result


def _clean(block: np.ndarray, params: LumbarSegmentationParams, voxel_mm3: float, wanted: set | None) -> None:
    """In place: each vertebra's largest component only; too small or unwanted ones dropped; holes filled."""
    for lab in L.anatomical_order(int(v) for v in np.unique(block) if v):
        mine = block == lab
        keep = largest_component(mine, connectivity=2)
        block[mine & ~keep] = 0
        if keep.sum() * voxel_mm3 < params.min_volume_mm3 or (wanted is not None and lab not in wanted):
            block[keep] = 0
    if params.fill_holes:
        fill_enclosed_background(block)
