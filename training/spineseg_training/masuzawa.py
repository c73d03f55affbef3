"""Training of ``masuzawa`` (Masuzawa et al. 2020): stage configs, samples, losses and validation.

Stage 1 (``masuzawa-regions``) learns background / cervical / thoracic / lumbar on coarse crops along
the spine (a quarter of them anywhere in the image), with the paper's bootstrapped cross-entropy (the
10 % hardest voxels). Stage 2 (``masuzawa-instances``) learns the next vertebra: a patch between the
previous and the next vertebra (or below the last one, where the answer is "none"), the memory channel
holding every vertebra cranial to the target, with soft Dice plus cross-entropy (the paper: Dice).
Augmentation follows the paper: rotation up to 15 degrees, scaling up to 20 %, Gaussian noise.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from SpineSegLib import labels as L
from SpineSegLib.geometry import Grid
from SpineSegLib.models import ModelCard
from SpineSegLib.pipeline.intensity import MASUZAWA_WINDOW

from .appearance import AppearanceConfig
from .losses import soft_dice_loss
from .spatial import AugmentationConfig, sample_array

METHOD = "masuzawa"
#: Share of region crops placed anywhere in the image rather than on the spine (false-positive control).
OFF_SPINE_SHARE = 0.25
#: Share of the voxels whose cross-entropy is back-propagated (bootstrapping, Wu et al., as the paper).
BOOTSTRAP_SHARE = 0.1


def region_class_table() -> np.ndarray:
    """VerSe id -> region class (1 cervical, 2 thoracic incl. T13, 3 lumbar incl. L6, 0 else)."""
    lut = np.zeros(256, dtype=np.int64)
    for lab in L.VERTEBRA_LABELS:
        lut[lab] = {"cervical": 1, "thoracic": 2, "lumbar": 3}.get(L.region_of(lab), 0)
    return lut


def stage_configs(StageConfig) -> dict[str, dict[str, Any]]:
    """Presets (``small``: 2 CPU cores; ``paper``: 1 mm patches of 128 voxels, wider networks)."""
    paper_aug = dict(rotation_rad=float(np.deg2rad(15.0)), scale=0.2, axis_scale=0.0)
    appearance = AppearanceConfig(probability=0.7)

    def regions(width: int, norm: str) -> Any:
        return StageConfig(
            stage="regions",
            method=METHOD,
            network=dict(architecture="fcn", in_channels=1, out_channels=4, width=width, num_levels=4, norm=norm),
            spacing_mm=(4.0, 4.0, 4.0),
            crop_size=(64, 64, 96),
            intensity=dict(MASUZAWA_WINDOW),
            augmentation=AugmentationConfig(translation_mm=40.0, elastic_max_mm=16.0, **paper_aug),
            appearance=appearance,
            params={"min_region_mm3": 2000.0, "margin_mm": [16.0, 16.0, 16.0]},
            iterations=1500,
            batch_size=2,
            learning_rate=1e-3,
            validate_every=500,
        )

    def instances(width: int, norm: str, spacing: float, patch: int) -> Any:
        return StageConfig(
            stage="instances",
            method=METHOD,
            network=dict(architecture="fcn", in_channels=2, out_channels=1, width=width, num_levels=4, norm=norm),
            spacing_mm=(spacing, spacing, spacing),
            crop_size=(patch, patch, patch),
            intensity=dict(MASUZAWA_WINDOW),
            augmentation=AugmentationConfig(translation_mm=0.0, elastic_max_mm=4.0, **paper_aug),
            appearance=appearance,
            params={"threshold": 0.5, "min_start_mm3": 2000.0},
            iterations=3000,
            learning_rate=1e-3,
            validate_every=500,
        )

    return {
        "small": {
            f"{METHOD}-regions": regions(8, "instance"),
            f"{METHOD}-instances": instances(8, "instance", 2.0, 64),
        },
        "paper": {
            f"{METHOD}-regions": replace(regions(32, "batch"), iterations=20_000, spacing_mm=(2.0, 2.0, 2.0)),
            f"{METHOD}-instances": replace(instances(32, "batch", 1.0, 128), iterations=50_000),
        },
    }


# Samples ---------------------------------------------------------------------------------------


def regions_sample(case, cfg, rng: np.random.Generator, augment: bool = True):
    """A coarse crop on the spine (or anywhere); target = region class per voxel (float32)."""
    from .samples import _image, _transform, spine_axis_point

    vertebrae = case.centroids.subset(case.vertebra_labels)
    if not vertebrae or (augment and rng.random() < OFF_SPINE_SHARE):
        half = np.asarray(case.grid.size) * np.asarray(case.grid.spacing) / 2.0
        centre = case.grid.center + (rng.uniform(-half, half) if augment else 0.0)
    else:
        z = vertebrae.array()[:, 2]
        centre = spine_axis_point(vertebrae, rng.uniform(z.min(), z.max()) if augment else float(np.mean(z)))
    grid = Grid.centered(centre, cfg.crop_size, cfg.spacing_mm)
    t = _transform(grid, cfg, rng, augment)
    x = _image(case, grid, t, cfg, rng, augment)
    ids = np.rint(sample_array(case.labels, case.grid, grid, t, order=0, cval=0)).astype(np.int64)
    return x[None], region_class_table()[np.clip(ids, 0, 255)][None].astype(np.float32)


def instances_sample(case, cfg, rng: np.random.Generator, augment: bool = True):
    """Image + memory (the vertebrae cranial to the target) -> the target vertebra's mask (or nothing)."""
    from .samples import _image, _transform

    order = L.anatomical_order(case.vertebra_labels)
    if not order:
        return None
    n = len(order)
    k = int(rng.integers(0, n + 1)) if augment else n // 2
    patch_mm = np.asarray(cfg.crop_size) * np.asarray(cfg.spacing_mm)
    if k == n:  # below the last vertebra: the answer is "no further vertebra"
        centre = case.centroids[order[-1]] - np.array([0.0, 0.0, rng.uniform(0.1, 0.45) * patch_mm[2]])
    elif k == 0:  # the walk's start: the patch at or above the first vertebra
        centre = case.centroids[order[0]] + np.array([0.0, 0.0, rng.uniform(0.0, 0.3) * patch_mm[2]])
    else:  # between the previous vertebra (where the walk stands) and the target
        a, b = case.centroids[order[k - 1]], case.centroids[order[k]]
        centre = a + rng.uniform(0.0, 1.0) * (b - a)
    if augment:
        centre = centre + rng.uniform(-1, 1, 3) * np.array([8.0, 8.0, 6.0])
    grid = Grid.centered(centre, cfg.crop_size, cfg.spacing_mm)
    t = _transform(grid, cfg, rng, augment)
    x = _image(case, grid, t, cfg, rng, augment)
    ids = np.rint(sample_array(case.labels, case.grid, grid, t, order=0, cval=0)).astype(np.int64)
    memory = np.isin(ids, order[:k]).astype(np.float32)
    target = (ids == order[k]).astype(np.float32) if k < n else np.zeros_like(memory)
    return np.stack([x, memory]), target[None]


SAMPLERS = {f"{METHOD}-regions": regions_sample, f"{METHOD}-instances": instances_sample}


# Losses ----------------------------------------------------------------------------------------


def bootstrapped_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the ``BOOTSTRAP_SHARE`` hardest voxels (the paper's bootstrapped loss)."""
    per_voxel = F.cross_entropy(logits, target[:, 0].long(), reduction="none").flatten()
    k = max(1, int(BOOTSTRAP_SHARE * per_voxel.numel()))
    return torch.topk(per_voxel, k).values.mean()


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target) + soft_dice_loss(logits, target)


LOSSES = {f"{METHOD}-regions": bootstrapped_ce, f"{METHOD}-instances": dice_bce}


# Validation (SimpleITK and the inference code: imported here, not on a pack-training machine) -----


def validate_regions(model, card: ModelCard, cases, device) -> dict[str, Any]:
    """Mean Dice of the cervical, thoracic and lumbar classes on the network grid of each whole case."""
    import SimpleITK as sitk

    from SpineSegLib.geometry import resample_to_grid
    from SpineSegLib.methods.masuzawa.regions import segment_regions

    dices = []
    for case in cases:
        regions = segment_regions(case.image, model, card, device)
        gt_ids = resample_to_grid(case.mask, regions.grid, interpolator="nearest", default_value=0)
        gt = region_class_table()[np.clip(sitk.GetArrayFromImage(gt_ids), 0, 255).astype(np.int64)]
        for c in (1, 2, 3):
            if (gt == c).any():
                pred = regions.classes == c
                dices.append(2.0 * float((pred & (gt == c)).sum()) / float(pred.sum() + (gt == c).sum()))
    dice = float(np.mean(dices)) if dices else 0.0
    return {"region_dice": dice, "regions": len(dices), "score": dice}


def validate_instances(model, card: ModelCard, cases, device, per_case: int = 6) -> dict[str, Any]:
    """One step of the walk from the true memory: Dice of the next vertebra on patches centred on it."""
    import SimpleITK as sitk
    from scipy import special

    from SpineSegLib.geometry import resample_to_grid
    from SpineSegLib.pipeline.network_input import predict, sample_input

    dices = []
    for case in cases:
        order = L.anatomical_order(case.vertebrae.labels)
        for k in order[:: max(1, len(order) // per_case)][:per_case]:
            grid = Grid.centered(case.centroids[k], card.input_size, card.spacing_mm)
            x = sample_input(case.image, grid, card.intensity)
            ids = sitk.GetArrayFromImage(resample_to_grid(case.mask, grid, interpolator="nearest", default_value=0))
            memory = np.isin(ids, order[: order.index(k)]).astype(np.float32)
            prob = special.expit(predict(model, np.stack([x, memory])[None], device)[0, 0])
            pred, truth = (prob > 0.5) & (memory == 0), ids == k
            dices.append(2.0 * float((pred & truth).sum()) / max(float(pred.sum() + truth.sum()), 1.0))
    dice = float(np.mean(dices)) if dices else 0.0
    return {"dice_mean": dice, "vertebrae": len(dices), "score": dice}


VALIDATORS = {f"{METHOD}-regions": validate_regions, f"{METHOD}-instances": validate_instances}
