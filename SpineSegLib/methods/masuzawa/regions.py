"""Stage 1 of ``masuzawa``: the Semantic Segmentation Net's region map and the spine box it bounds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage, special

from ...geometry import Grid
from ...models import ModelCard
from ...pipeline.network_input import box_grid, image_box, predict, sample_input
from ...pipeline.progress import Reporter
from ...pipeline.spine import SpineBox
from .params import RegionParams

#: Classes of the Semantic Segmentation Net (channel -> spine region).
REGIONS = ("background", "cervical", "thoracic", "lumbar")


@dataclass
class RegionMap:
    """Arg-max classes (0-3) on ``grid`` and the spine box around the regions found."""

    classes: np.ndarray  # uint8 [k, j, i]
    grid: Grid
    box: SpineBox | None
    found: tuple[str, ...]  # regions present, cranial to caudal

    def region_at(self, points_lps: np.ndarray) -> list[str]:
        """The region class at each LPS point (nearest voxel; "background" outside the grid)."""
        idx = np.rint(self.grid.physical_to_index(np.atleast_2d(points_lps))).astype(int)
        inside = np.all((idx >= 0) & (idx < np.asarray(self.grid.size)), axis=1)
        out = []
        for (i, j, k), ok in zip(idx, inside):
            out.append(REGIONS[int(self.classes[k, j, i])] if ok else "background")
        return out


def segment_regions(
    image: sitk.Image, model: torch.nn.Module, card: ModelCard, device: torch.device, reporter: Reporter | None = None
) -> RegionMap:
    reporter = reporter or Reporter()
    params = RegionParams.from_card(card)
    lo, hi = image_box(image)
    grid = box_grid(lo, hi, card.spacing_mm, divisor=int(model.size_divisor))
    x = sample_input(image, grid, card.intensity)
    reporter(0.3, "spine regions")
    prob = special.softmax(predict(model, x[None, None], device)[0], axis=0)
    reporter(1.0, "spine regions")
    return region_map(np.argmax(prob, axis=0).astype(np.uint8), grid, params, (lo, hi))


def region_map(classes: np.ndarray, grid: Grid, params: RegionParams, image_bounds) -> RegionMap:
    """Each region without its pieces below ``min_region_mm3`` (specks); the box of what is left.

    Every vertebra of a region is its own piece (the discs between them are background), so all pieces
    of a region that are large enough count, not only the largest.
    """
    voxel_mm3 = float(np.prod(grid.spacing))
    kept = np.zeros_like(classes)
    for c in (1, 2, 3):
        lab, n = ndimage.label(classes == c)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())
        large = np.flatnonzero(sizes * voxel_mm3 >= params.min_region_mm3)
        kept[np.isin(lab, large[large > 0])] = c
    found = tuple(REGIONS[c] for c in (1, 2, 3) if (kept == c).any())
    if not found:
        return RegionMap(kept, grid, None, found)
    box_lo, box_hi = grid.mask_box(kept > 0)
    ilo, ihi = (np.asarray(v, float) for v in image_bounds)
    margin = np.asarray(params.margin_mm, float)
    lo, hi = np.maximum(box_lo - margin, ilo), np.minimum(box_hi + margin, ihi)
    heat = grid.apply(sitk.GetImageFromArray(kept))
    return RegionMap(kept, grid, SpineBox(lo, hi, (lo + hi) / 2, 1.0, heat), found)
