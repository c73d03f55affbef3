"""Training of ``spineps`` (SPINEPS, Moeller et al. 2024): stage configs, samples, losses and validation.

Stage 1 (``spineps-semantic``) learns the 14 spinal structures (SPINEPS ids, :mod:`SpineSegLib.methods.
spineps.semantic_ids`) on crops of the sagittal MR resampled onto an LPS grid; targets come from the
case's subregion mask with the body split into endplate, border and interior
(:func:`~SpineSegLib.methods.spineps.targets.fourteen_structures`). Stage 2 (``spineps-instance``) never
sees the MR: it learns, from the one-hot semantic cutout around a vertebral body, which voxels belong to
the vertebra above (class 1), the one at the centre (2) and the one below (3), as the paper's instance
network does. Both use cross-entropy plus soft Dice. Cases without a subregion mask are declined.

MR appearance randomisation (SynthSeg's principle): a crop's normalised intensities go through a random
smooth remap that may reorder tissue contrasts (T2w vs T1w), a random bias field, gamma and noise, so the
network learns shapes, not one phantom contrast; inference inputs stay as the scanner wrote them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from scipy import ndimage

from SpineSegLib import labels as L
from SpineSegLib.geometry import Grid
from SpineSegLib.methods.spineps.semantic_ids import CLASSES, INSTANCE_CHANNELS, id_to_class, instance_channels, one_hot
from SpineSegLib.methods.spineps.targets import fourteen_structures
from SpineSegLib.models import ModelCard
from SpineSegLib.pipeline.intensity import MR_NORMALIZATION

from .appearance import AppearanceConfig
from .lu_lumbar import softmax_ce_dice
from .spatial import AugmentationConfig, sample_array

METHOD = "spineps"
#: Share of MR crops whose contrast may be reordered (a non-monotone remap), of those randomised at all.
REORDER_SHARE = 0.3


def stage_configs(StageConfig) -> dict[str, dict[str, Any]]:
    """Presets (``small``: 2 CPU cores; ``paper``: near SPINEPS's 0.75 x 0.75 x 1.65 mm and its cutout)."""
    appearance = AppearanceConfig(probability=0.7)

    def semantic(width: int, spacing, crop) -> Any:
        return StageConfig(
            stage="semantic",
            method=METHOD,
            network=dict(
                architecture="unet",
                in_channels=1,
                out_channels=len(CLASSES),
                num_filters=width,
                num_levels=4,
                norm="instance",
            ),
            spacing_mm=spacing,
            crop_size=crop,
            intensity=dict(MR_NORMALIZATION),
            augmentation=AugmentationConfig(translation_mm=20.0, rotation_rad=0.2, elastic_max_mm=6.0),
            appearance=appearance,
            params={"min_piece_mm3": 28.0, "overlap": 0.25},
            iterations=4000,
            learning_rate=1e-3,
            validate_every=1000,
            intensity_shift=0.0,
            intensity_scale=0.0,
        )

    def instance(width: int, spacing, crop) -> Any:
        return StageConfig(
            stage="instance",
            method=METHOD,
            network=dict(
                architecture="unet",
                in_channels=INSTANCE_CHANNELS,
                out_channels=4,
                num_filters=width,
                num_levels=4,
                norm="instance",
            ),
            spacing_mm=spacing,
            crop_size=crop,
            intensity=dict(MR_NORMALIZATION),  # unused: the instance network sees the semantic mask
            augmentation=AugmentationConfig(translation_mm=0.0, rotation_rad=0.15, elastic_max_mm=4.0),
            params={"min_body_mm3": 300.0, "min_vertebra_mm3": 232.0},
            iterations=4000,
            learning_rate=1e-3,
            validate_every=1000,
            intensity_shift=0.0,
            intensity_scale=0.0,
        )

    return {
        "small": {
            f"{METHOD}-semantic": semantic(16, (2.5, 1.5, 1.5), (32, 80, 112)),
            # SPINEPS's cutout (about 106 x 186 x 228 mm, left-right x front-back x head-feet) at 2 mm.
            f"{METHOD}-instance": instance(8, (2.0, 2.0, 2.0), (48, 96, 112)),
        },
        "paper": {
            f"{METHOD}-semantic": replace(semantic(32, (1.65, 0.75, 0.75), (64, 160, 192)), iterations=50_000),
            f"{METHOD}-instance": replace(instance(16, (1.65, 0.75, 0.75), (64, 256, 304)), iterations=50_000),
        },
    }


# Samples ---------------------------------------------------------------------------------------

_RANGES: dict[str, tuple[float, float]] = {}


def case_range(case) -> tuple[float, float]:
    """The case's (p_low, p_high) intensities over the whole cached image (inference normalises the whole scan)."""
    if case.name not in _RANGES:
        from SpineSegLib.pipeline.intensity import percentile_range

        arr = np.asarray(case.image)
        step = max(1, arr.shape[0] // 64)  # every few slices: enough for percentiles, cheap on a memory map
        sample = arr[::step]
        _RANGES[case.name] = percentile_range(sample[sample > -1000], MR_NORMALIZATION)
    return _RANGES[case.name]


def randomise_mr(x: np.ndarray, spacing_kji, rng: np.random.Generator, cfg: AppearanceConfig) -> np.ndarray:
    """A random smooth intensity remap (contrast order kept, or not), bias field, gamma and noise on [0, 1.5]."""
    if rng.random() >= cfg.probability:
        return x
    knots = np.linspace(0.0, 1.5, 7)
    if rng.random() < REORDER_SHARE:
        values = rng.uniform(0.0, 1.2, knots.size)
        values[0] = rng.uniform(0.0, 0.1)  # background stays dark
    else:
        values = np.sort(np.clip(knots + rng.normal(0.0, 0.12, knots.size), 0.0, 1.5))
    out = np.interp(x, knots, values).astype(np.float32)
    shape = np.asarray(x.shape, float)
    axes = np.meshgrid(*[np.linspace(-1, 1, int(n)) for n in shape], indexing="ij", sparse=True)
    bias = 1.0 + sum(rng.uniform(-0.2, 0.2) * a for a in axes)
    out = out * bias.astype(np.float32)
    out = np.clip(out, 0.0, None) ** np.float32(np.exp(rng.uniform(-0.3, 0.3)))
    if rng.random() < 0.5:
        sigma = rng.uniform(0.0, 1.0) / np.asarray(spacing_kji, float)
        out = ndimage.gaussian_filter(out, sigma)
    out = out + rng.normal(0.0, rng.uniform(0.0, 0.05), out.shape).astype(np.float32)
    return np.clip(out, *MR_NORMALIZATION["clip"]).astype(np.float32)


#: Share of semantic crops centred on an end of the column (the top vertebra or the sacrum): the anchors
#: the labelling counts from (dens, sacrum) are rare classes a crop along the middle seldom shows.
END_SHARE = 0.4


def _spine_centre(case, rng: np.random.Generator | None, augment: bool) -> np.ndarray:
    from .samples import spine_axis_point

    points = case.centroids  # vertebrae and, where labelled, the sacrum
    if not case.centroids.subset(case.vertebra_labels):
        return np.asarray(case.grid.center, float)
    z = points.array()[:, 2]
    if not augment:
        return spine_axis_point(points, float(np.mean(z)))
    if rng.random() < END_SHARE:
        return spine_axis_point(points, float(z.max() if rng.random() < 0.5 else z.min()))
    return spine_axis_point(points, rng.uniform(z.min(), z.max()))


def semantic_sample(case, cfg, rng: np.random.Generator, augment: bool = True):
    """A crop along the spine; input = the MR normalised by the case's percentiles; target = class per voxel."""
    from .samples import _transform

    if case.subregions is None:
        return None
    grid = Grid.centered(_spine_centre(case, rng, augment), cfg.crop_size, cfg.spacing_mm)
    t = _transform(grid, cfg, rng, augment)
    spacing_kji = np.asarray(cfg.spacing_mm, float)[::-1]
    lo, hi = case_range(case)
    raw = sample_array(case.image, case.grid, grid, t, order=1, cval=lo)
    x = np.clip((raw - lo) / max(hi - lo, 1e-6), *MR_NORMALIZATION["clip"]).astype(np.float32)
    if augment:
        x = randomise_mr(x, spacing_kji, rng, cfg.appearance)
    ids = np.rint(sample_array(case.subregions, case.grid, grid, t, order=0, cval=0)).astype(np.uint8)
    y = id_to_class(fourteen_structures(ids, spacing_kji))
    return x[None], y[None].astype(np.float32)


def neighbours(labels: list[int], level: int) -> tuple[int | None, int | None]:
    """The vertebrae right above and below ``level`` among ``labels`` (anatomical order), None at the ends."""
    order = L.anatomical_order([lab for lab in labels if lab in L.VERTEBRA_LABELS])
    i = order.index(level)
    return (order[i - 1] if i > 0 else None), (order[i + 1] if i + 1 < len(order) else None)


def instance_sample(case, cfg, rng: np.random.Generator, augment: bool = True):
    """A cutout of the true semantic mask around a vertebral body; target = above 1 / centre 2 / below 3."""
    from .samples import _transform

    levels = [lab for lab in case.vertebra_labels if lab in L.VERTEBRA_LABELS and lab in case.centroids]
    if case.subregions is None or not levels:
        return None
    level = int(rng.choice(levels)) if augment else levels[len(levels) // 2]
    centre = np.asarray(case.centroids[level], float)
    if augment:  # inference centres are the body's centre of mass, a few mm off the annotated point
        centre = centre + rng.uniform(-3.0, 3.0, 3)
    grid = Grid.centered(centre, cfg.crop_size, cfg.spacing_mm)
    t = _transform(grid, cfg, rng, augment)
    ids = np.rint(sample_array(case.subregions, case.grid, grid, t, order=0, cval=0)).astype(np.uint8)
    vert = np.rint(sample_array(case.labels, case.grid, grid, t, order=0, cval=0)).astype(np.int64)
    channels = instance_channels(ids)
    above, below = neighbours(case.vertebra_labels, level)
    y = np.zeros(vert.shape, np.float32)
    on_vertebra = channels > 0
    for cls, lab in ((1, above), (2, level), (3, below)):
        if lab is not None:
            y[(vert == lab) & on_vertebra] = cls
    return one_hot(channels), y[None]


SAMPLERS = {f"{METHOD}-semantic": semantic_sample, f"{METHOD}-instance": instance_sample}
LOSSES = {f"{METHOD}-semantic": softmax_ce_dice, f"{METHOD}-instance": softmax_ce_dice}


# Validation (SimpleITK and the inference code: imported here, not on a pack-training machine) -----


def _on_grid(image, grid: Grid) -> np.ndarray:
    import SimpleITK as sitk

    from SpineSegLib.geometry import resample_to_grid

    out = resample_to_grid(image, grid, interpolator="nearest", default_value=0, pixel_type=sitk.sitkUInt16)
    return sitk.GetArrayFromImage(out)


def _dice(truth: np.ndarray, pred: np.ndarray) -> float:
    from SpineSegLib.metrics.overlap import overlap_counts

    return overlap_counts(truth, pred).dice  # the truth is never empty where this is called


def validate_semantic(model, card: ModelCard, cases, device) -> dict[str, Any]:
    """Mean Dice of the structures present in the truth (14-structure targets on the semantic grid)."""
    from SpineSegLib.methods.spineps.semantic import segment_semantic

    dices = []
    for case in cases:
        if getattr(case, "subregions", None) is None:
            continue
        pred = segment_semantic(case.image, model, card, device)
        truth = fourteen_structures(_on_grid(case.subregions, pred.grid), pred.grid.spacing[::-1])
        for sid in [int(v) for v in np.unique(truth) if v]:
            dices.append(_dice(truth == sid, pred.ids == sid))
    dice = float(np.mean(dices)) if dices else 0.0
    return {"dice_mean": dice, "structures": len(dices), "score": dice}


def validate_instance(model, card: ModelCard, cases, device) -> dict[str, Any]:
    """Mean best-match Dice of the true vertebrae, instances found from the true semantic mask."""
    from SpineSegLib.methods.spineps.instances import segment_instances
    from SpineSegLib.pipeline.network_input import box_grid, image_box

    dices = []
    for case in cases:
        if getattr(case, "subregions", None) is None:
            continue
        lo, hi = image_box(case.image)
        grid = box_grid(lo, hi, card.spacing_mm)
        semantic = fourteen_structures(_on_grid(case.subregions, grid), grid.spacing[::-1]).astype(np.uint8)
        truth = _on_grid(case.mask, grid)
        found = segment_instances(semantic, grid, model, card, device)
        pred = np.where(found.levels < 100, found.levels, 0)
        for lab in [int(v) for v in np.unique(truth) if v in L.VERTEBRA_LABELS]:
            t = truth == lab
            hits = [int(v) for v in np.unique(pred[t]) if v]
            dices.append(max((_dice(t, pred == v) for v in hits), default=0.0))
    dice = float(np.mean(dices)) if dices else 0.0
    return {"dice_mean": dice, "vertebrae": len(dices), "score": dice}


VALIDATORS = {f"{METHOD}-semantic": validate_semantic, f"{METHOD}-instance": validate_instance}
