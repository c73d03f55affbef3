"""Post-processing thresholds chosen on the validation cases; the trained weights stay as they are.

Why: the heatmap and probability scales of a network depend on how long it trained (a CPU-budget
network peaks well below the targets' 1.0), so the landmark thresholds (``min_value``,
``end_min_value``) and the mask threshold are picked where they score best on held-out
training-set cases and written into the model cards' ``params``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from SpineSegLib.io import write_json_atomic
from SpineSegLib.metrics import identification_rate, point_errors
from SpineSegLib.models import ModelCard
from SpineSegLib.pipeline.vertebrae import landmarks_from_heatmaps, localize_vertebrae

from .validate import ValidationCase, gt_spine_box, landmark_score, validate_segmentation

MIN_VALUES = (0.05, 0.1, 0.2, 0.3)
END_MIN_VALUES = (0.1, 0.25, 0.4)
MASK_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def calibrate_vertebrae(
    model: torch.nn.Module, card: ModelCard, cases: list[ValidationCase], device: torch.device
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Best (min_value, end_min_value) on ``cases`` and the table of every pair tried.

    The network runs once per case; only the candidate search and the chain selection are repeated.
    """
    runs = [(case, localize_vertebrae(case.image, gt_spine_box(case.vertebrae), model, card, device)) for case in cases]
    table = []
    for mv, end in itertools.product(MIN_VALUES, END_MIN_VALUES):
        if end < mv:
            continue
        params = {**card.params, "min_value": mv, "end_min_value": end}
        ids, pes = [], []
        for case, loc in runs:
            _, seq = landmarks_from_heatmaps(loc.heatmaps, loc.grid, loc.labels, params, case.image)
            ids.append(identification_rate(seq.centroids, case.vertebrae))
            pes += list(point_errors(seq.centroids, case.vertebrae).values())
        id_rate, pe = float(np.mean(ids)), float(np.mean(pes)) if pes else 100.0
        table.append({"min_value": mv, "end_min_value": end, "id_rate": id_rate, "pe_mean_mm": pe})
    best = max(table, key=lambda r: (landmark_score(r["id_rate"], r["pe_mean_mm"]), -abs(r["min_value"] - 0.1)))
    return {"min_value": best["min_value"], "end_min_value": best["end_min_value"]}, table


def calibrate_segmentation(
    model: torch.nn.Module, card: ModelCard, cases: list[ValidationCase], device: torch.device
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Best mask threshold on ``cases`` (mean Dice of the validation vertebrae) and the table."""
    table = []
    for t in MASK_THRESHOLDS:
        trial = ModelCard.from_json({**card.to_json(), "params": {**card.params, "threshold": t}})
        table.append({"threshold": t, "dice_mean": validate_segmentation(model, trial, cases, device)["dice_mean"]})
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
