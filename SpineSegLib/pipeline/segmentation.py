"""Stage 3: per-vertebra binary segmentation at 1 mm, merged by the largest response.

For each centroid a crop (default 128x128x96 mm, shifted posterior so the arch fits) and a
Gaussian heatmap of that centroid go through the U-Net; the sigmoid is resampled back to
the input grid, reduced to its largest component, and vertebrae are merged voxel-wise by
the highest probability above the card's mask threshold (Payer et al.); cavities a vertebra encloses are
then filled (as SPINEPS does).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import SimpleITK as sitk
import torch
from scipy import special

from .. import labels as L
from ..centroids import Centroids
from ..geometry import Grid, resample_to_grid
from ..heatmaps import gaussian_heatmap
from ..labelmap import fill_enclosed_background, largest_component
from ..models import ModelCard
from .network_input import predict, sample_input
from .params import SegmentationParams
from .progress import Reporter


def crop_grid(center: np.ndarray, card: ModelCard, offset_vox: Sequence[float] = (0.0, 0.0, 0.0)) -> Grid:
    """The crop around ``center`` (shifted posterior), moved by ``offset_vox`` crop voxels (test-time augmentation)."""
    shift = np.array([0.0, SegmentationParams.from_card(card).posterior_shift_mm, 0.0])
    shift += np.asarray(offset_vox, float) * np.asarray(card.spacing_mm, float)
    return Grid.centered(np.asarray(center) + shift, card.input_size, card.spacing_mm)


def network_inputs(
    image: sitk.Image, center: np.ndarray, card: ModelCard, offset_vox: Sequence[float] = (0.0, 0.0, 0.0)
) -> tuple[Grid, np.ndarray]:
    """(crop grid, (2, K, J, I) input: normalised image + Gaussian of the target centroid)."""
    params = SegmentationParams.from_card(card)
    grid = crop_grid(center, card, offset_vox)
    img = sample_input(image, grid, card.intensity)
    sigma_vox = params.heatmap_sigma_mm / np.asarray(card.spacing_mm, float)
    heat = gaussian_heatmap(grid.shape_kji, grid.physical_to_index(center)[0], sigma_vox)
    return grid, np.stack([img, heat.astype(np.float32)])


def input_subgrid(image_grid: Grid, crop: Grid) -> tuple[Grid, tuple[slice, slice, slice]] | None:
    """The part of the input grid that the crop's box covers, and its numpy slices; None if disjoint."""
    idx = image_grid.physical_to_index(crop.corners())
    lo = np.maximum(np.floor(idx.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 1, np.asarray(image_grid.size))
    if np.any(hi <= lo):
        return None
    origin = image_grid.index_to_physical(lo)[0]
    sub = Grid(tuple(int(v) for v in hi - lo), image_grid.spacing, tuple(origin.tolist()), image_grid.direction)
    slices = tuple(slice(int(a), int(b)) for a, b in zip(lo[::-1], hi[::-1]))
    return sub, slices


def keep_largest_component(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Zero every supra-threshold voxel outside the largest 18-connected supra-threshold component."""
    mask = prob > threshold
    keep = largest_component(mask, connectivity=2)
    if not np.array_equal(keep, mask):
        prob = np.where(mask & ~keep, 0.0, prob).astype(prob.dtype, copy=False)
    return prob


def crop_on_image_grid(prob: np.ndarray, crop: Grid, image_grid: Grid) -> tuple[np.ndarray, tuple[slice, ...]] | None:
    """``prob`` ([k, j, i] on ``crop``) resampled (linear) onto the block of ``image_grid`` it covers, and that block.

    None when the crop misses the image.
    """
    placed = input_subgrid(image_grid, crop)
    if placed is None:
        return None
    sub, slices = placed
    p_img = crop.apply(sitk.GetImageFromArray(prob.astype(np.float32)))
    return sitk.GetArrayFromImage(resample_to_grid(p_img, sub, interpolator="linear", default_value=0.0)), slices


def crop_probabilities(
    model: torch.nn.Module,
    batch: np.ndarray,
    device: torch.device,
    params: SegmentationParams,
    mirrored: Sequence[bool] | None = None,
) -> np.ndarray:
    """(B, K, J, I) sigmoid of the network on a batch of crops; with ``flip_x`` averaged with the mirrored crops.

    ``mirrored[b]``: crop ``b`` goes through the network left-right mirrored and its output is mirrored
    back (a test-time augmentation pass). The crops are LPS-aligned and centred on the centroid in x, so
    mirroring the last (x) axis maps the target vertebra onto itself: the network sees a plausible
    left-right mirrored spine.
    """
    mixed = bool(params.mixed_precision)
    flip = np.zeros(len(batch), dtype=bool) if mirrored is None else np.asarray(mirrored, dtype=bool)

    def run(flip: np.ndarray) -> np.ndarray:
        x = batch
        if flip.any():  # mirror only the crops that ask for it (no copy of the batch otherwise)
            x = np.where(flip[:, None, None, None, None], batch[..., ::-1], batch)
        p = special.expit(predict(model, np.ascontiguousarray(x), device, mixed)[:, 0])
        return np.where(flip[:, None, None, None], p[..., ::-1], p) if flip.any() else p

    probs = run(flip)
    if params.flip_x:
        probs = (probs + run(~flip)) / 2.0
    return probs


def average_blocks(parts: Sequence[tuple[np.ndarray, tuple[slice, ...]]]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Mean of probability blocks placed on one grid (a block counts as 0 where it does not reach)."""
    if len(parts) == 1:
        return parts[0]
    lo = [min(sl[a].start for _, sl in parts) for a in range(3)]
    hi = [max(sl[a].stop for _, sl in parts) for a in range(3)]
    acc = np.zeros([b - a for a, b in zip(lo, hi)], dtype=np.float32)
    for prob, sl in parts:
        acc[tuple(slice(s.start - a, s.stop - a) for s, a in zip(sl, lo))] += prob
    acc /= len(parts)
    return acc, tuple(slice(a, b) for a, b in zip(lo, hi))


def vertebra_probabilities(
    image: sitk.Image,
    centroids: Centroids,
    todo: Sequence[int],
    model: torch.nn.Module,
    card: ModelCard,
    device: torch.device,
    reporter: Reporter | None = None,
) -> Iterator[tuple[int, np.ndarray, tuple[slice, ...]]]:
    """(label, probability block on the input grid, its slices) of each vertebra of ``todo``, in batches.

    With several ``tta_passes`` each vertebra is predicted on crops moved by sub-voxel offsets (and
    mirrored) and the probabilities are averaged on the input grid: the 1 mm network then samples the
    surface more finely than its own grid (the mask error is mostly one voxel at the surface).
    """
    reporter = reporter or Reporter()
    params = SegmentationParams.from_card(card)
    image_grid = Grid.of(image)
    passes = [(p.offset_vox, p.mirror_x) for p in params.tta_passes]
    passes = passes or [((0.0, 0.0, 0.0), False)]
    # ``batch_size`` counts crops (memory), so fewer vertebrae go in one batch when each has several crops.
    n = len(passes)
    per_batch = max(1, int(params.batch_size) // n)
    for start in range(0, len(todo), per_batch):
        reporter.check()
        chunk = todo[start : start + per_batch]
        jobs = [(lab, offset, mirror) for lab in chunk for offset, mirror in passes]
        crops, inputs = zip(*(network_inputs(image, centroids[lab], card, offset) for lab, offset, _ in jobs))
        probs = crop_probabilities(model, np.stack(inputs), device, params, [mirror for *_, mirror in jobs])
        for i, lab in enumerate(chunk):
            parts = [crop_on_image_grid(probs[k], crops[k], image_grid) for k in range(i * n, (i + 1) * n)]
            parts = [p for p in parts if p is not None]
            if parts:
                yield (lab, *average_blocks(parts))
        reporter((start + len(chunk)) / max(len(todo), 1), f"segmented {', '.join(L.name_of(x) for x in chunk)}")


def merge_vertebra(
    out: np.ndarray, best: np.ndarray, label: int, prob: np.ndarray, slices, threshold: float
) -> float | None:
    """Write ``label`` where its largest supra-threshold component beats every vertebra merged so far.

    Returns the mean probability of the voxels it won (the vertebra's segmentation confidence), or None.
    """
    prob = keep_largest_component(prob, threshold)
    region_best = best[slices]
    win = (prob > threshold) & (prob > region_best)
    region_best[win] = prob[win]
    out[slices][win] = label
    return float(prob[win].mean()) if win.any() else None


def merge_vertebrae(
    placed: Iterable[tuple[int, np.ndarray, tuple[slice, ...]]],
    shape: Sequence[int],
    threshold: float,
    fill_holes: bool,
    confidence: dict[int, float] | None = None,
) -> np.ndarray:
    """uint8 label map of ``shape`` from (label, probability block, slices): the largest response wins.

    ``confidence``, when given, receives each vertebra's mean probability over the voxels it won.
    """
    out = np.zeros(shape, dtype=np.uint8)
    best = None  # float16 best probability so far, allocated lazily
    for lab, prob, slices in placed:
        if best is None:
            best = np.zeros(shape, dtype=np.float16)
        mean = merge_vertebra(out, best, lab, prob, slices, threshold)
        if confidence is not None and mean is not None:
            confidence[int(lab)] = mean
    if fill_holes:
        fill_enclosed_background(out)
    return out


def segment_vertebrae(
    image: sitk.Image,
    centroids: Centroids,
    model: torch.nn.Module,
    card: ModelCard,
    device: torch.device,
    labels: Iterable[int] | None = None,
    reporter: Reporter | None = None,
    confidence: dict[int, float] | None = None,
) -> sitk.Image:
    """uint8 instance label map (VerSe ids) on ``image``'s grid for ``labels`` (default: every centroid).

    ``confidence``, when given, receives each vertebra's mean segmentation probability (its voxels).
    """
    params = SegmentationParams.from_card(card)
    wanted = centroids.labels if labels is None else L.anatomical_order(labels)
    # The network segments vertebrae (C1..L6, T13); a sacrum or coccyx centroid is not its job.
    todo = [lab for lab in wanted if lab in centroids and lab in L.VERTEBRA_LABELS]
    placed = vertebra_probabilities(image, centroids, todo, model, card, device, reporter)
    out = merge_vertebrae(
        placed, Grid.of(image).shape_kji, float(params.threshold), bool(params.fill_holes), confidence
    )
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(image)
    return result


def merge_into(base: sitk.Image, update: sitk.Image, labels: Sequence[int]) -> sitk.Image:
    """``base`` with ``labels`` replaced by those of ``update`` (re-segmentation of edited vertebrae)."""
    a = sitk.GetArrayFromImage(base)
    b = sitk.GetArrayViewFromImage(update)
    redo = np.isin(a, list(labels))
    a[redo] = 0
    new = np.isin(b, list(labels)) & ((a == 0) | redo)
    a[new] = b[new]
    out = sitk.GetImageFromArray(a)
    out.CopyInformation(base)
    return out
