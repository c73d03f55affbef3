"""Training samples of each stage: an augmented input crop and its target, as numpy arrays.

Targets follow Payer et al.: stage 1 a normalised spine-centreline heatmap, stage 2 one
Gaussian per vertebra (sigma 3 voxels), stage 3 the mask of the vertebra whose Gaussian is
the second input channel (centre jittered by up to 3 mm). Stage 3 samples image and mask
from the case's own grid, the mask as a partial-volume fraction: its 0.5 level is the
boundary the metrics score on that grid (nearest-neighbour masks via the 1 mm cache cap the
Dice of a perfect imitation at 0.94-0.96 on 0.7-0.8 mm scans).
"""

from __future__ import annotations

import numpy as np

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.geometry import Grid
from SpineSegLib.heatmaps import gaussian_heatmap, heatmap_targets, spine_heatmap
from SpineSegLib.pipeline.intensity import normalize, pad_value
from SpineSegLib.pipeline.params import SegmentationParams

from .appearance import randomise_appearance
from .config import StageConfig
from .data import CachedCase
from .spatial import AugmentationConfig, SpatialTransform, sample_array


def _image(
    case: CachedCase, grid: Grid, t: SpatialTransform, cfg: StageConfig, rng, augment: bool, native: bool = False
) -> np.ndarray:
    volume, volume_grid = (case.native_image, case.native_image_grid) if native else (case.image, case.grid)
    raw = sample_array(volume, volume_grid, grid, t, order=1, cval=pad_value(cfg.intensity))
    if augment and cfg.intensity["type"] == "ct":
        raw = randomise_appearance(raw, np.asarray(grid.spacing, float)[::-1], rng, cfg.appearance)
    x = normalize(raw, cfg.intensity)
    if augment and (cfg.intensity_shift or cfg.intensity_scale):
        x = (x + rng.uniform(-cfg.intensity_shift, cfg.intensity_shift)) * (
            1 + rng.uniform(-cfg.intensity_scale, cfg.intensity_scale)
        )
        x = np.clip(x, -1.0, 1.0)
    return x.astype(np.float32)


def _transform(grid: Grid, cfg: StageConfig, rng, augment: bool) -> SpatialTransform:
    return SpatialTransform.random(rng, grid, cfg.augmentation if augment else AugmentationConfig.none())


def _moved(centroids: Centroids, t: SpatialTransform, labels=None) -> Centroids:
    keep = [lab for lab in centroids.labels if labels is None or lab in labels]
    if not keep:
        return Centroids()
    pts = t.invert(centroids.array(keep))
    return Centroids(dict(zip(keep, pts)))


def spine_sample(case: CachedCase, cfg: StageConfig, rng: np.random.Generator, augment: bool = True):
    """Whole-image crop at 8 mm around the image centre; target = normalised spine heatmap."""
    grid = Grid.centered(case.grid.center, cfg.crop_size, cfg.spacing_mm)
    t = _transform(grid, cfg, rng, augment)
    x = _image(case, grid, t, cfg, rng, augment)
    vertebrae = case.centroids.subset(L.HEATMAP_LABELS)
    y = spine_heatmap(grid, _moved(vertebrae, t), sigma_vox=cfg.sigma_vox)
    return x[None], y[None].astype(np.float32)


def spine_axis_point(centroids: Centroids, z: float) -> np.ndarray:
    """The point of the centroid chain at height ``z`` (LPS), interpolated between centroids."""
    pts = centroids.array()
    order = np.argsort(pts[:, 2])
    p = pts[order]
    return np.array([np.interp(z, p[:, 2], p[:, 0]), np.interp(z, p[:, 2], p[:, 1]), z])


def vertebrae_sample(case: CachedCase, cfg: StageConfig, rng: np.random.Generator, augment: bool = True):
    """A crop along the spine at 2 mm; target = one Gaussian per vertebra channel (zero if absent)."""
    vertebrae = case.centroids.subset(cfg.labels or L.HEATMAP_LABELS)
    z = vertebrae.array()[:, 2]
    center = spine_axis_point(vertebrae, rng.uniform(z.min(), z.max()))
    grid = Grid.centered(center, cfg.crop_size, cfg.spacing_mm)
    t = _transform(grid, cfg, rng, augment)
    x = _image(case, grid, t, cfg, rng, augment)
    y = heatmap_targets(grid, _moved(vertebrae, t), labels=cfg.labels or L.HEATMAP_LABELS, sigma_vox=cfg.sigma_vox)
    return x[None], y


#: Sampling weight of each region so that the few lumbar vertebrae are seen as often as cervical ones.
def _balanced_choice(labels: list[int], rng: np.random.Generator) -> int:
    regions = sorted({L.region_of(lab) for lab in labels})
    region = regions[rng.integers(len(regions))]
    pool = [lab for lab in labels if L.region_of(lab) == region]
    return int(pool[rng.integers(len(pool))])


def segmentation_sample(
    case: CachedCase, cfg: StageConfig, rng: np.random.Generator, augment: bool = True, label: int | None = None
):
    """A 1 mm crop around one vertebra (shifted posterior); input = image + its Gaussian; target = its mask.

    The target is the fraction of the vertebra around each crop voxel (in [0, 1]), from the native mask.
    """
    label = label if label is not None else _balanced_choice(case.vertebra_labels, rng)
    point = case.centroids[label]
    params = SegmentationParams.from_mapping(cfg.params, "training config")
    shift = np.array([0.0, params.posterior_shift_mm, 0.0])
    grid = Grid.centered(point + shift, cfg.crop_size, cfg.spacing_mm)
    t = _transform(grid, cfg, rng, augment)
    x = _image(case, grid, t, cfg, rng, augment, native=True)
    mask = sample_array(case.native_labels, case.native_labels_grid, grid, t, order=1, cval=0, select=label)
    jitter = rng.uniform(-3.0, 3.0, 3) if augment else np.zeros(3)
    center = t.invert(point + jitter)[0]
    sigma = params.heatmap_sigma_mm / np.asarray(cfg.spacing_mm, float)
    heat = gaussian_heatmap(grid.shape_kji, grid.physical_to_index(center)[0], sigma)
    return np.stack([x, heat.astype(np.float32)]), mask[None].astype(np.float32)


def _samplers() -> dict:
    from .method_modules import samplers

    return {"spine": spine_sample, "vertebrae": vertebrae_sample, "segmentation": segmentation_sample, **samplers()}


#: StageConfig.key -> sample function (case, cfg, rng) -> (input, target).
SAMPLERS = _samplers()
