"""Panoptic quality of vertebra instances (Kirillov et al. 2019), as MONAI computes it.

Instances are the label ids of each map. A predicted and a ground-truth instance match
when their IoU > 0.5; such matches are unique (two instances cannot both overlap one
other by more than half). The matching ignores the label ids, as
``monai.metrics.compute_panoptic_quality`` does: a well-segmented spine labelled one level
off still has PQ 1 (its labelling shows in the identification rate instead).

- RQ = TP / (TP + FP/2 + FN/2)
- SQ = sum of the IoUs of the matches / TP   (0 when TP = 0, as MONAI returns)
- PQ = SQ * RQ = sum IoU / (TP + FP/2 + FN/2)

MONAI adds 1e-6 to the denominators; these are the exact values. Intersections are
counted only inside the ground-truth bounding boxes (every overlap of a ground-truth
instance lies in its box).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..labelmap import bounding_boxes

MATCH_IOU = 0.5


@dataclass(frozen=True)
class PanopticResult:
    pq: float
    sq: float
    rq: float
    tp: int
    fp: int
    fn: int
    iou_sum: float
    matches: dict[int, int] = field(default_factory=dict)  # ground-truth label -> predicted label


def instance_intersections(
    gt: np.ndarray, pred: np.ndarray, gt_boxes: Mapping[int, tuple[slice, ...]]
) -> dict[tuple[int, int], int]:
    """(gt label, pred label) -> voxel count of the overlap, for the gt labels in ``gt_boxes``."""
    out: dict[tuple[int, int], int] = {}
    for g, box in gt_boxes.items():
        add_intersections(out, g, pred[box][gt[box] == g])
    return out


def add_intersections(out: dict[tuple[int, int], int], g: int, pred_values_under_g: np.ndarray) -> None:
    """Add the overlaps of gt instance ``g`` given the predicted values under it (0 = background)."""
    counts = np.bincount(pred_values_under_g.ravel())
    for p in np.flatnonzero(counts):
        if p != 0:
            out[(int(g), int(p))] = int(counts[p])


def panoptic_from_counts(
    intersections: Mapping[tuple[int, int], int],
    gt_sizes: Mapping[int, int],
    pred_sizes: Mapping[int, int],
    match_iou: float = MATCH_IOU,
) -> PanopticResult:
    """PQ/SQ/RQ from instance sizes and pairwise intersections (pairs absent = no overlap).

    Intersections with labels missing from ``pred_sizes`` (ignored ids) are skipped.
    """
    if match_iou < 0.5:
        raise ValueError("unique matching needs an IoU threshold >= 0.5")
    matches: dict[int, int] = {}
    iou_sum = 0.0
    for (g, p), inter in intersections.items():
        if g not in gt_sizes or p not in pred_sizes:
            continue
        iou = inter / (gt_sizes[g] + pred_sizes[p] - inter)
        if iou > match_iou:
            matches[g] = p
            iou_sum += iou
    tp = len(matches)
    fp = len(pred_sizes) - tp
    fn = len(gt_sizes) - tp
    denom = tp + 0.5 * fp + 0.5 * fn
    rq = tp / denom if denom else 0.0
    sq = iou_sum / tp if tp else 0.0
    return PanopticResult(pq=sq * rq, sq=sq, rq=rq, tp=tp, fp=fp, fn=fn, iou_sum=iou_sum, matches=matches)


def panoptic_quality(gt: np.ndarray, pred: np.ndarray, match_iou: float = MATCH_IOU) -> PanopticResult:
    """PQ/SQ/RQ of two integer instance maps of the same shape (every non-zero id is an instance)."""
    if gt.shape != pred.shape:
        raise ValueError(f"label maps differ in shape: {gt.shape} vs {pred.shape}")
    gt_boxes = bounding_boxes(gt)
    pred_boxes = bounding_boxes(pred)
    gt_sizes = {g: int(np.count_nonzero(gt[b] == g)) for g, b in gt_boxes.items()}
    pred_sizes = {p: int(np.count_nonzero(pred[b] == p)) for p, b in pred_boxes.items()}
    return panoptic_from_counts(instance_intersections(gt, pred, gt_boxes), gt_sizes, pred_sizes, match_iou)
