"""Validation of each stage with the inference code and the SpineSeg metrics.

Every score is "higher is better"; the trainer keeps the checkpoint with the best score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.io import read_centroids, read_image, read_labelmap
from SpineSegLib.metrics import evaluate, identification_rate, point_errors
from SpineSegLib.models import ModelCard
from SpineSegLib.pipeline.segmentation import segment_vertebrae
from SpineSegLib.pipeline.spine import SpineBox, localize_spine
from SpineSegLib.pipeline.vertebrae import localize_vertebrae

from .data import CaseFiles


class ValidationCase:
    """A validation case at its original geometry, as inference sees it."""

    def __init__(self, files: CaseFiles):
        self.name = files.name
        self.image = read_image(files.image)
        self.mask = read_labelmap(files.mask)
        self.centroids = read_centroids(files.centroids, self.mask)
        self.subregions = read_labelmap(files.subregions) if files.subregions else None

    @property
    def vertebrae(self) -> Centroids:
        return self.centroids.subset(L.HEATMAP_LABELS)


def gt_spine_box(centroids: Centroids, margin_mm: float = 20.0) -> SpineBox:
    """A spine box like stage 1 gives it, from ground-truth centroids (validates stage 2 on its own)."""
    pts = centroids.array()
    empty = sitk.Image(1, 1, 1, sitk.sitkFloat32)
    return SpineBox(pts.min(0) - margin_mm, pts.max(0) + margin_mm, pts.mean(0), 1.0, empty)


def validate_spine(model, card: ModelCard, cases: list[ValidationCase], device) -> dict[str, Any]:
    inside, center_err, found = [], [], 0
    for case in cases:
        box = localize_spine(case.image, model, card, device)
        pts = case.vertebrae.array()
        if box is None:
            inside.append(0.0)
            continue
        found += 1
        tol = 10.0
        inside.append(float(np.mean(np.all((pts >= box.lo - tol) & (pts <= box.hi + tol), axis=1))))
        center_err.append(float(np.linalg.norm((box.center - pts.mean(0))[:2])))
    frac = float(np.mean(inside))
    err = float(np.mean(center_err)) if center_err else float("nan")
    return {
        "inside_fraction": frac,
        "center_xy_error_mm": err,
        "found": found,
        "score": frac - 1e-3 * (err if center_err else 100),
    }


def landmark_score(id_rate: float, pe_mean_mm: float | None) -> float:
    """Identification first; the mean point error breaks ties (None: no centroid predicted, counted as 100 mm)."""
    return id_rate - 1e-3 * (100.0 if pe_mean_mm is None else pe_mean_mm)


def validate_vertebrae(model, card: ModelCard, cases: list[ValidationCase], device) -> dict[str, Any]:
    ids, pes = [], []
    for case in cases:
        loc = localize_vertebrae(case.image, gt_spine_box(case.vertebrae), model, card, device)
        ids.append(identification_rate(loc.centroids, case.vertebrae))
        pes += list(point_errors(loc.centroids, case.vertebrae).values())
    id_rate = float(np.mean(ids))
    pe = float(np.mean(pes)) if pes else float("nan")
    return {"id_rate": id_rate, "pe_mean_mm": pe, "score": landmark_score(id_rate, pe if pes else None)}


def validate_segmentation(
    model, card: ModelCard, cases: list[ValidationCase], device, max_vertebrae: int = 6
) -> dict[str, Any]:
    dices = []
    for case in cases:
        labels = [lab for lab in case.vertebrae.labels]
        pick = labels[:: max(1, len(labels) // max_vertebrae)][:max_vertebrae]
        pred = segment_vertebrae(case.image, case.centroids.subset(pick), model, card, device)
        gt = sitk.GetArrayFromImage(case.mask)
        gt[~np.isin(gt, pick)] = 0
        gt_img = sitk.GetImageFromArray(gt)
        gt_img.CopyInformation(case.mask)
        ev = evaluate(pred, gt_img, case.centroids.subset(pick), case.centroids.subset(pick))
        dices.append(ev.summary.dice_mean)
    dice = float(np.mean(dices))
    return {"dice_mean": dice, "score": dice}


VALIDATORS = {"spine": validate_spine, "vertebrae": validate_vertebrae, "segmentation": validate_segmentation}


@torch.no_grad()
def run_validation(stage: str, model, card: ModelCard, cases: list[ValidationCase], device) -> dict[str, Any]:
    was_training = model.training
    model.eval()
    try:
        if "-" in stage:  # another method's stage (StageConfig.key)
            from .method_modules import validators

            return validators()[stage](model, card, cases, device)
        return VALIDATORS[stage](model, card, cases, device)
    finally:
        model.train(was_training)
