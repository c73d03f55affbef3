"""Stage 1 of ``spineps``: the semantic network's 14 structures on an LPS grid over the whole scan.

The scan is resampled onto an LPS-aligned grid at the card's spacing (a sagittal T2w scan's thick
slices lie along x, left-right), normalised by its own percentiles, and segmented patch by patch
with MONAI's sliding-window inference (Gaussian-weighted overlap). The arg-max is cleaned as
SPINEPS does: pieces below ``min_piece_mm3`` dropped, holes in the body, canal, disc and cord filled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from ...geometry import Grid
from ...models import ModelCard
from ...pipeline.device import inference_context
from ...pipeline.network_input import box_grid, image_box, sample_input
from ...pipeline.progress import Reporter
from .params import SemanticParams
from .semantic_ids import CANAL, CORD, CORPUS, CORPUS_BORDER, DISC, class_to_id

#: Classes whose enclosed holes are filled (SPINEPS fills body, canal, disc and cord).
FILLED = (CORPUS_BORDER, CANAL, DISC, CORD)


@dataclass
class SemanticMap:
    """SPINEPS ids (uint8 [k, j, i]) on ``grid``."""

    ids: np.ndarray
    grid: Grid

    def on_image(self, image: sitk.Image) -> sitk.Image:
        """The semantic mask on the input image's grid (nearest neighbour)."""
        from ...geometry import resample_to_grid

        return resample_to_grid(
            self.grid.apply(sitk.GetImageFromArray(self.ids)),
            Grid.of(image),
            interpolator="nearest",
            default_value=0,
            pixel_type=sitk.sitkUInt8,
        )


def sliding_window_classes(
    model: torch.nn.Module, x: np.ndarray, roi_kji: tuple[int, ...], device: torch.device, params: SemanticParams
) -> np.ndarray:
    """Arg-max channel per voxel of the [k, j, i] input ``x``, patch by patch."""
    from monai.inferers import sliding_window_inference

    roi = tuple(int(r) for r in roi_kji)
    with inference_context(device, params.mixed_precision):
        batch = torch.from_numpy(np.ascontiguousarray(x[None, None])).to(device)
        logits = sliding_window_inference(batch, roi, 1, model, overlap=params.overlap, mode="gaussian")
    return logits[0].float().argmax(0).cpu().numpy().astype(np.uint8)


def clean_semantic(ids: np.ndarray, spacing_kji, min_piece_mm3: float) -> np.ndarray:
    """Small pieces of each class dropped; holes of the body (border and interior), canal, disc, cord filled."""
    out = ids.copy()
    min_vox = min_piece_mm3 / float(np.prod(spacing_kji))
    for sid in [int(v) for v in np.unique(out) if v]:
        comp, n = ndimage.label(out == sid)
        if n:
            sizes = np.bincount(comp.ravel())
            out[(comp > 0) & (sizes[comp] < min_vox)] = 0
    for sid in FILLED:
        region = np.isin(out, (CORPUS_BORDER, CORPUS)) if sid == CORPUS_BORDER else out == sid
        holes = ndimage.binary_fill_holes(region) & ~region & (out == 0)
        out[holes] = sid
    return out


def segment_semantic(
    image: sitk.Image, model: torch.nn.Module, card: ModelCard, device: torch.device, reporter: Reporter | None = None
) -> SemanticMap:
    reporter = reporter or Reporter()
    params = SemanticParams.from_card(card)
    lo, hi = image_box(image)
    grid = box_grid(lo, hi, card.spacing_mm, divisor=int(getattr(model, "size_divisor", 1)))
    x = sample_input(image, grid, card.intensity)
    reporter(0.2, "spinal structures")
    classes = sliding_window_classes(model, x, tuple(card.input_size[::-1]), device, params)
    reporter(0.9, "spinal structures")
    ids = clean_semantic(class_to_id(classes), grid.spacing[::-1], params.min_piece_mm3)
    reporter(1.0, "spinal structures")
    return SemanticMap(ids, grid)
