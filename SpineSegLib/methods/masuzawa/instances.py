"""Stage 2 of ``masuzawa``: the walk of the Iterative Instance Segmentation Net down the spine box.

The CT and a memory of instance ids live on one LPS grid over the spine box (the card's spacing),
padded by half a patch. The patch starts at the top of the box; while it shows no new vertebra it
moves down by ``search_step`` of its height. A detection (the network's mask minus the memory) moves
the patch to the detection's box centre until the centre settles (Lessmann et al.'s convergence);
the largest component then joins the memory and the walk continues from its centre. Each accepted
vertebra's probabilities are resampled onto the input grid and merged by the largest response.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage, special

from ...geometry import Grid
from ...labelmap import largest_component
from ...models import ModelCard
from ...pipeline.network_input import box_grid, predict, sample_input
from ...pipeline.progress import Reporter
from ...pipeline.segmentation import crop_on_image_grid
from .params import InstanceParams


@dataclass
class Found:
    """One vertebra of the walk: its probability patch (memory removed), the patch grid, its centre (LPS mm)."""

    prob: np.ndarray
    patch: Grid
    centre: np.ndarray
    voxels: int


def walk_spine(
    image: sitk.Image,
    box,
    model: torch.nn.Module,
    card: ModelCard,
    device: torch.device,
    reporter: Reporter | None = None,
) -> list[Found]:
    """The vertebrae of the spine box, cranial to caudal."""
    reporter = reporter or Reporter()
    params = InstanceParams.from_card(card)
    spacing = np.asarray(card.spacing_mm, float)
    patch = np.asarray(card.input_size, int)  # (x, y, z) voxels
    half = patch // 2
    lo, hi = np.asarray(box.lo, float), np.asarray(box.hi, float)
    grid = box_grid(lo - half * spacing, hi + half * spacing, spacing)
    x = sample_input(image, grid, card.intensity)
    memory = np.zeros(grid.shape_kji, dtype=np.int16)
    size = np.asarray(grid.size)
    voxel_mm3 = float(np.prod(spacing))
    min_voxels = params.min_start_mm3 / voxel_mm3

    def centre_index(point: np.ndarray) -> np.ndarray:
        idx = np.rint(grid.physical_to_index(point[None])[0]).astype(int)
        return np.clip(idx, half, size - (patch - half))

    def run(idx: np.ndarray) -> tuple[np.ndarray, tuple[slice, ...]]:
        start = idx - half
        sl = tuple(slice(int(a), int(a + p)) for a, p in zip(start[::-1], patch[::-1]))
        inp = np.stack([x[sl], (memory[sl] > 0).astype(np.float32)])[None]
        prob = special.expit(predict(model, inp, device, params.mixed_precision)[0, 0])
        return np.where(memory[sl] > 0, 0.0, prob).astype(np.float32), sl

    found: list[Found] = []
    point = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2] - half[2] * spacing[2] / 2])
    step_mm = params.search_step * patch[2] * spacing[2]
    while point[2] >= lo[2] - half[2] * spacing[2] / 2 and len(found) < params.max_vertebrae:
        reporter.check()
        reporter(float(np.clip((hi[2] - point[2]) / max(hi[2] - lo[2], 1e-6), 0, 1)), "vertebrae one by one")
        idx = centre_index(point)
        detection = None
        for _ in range(params.max_steps):
            prob, sl = run(idx)
            new = prob > params.threshold
            if new.sum() < min_voxels:
                break
            kji = np.argwhere(new)
            centre_idx = (kji.min(0) + kji.max(0))[::-1] / 2.0 + np.array([s.start for s in sl[::-1]])
            detection = (prob, sl, new)
            moved = np.linalg.norm((centre_idx - idx) * spacing)
            if moved <= params.converge_mm:
                break
            idx = np.clip(np.rint(centre_idx).astype(int), half, size - (patch - half))
        if detection is None:
            point = point - np.array([0.0, 0.0, step_mm])
            continue
        prob, sl, new = detection
        new = largest_component(new, connectivity=1)
        if new.sum() < min_voxels:
            point = point - np.array([0.0, 0.0, step_mm])
            continue
        region = memory[sl]
        region[new & (region == 0)] = len(found) + 1
        kji = np.argwhere(new) + np.array([s.start for s in sl])
        centre = grid.index_to_physical(kji.mean(0)[::-1][None])[0]
        origin = grid.index_to_physical(np.array([[s.start for s in sl[::-1]]], float))[0]
        patch_grid = Grid(tuple(int(p) for p in patch), tuple(spacing), tuple(origin), grid.direction)
        # Its own probabilities only (the accepted component grown by two voxels keeps the soft edge).
        own = ndimage.binary_dilation(new, iterations=2)
        found.append(Found(np.where(own, prob, 0.0).astype(np.float32), patch_grid, centre, int(new.sum())))
        point = centre.copy()
    reporter(1.0, "vertebrae one by one")
    return found


def place_on_image(found: list[Found], labels: list[int | None], image: sitk.Image):
    """(label, probability block on the input grid, slices) of each labelled vertebra (for merge_vertebrae)."""
    image_grid = Grid.of(image)
    for f, lab in zip(found, labels):
        if lab is None:
            continue
        placed = crop_on_image_grid(f.prob, f.patch, image_grid)
        if placed is not None:
            yield (lab, *placed)
