"""Post-processing thresholds chosen on the validation cases; the trained weights stay as they are.

Why: the heatmap and probability scales of a network depend on how long it trained (a CPU-budget
network peaks well below the targets' 1.0), so the landmark thresholds (``min_value``,
``end_min_value``) and the mask threshold are picked where they score best on held-out
training-set cases and written into the model cards' ``params``.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from SpineSegLib import labels as L
from SpineSegLib.io import write_json_atomic
from SpineSegLib.metrics import identification_rate, point_errors
from SpineSegLib.metrics.overlap import overlap_counts
from SpineSegLib.models import ModelCard
from SpineSegLib.pipeline.params import SegmentationParams, VertebraeParams
from SpineSegLib.pipeline.segmentation import merge_vertebrae, vertebra_probabilities
from SpineSegLib.pipeline.vertebrae import landmarks_from_heatmaps, localize_vertebrae

from .validate import ValidationCase, gt_spine_box, landmark_score

MIN_VALUES = (0.05, 0.1, 0.2, 0.3)
END_MIN_VALUES = (0.1, 0.25, 0.4)
MASK_THRESHOLDS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8)


def calibrate_vertebrae(
    model: torch.nn.Module, card: ModelCard, cases: list[ValidationCase], device: torch.device
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Best (min_value, end_min_value) on ``cases`` and the table of every pair tried.

    The network runs once per case; only the candidate search and the chain selection are repeated.
    """
    runs = [(case, localize_vertebrae(case.image, gt_spine_box(case.vertebrae), model, card, device)) for case in cases]
    table = []
    base = VertebraeParams.from_card(card)
    for mv, end in itertools.product(MIN_VALUES, END_MIN_VALUES):
        if end < mv:
            continue
        params = dataclasses.replace(base, min_value=mv, end_min_value=end)
        ids, pes = [], []
        for case, loc in runs:
            _, seq = landmarks_from_heatmaps(loc.heatmaps, loc.grid, loc.labels, params, case.image)
            ids.append(identification_rate(seq.centroids, case.vertebrae))
            pes += list(point_errors(seq.centroids, case.vertebrae).values())
        id_rate, pe = float(np.mean(ids)), float(np.mean(pes)) if pes else 100.0
        table.append({"min_value": mv, "end_min_value": end, "id_rate": id_rate, "pe_mean_mm": pe})
    best = max(table, key=lambda r: (landmark_score(r["id_rate"], r["pe_mean_mm"]), -abs(r["min_value"] - 0.1)))
    return {"min_value": best["min_value"], "end_min_value": best["end_min_value"]}, table


def _placed_probabilities(model, card: ModelCard, case: ValidationCase, device) -> list:
    """Every ground-truth vertebra's probability block on the case's grid (the network runs once per case)."""
    centroids = case.centroids
    todo = [lab for lab in centroids.labels if lab in L.VERTEBRA_LABELS]
    return list(vertebra_probabilities(case.image, centroids, todo, model, card, device))


def _dice_by_level(placed: list, gt: np.ndarray, params: SegmentationParams, threshold: float) -> dict[int, float]:
    """Per-vertebra Dice of the merged label map (the inference merge) with one mask threshold for all."""
    out = merge_vertebrae(placed, gt.shape, threshold, params.fill_holes)
    levels = (int(v) for v in np.unique(gt) if int(v) in L.VERTEBRA_LABELS)
    return {lab: overlap_counts(gt == lab, out == lab).dice for lab in levels}


def calibrate_segmentation(
    model: torch.nn.Module, card: ModelCard, cases: list[ValidationCase], device: torch.device
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Best mask threshold on ``cases`` (mean Dice over every ground-truth vertebra) and the table.

    Every vertebra of every case is segmented from its ground-truth centroid and merged as inference
    merges them; the network runs once per case and the thresholds replay the merge. The table also
    gives the mean per spine region (``dice_<region>``, ``n_<region>``).
    """
    params = SegmentationParams.from_card(card)
    scores: dict[float, dict[str, list[float]]] = {t: {} for t in MASK_THRESHOLDS}
    for case in cases:
        placed = _placed_probabilities(model, card, case, device)
        gt = sitk.GetArrayFromImage(case.mask)
        for t in MASK_THRESHOLDS:
            for lab, d in _dice_by_level(placed, gt, params, t).items():
                for key in ("all", L.region_of(lab)):
                    scores[t].setdefault(key, []).append(d)
    table = []
    for t in MASK_THRESHOLDS:
        row = {"threshold": t, "dice_mean": float(np.mean(scores[t].get("all", [0.0])))}
        row.update({f"dice_{r}": float(np.mean(v)) for r, v in scores[t].items() if r != "all"})
        row.update({f"n_{r}": len(v) for r, v in scores[t].items() if r != "all"})
        table.append(row)
    best = max(table, key=lambda r: (r["dice_mean"], -abs(r["threshold"] - 0.5)))
    return {"threshold": best["threshold"]}, table


CALIBRATORS = {"vertebrae": calibrate_vertebrae, "segmentation": calibrate_segmentation}


def calibrate_card(
    card_path: str | Path, model: torch.nn.Module, cases: list[ValidationCase], device: torch.device
) -> dict[str, Any]:
    """Calibrate the stage of ``card_path`` and rewrite the card (params + ``validation.calibration``)."""
    card = ModelCard.read(card_path)
    if card.stage not in CALIBRATORS:
        return {}
    chosen, table = CALIBRATORS[card.stage](model, card, cases, device)
    card.params = {**card.params, **chosen}
    record = {"cases": [c.name for c in cases], "chosen": chosen, "table": table}
    card.validation = {**card.validation, "calibration": record}
    write_json_atomic(card.to_json(), card_path)
    return {"chosen": chosen, "table": table}
