"""Training of ``lu_lumbar`` (Lu et al. 2023): stage configs, samples, losses and validation.

Stage 1 (``lu_lumbar-localisation``) regresses the Gaussian-smoothed lumbar mask (L1-L5, L6) on a
coarse whole-body crop with L2 loss; stage 2 (``lu_lumbar-segmentation``) learns one softmax over
background and the lumbar levels on a 2 mm crop around the lumbar spine (cross-entropy plus soft
Dice over the vertebra classes). Cases without a lumbar vertebra give all-background targets.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from SpineSegLib.geometry import Grid
from SpineSegLib.models import ModelCard
from SpineSegLib.pipeline.intensity import BONE_WINDOW, CT_NORMALIZATION

from .appearance import AppearanceConfig
from .spatial import AugmentationConfig, sample_array

METHOD = "lu_lumbar"
#: VerSe ids of the segmentation classes 1..6 (class 0: background).
LUMBAR_LABELS = (20, 21, 22, 23, 24, 25)
#: Sigma (mm) of the Gaussian that smooths the lumbar mask into the localisation target.
TARGET_SIGMA_MM = 8.0


def stage_configs(StageConfig) -> dict[str, dict[str, Any]]:
    """Presets (``small``: 2 CPU cores; ``paper``: Figure 1/3 widths) keyed ``lu_lumbar-<stage>``."""
    appearance = AppearanceConfig(probability=0.7)

    def localisation(width: int, norm: str | None) -> Any:
        return StageConfig(
            stage="localisation",
            method=METHOD,
            network=dict(architecture="lumbar_unet", in_channels=1, width=width, num_levels=5, norm=norm),
            spacing_mm=(4.0, 4.0, 4.0),
            crop_size=(64, 64, 96),  # 256 x 256 x 384 mm (the paper: the whole image at 96 x 96 x 128)
            intensity=dict(CT_NORMALIZATION),
            augmentation=AugmentationConfig(translation_mm=60.0, elastic_max_mm=20.0),
            appearance=appearance,
            params={"relative_threshold": 0.3, "min_peak": 0.25, "expand_fraction": 0.1},
            iterations=1500,
            batch_size=2,
            learning_rate=1e-3,
            validate_every=500,
        )

    def segmentation(width: int, norm: str | None) -> Any:
        return StageConfig(
            stage="segmentation",
            method=METHOD,
            network=dict(
                architecture="xunet", in_channels=1, out_channels=1 + len(LUMBAR_LABELS), width=width, norm=norm
            ),
            spacing_mm=(2.0, 2.0, 2.0),
            crop_size=(64, 64, 128),
            intensity=dict(BONE_WINDOW),
            augmentation=AugmentationConfig(translation_mm=10.0, rotation_rad=0.2, elastic_max_mm=8.0),
            appearance=appearance,
            params={"min_volume_mm3": 2000.0, "fill_holes": True},
            iterations=3000,
            learning_rate=1e-3,
            validate_every=500,
            labels=LUMBAR_LABELS,
        )

    return {
        "small": {
            f"{METHOD}-localisation": localisation(16, "instance"),
            f"{METHOD}-segmentation": segmentation(8, "instance"),
        },
        "paper": {
            f"{METHOD}-localisation": replace(localisation(64, None), iterations=10_000, learning_rate=1e-4),
            f"{METHOD}-segmentation": replace(segmentation(32, None), iterations=30_000, learning_rate=1e-4),
        },
    }


# Samples ---------------------------------------------------------------------------------------

_BOXES: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}


def lumbar_box(case) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo, hi) LPS mm of the box of the case's lumbar vertebrae (cache grid), or None; memoised per case."""
    if case.name not in _BOXES:
        mask = np.isin(case.labels, LUMBAR_LABELS)
        if not mask.any():
            _BOXES[case.name] = None
        else:
            _BOXES[case.name] = case.grid.mask_box(mask)
    return _BOXES[case.name]


def _class_map(labels: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, dtype=np.int64)
    lut[list(LUMBAR_LABELS)] = np.arange(1, len(LUMBAR_LABELS) + 1)
    return lut[np.clip(labels, 0, 255).astype(np.uint8)]


def _centre(case, rng: np.random.Generator, jitter_mm: np.ndarray, augment: bool) -> np.ndarray:
    box = lumbar_box(case)
    centre = case.grid.center if box is None else (box[0] + box[1]) / 2.0
    return np.asarray(centre, float) + (rng.uniform(-jitter_mm, jitter_mm) if augment else 0.0)


def localisation_sample(case, cfg, rng: np.random.Generator, augment: bool = True):
    """Coarse crop around the lumbar spine (moved up to 80 mm); target = the smoothed lumbar mask, peak 1."""
    from .samples import _image, _transform

    grid = Grid.centered(_centre(case, rng, np.array([30.0, 30.0, 80.0]), augment), cfg.crop_size, cfg.spacing_mm)
    t = _transform(grid, cfg, rng, augment)
    x = _image(case, grid, t, cfg, rng, augment)
    labels = sample_array(case.labels, case.grid, grid, t, order=0, cval=0)
    mask = np.isin(np.rint(labels), LUMBAR_LABELS).astype(np.float32)
    heat = ndimage.gaussian_filter(mask, TARGET_SIGMA_MM / np.asarray(cfg.spacing_mm, float)[::-1])
    peak = float(heat.max())
    y = heat / peak if peak > 1e-6 else heat
    return x[None], y[None].astype(np.float32)


#: Share of segmentation samples drawn from cases without a lumbar vertebra (all-background targets).
NEGATIVE_SHARE = 0.2


def segmentation_sample(case, cfg, rng: np.random.Generator, augment: bool = True):
    """2 mm crop around the lumbar spine (moved up to 16/16/40 mm); target = class index map (float32).

    None (the stream draws another case) for most cases without a lumbar vertebra: a cervical phantom
    would otherwise fill half the batches with background.
    """
    from .samples import _image, _transform

    if lumbar_box(case) is None and augment and rng.random() >= NEGATIVE_SHARE:
        return None
    grid = Grid.centered(_centre(case, rng, np.array([16.0, 16.0, 40.0]), augment), cfg.crop_size, cfg.spacing_mm)
    t = _transform(grid, cfg, rng, augment)
    x = _image(case, grid, t, cfg, rng, augment)
    labels = sample_array(case.labels, case.grid, grid, t, order=0, cval=0)
    return x[None], _class_map(np.rint(labels))[None].astype(np.float32)


SAMPLERS = {f"{METHOD}-localisation": localisation_sample, f"{METHOD}-segmentation": segmentation_sample}


# Losses ----------------------------------------------------------------------------------------


def softmax_ce_dice(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Cross-entropy plus soft Dice of the vertebra classes (background left out of the Dice term)."""
    classes = target[:, 0].long()
    ce = F.cross_entropy(logits, classes)
    p = torch.softmax(logits, dim=1)[:, 1:]
    onehot = F.one_hot(classes, logits.shape[1]).movedim(-1, 1)[:, 1:].to(p.dtype)
    dims = tuple(range(2, p.ndim))
    dice = (2.0 * (p * onehot).sum(dims) + smooth) / (p.sum(dims) + onehot.sum(dims) + smooth)
    present = onehot.sum(dims) > 0
    dice_loss = (1.0 - dice)[present].mean() if present.any() else p.sum() * 0.0
    return ce + dice_loss


def heatmap_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target, reduction="sum") / pred.shape[0] / 1000.0


LOSSES = {f"{METHOD}-localisation": heatmap_l2, f"{METHOD}-segmentation": softmax_ce_dice}


# Validation (SimpleITK and the inference code: imported here, not on a pack-training machine) -----


def _gt_box(case) -> tuple[np.ndarray, np.ndarray] | None:
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(case.mask)
    mask = np.isin(arr, LUMBAR_LABELS)
    if not mask.any():
        return None
    return Grid.of(case.mask).mask_box(mask)


def _box_iou(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    inter = np.prod(np.clip(np.minimum(a[1], b[1]) - np.maximum(a[0], b[0]), 0, None))
    union = np.prod(a[1] - a[0]) + np.prod(b[1] - b[0]) - inter
    return float(inter / union) if union > 0 else 0.0


def validate_localisation(model, card: ModelCard, cases, device) -> dict[str, Any]:
    """IoU of the lumbar box before its expansion with the true lumbar box (cases with a lumbar spine)."""
    from SpineSegLib.methods.lu_lumbar.localisation import localize_lumbar

    card = replace(card, params={**card.params, "expand_fraction": 0.0})
    ious = []
    for case in cases:
        truth = _gt_box(case)
        if truth is None:
            continue
        box = localize_lumbar(case.image, model, card, device)
        ious.append(0.0 if box is None else _box_iou((box.lo, box.hi), truth))
    iou = float(np.mean(ious)) if ious else 0.0
    return {"box_iou": iou, "cases": len(ious), "score": iou}


def validate_segmentation(model, card: ModelCard, cases, device) -> dict[str, Any]:
    """Mean Dice of the true lumbar vertebrae, segmented in the true lumbar box expanded as inference does."""
    import SimpleITK as sitk

    from SpineSegLib.methods.lu_lumbar.segmentation import segment_lumbar
    from SpineSegLib.metrics.overlap import overlap_counts
    from SpineSegLib.pipeline.network_input import image_box
    from SpineSegLib.pipeline.spine import SpineBox

    dices = []
    for case in cases:
        truth = _gt_box(case)
        if truth is None:
            continue
        ilo, ihi = image_box(case.image)
        grow = 0.1 * (ihi - ilo)
        box = SpineBox(
            np.maximum(truth[0] - grow, ilo),
            np.minimum(truth[1] + grow, ihi),
            (truth[0] + truth[1]) / 2,
            1.0,
            sitk.Image(1, 1, 1, sitk.sitkFloat32),
        )
        pred = sitk.GetArrayFromImage(segment_lumbar(case.image, box, model, card, device))
        gt = sitk.GetArrayFromImage(case.mask)
        for lab in LUMBAR_LABELS:
            if (gt == lab).any():
                dices.append(overlap_counts(gt == lab, pred == lab).dice)
    dice = float(np.mean(dices)) if dices else 0.0
    return {"dice_mean": dice, "vertebrae": len(dices), "score": dice}


VALIDATORS = {f"{METHOD}-localisation": validate_localisation, f"{METHOD}-segmentation": validate_segmentation}
