"""Stage 2: vertebra localisation and identification with the SpatialConfiguration-Net.

Inside the spine box (plus a margin) on a 2 mm LPS grid, the network regresses one heatmap
per vertebra; tiles along the body axis are merged by maximum; local maxima of every
channel become candidates and the landmark sequence rules of Payer et al. pick the chain.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from ..centroids import Centroids
from ..geometry import Grid
from ..heatmaps import Candidate, heatmap_candidates
from ..models import ModelCard
from ..sequence import SequenceResult, fill_skipped, select_sequence
from .chain_ends import extend_chain_ends, inside_image
from .network_input import box_grid, image_box, predict, sample_input
from .params import VertebraeParams
from .progress import Reporter
from .spine import SpineBox
from .tiling import run_tiled_max


@dataclass
class VertebraLocalization:
    centroids: Centroids  # identified centroids, confidence = heatmap response
    heatmaps: np.ndarray  # (C, K, J, I) float32 on ``grid``
    grid: Grid
    labels: list[int]  # channel -> VerSe id
    candidates: dict[int, list[Candidate]]
    sequence: SequenceResult

    def heatmap_image(self) -> sitk.Image:
        """The heatmaps as a multi-component image (one component per channel) on the 2 mm grid."""
        img = sitk.GetImageFromArray(np.moveaxis(self.heatmaps, 0, -1).astype(np.float32), isVector=True)
        return self.grid.apply(img)


def localization_grid(image: sitk.Image, spine: SpineBox | None, card: ModelCard, divisor: int) -> Grid:
    """2 mm LPS grid over the spine box + margin, clipped to the image box; x/y rounded up to ``divisor``.

    With ``full_z`` (default) the grid spans the whole image along z, as in Payer et al. 2019:
    a spine heatmap that fades at the ends of the spine must not cut vertebrae off.
    """
    params = VertebraeParams.from_card(card)
    ilo, ihi = image_box(image)
    if spine is None:
        lo, hi = ilo, ihi
    else:
        margin = np.asarray(params.margin_mm, float)
        lo = np.maximum(spine.lo - margin, ilo)
        hi = np.minimum(spine.hi + margin, ihi)
        if params.full_z:
            lo[2], hi[2] = ilo[2], ihi[2]
    return box_grid(lo, hi, card.spacing_mm, divisor=divisor)


def localize_vertebrae(
    image: sitk.Image,
    spine: SpineBox | None,
    model: torch.nn.Module,
    card: ModelCard,
    device: torch.device,
    reporter: Reporter | None = None,
) -> VertebraLocalization:
    reporter = reporter or Reporter()
    params = VertebraeParams.from_card(card)
    divisor = int(model.size_divisor)
    grid = localization_grid(image, spine, card, divisor)
    x = sample_input(image, grid, card.intensity)[None]  # (1, K, J, I)
    tile = max(divisor, int(params.tile_z) // divisor * divisor)

    step = max(divisor, int(params.step_z) // divisor * divisor)

    def run_tile(t: np.ndarray) -> np.ndarray:
        # The grid and the tiles are multiples of the divisor, so every tile fits the network as is.
        reporter.check()
        return predict(model, t[None], device, bool(params.mixed_precision))[0]

    heat = run_tiled_max(x, run_tile, tile, step, axis=1, on_tile=lambda n, tot: reporter(n / tot, "vertebra heatmaps"))
    labels = list(card.labels)
    candidates, sequence = landmarks_from_heatmaps(heat, grid, labels, params, image)
    return VertebraLocalization(sequence.centroids, heat, grid, labels, candidates, sequence)


def landmarks_from_heatmaps(
    heat: np.ndarray, grid: Grid, labels: list[int], params: VertebraeParams, image: sitk.Image
) -> tuple[dict[int, list[Candidate]], SequenceResult]:
    """Candidates (local maxima) of every channel and the chain the sequence rules pick among them."""
    candidates = heatmap_candidates(
        heat,
        grid,
        labels,
        min_value=float(params.min_value),
        smoothing_sigma=float(params.smoothing_sigma),
        max_per_channel=int(params.max_per_channel),
    )
    image_grid = Grid.of(image)
    if params.inside_image:
        candidates = inside_image(candidates, image_grid)
    if params.border_mm > 0:
        candidates = _drop_near_z_border(candidates, image, float(params.border_mm))
    skip = float(params.skip_penalty) if params.allow_skip else None
    sequence = select_sequence(
        candidates, min_value=float(params.min_value), end_min_value=float(params.end_min_value), skip_penalty=skip
    )
    if params.extend_ends:
        sequence = extend_chain_ends(
            sequence, heat, grid, image_grid, float(params.min_value), float(params.smoothing_sigma)
        )
    if skip is not None:
        sequence = dataclasses.replace(sequence, centroids=fill_skipped(sequence.centroids)[0])
    return candidates, sequence


def _drop_near_z_border(
    candidates: dict[int, list[Candidate]], image: sitk.Image, border: float
) -> dict[int, list[Candidate]]:
    lo, hi = image_box(image)
    return {
        lab: [c for c in cands if lo[2] + border <= c.point_lps[2] <= hi[2] - border]
        for lab, cands in candidates.items()
    }
