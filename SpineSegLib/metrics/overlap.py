"""Voxel overlap of one vertebra: Dice, false negative Dice (FND), false positive Dice (FPD).

With TP, FP, FN the voxel counts of ground truth and prediction of one label:

- Dice = 2TP / (2TP + FP + FN)
- FND  = 2FN / (2TP + FP + FN)   (under-segmentation: missed voxels)
- FPD  = 2FP / (2TP + FP + FN)   (over-segmentation: extra voxels)

These are the seed paper's definitions (000, Lu et al. 2023, lumbar XUnet: its equations
are lost in our copy, but most rows of its tables satisfy DSC + FND + FPD = 2 - DSC, which
only these do). Hence FND + FPD = 2 (1 - Dice), i.e. Dice + (FND + FPD) / 2 = 1 (not
Dice + FND + FPD = 1): FND and FPD split the Dice error, each in [0, 2]. A vertebra
missing from the prediction has Dice 0, FND 2, FPD 0; one only in the prediction has
Dice 0, FND 0, FPD 2. Counting is done by the caller inside the union bounding box of the
two masks, which holds every voxel of either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OverlapCounts:
    """Voxel counts of one label: true positives, false positives, false negatives."""

    tp: int
    fp: int
    fn: int

    @property
    def n_gt(self) -> int:
        return self.tp + self.fn

    @property
    def n_pred(self) -> int:
        return self.tp + self.fp

    @property
    def _denominator(self) -> int:
        d = 2 * self.tp + self.fp + self.fn
        if d == 0:
            raise ValueError("Dice is undefined when both masks are empty")
        return d

    @property
    def dice(self) -> float:
        return 2 * self.tp / self._denominator

    @property
    def fnd(self) -> float:
        """False negative Dice: 2FN / (2TP + FP + FN)."""
        return 2 * self.fn / self._denominator

    @property
    def fpd(self) -> float:
        """False positive Dice: 2FP / (2TP + FP + FN)."""
        return 2 * self.fp / self._denominator

    @property
    def iou(self) -> float:
        """Intersection over union TP / (TP + FP + FN)."""
        return self.tp / (self.tp + self.fp + self.fn)


def overlap_counts(gt: np.ndarray | None, pred: np.ndarray | None) -> OverlapCounts:
    """TP/FP/FN of two boolean masks of the same shape (None = empty)."""
    if gt is None and pred is None:
        return OverlapCounts(0, 0, 0)
    if gt is None or pred is None:
        n = int(np.count_nonzero(pred if gt is None else gt))
        return OverlapCounts(0, n, 0) if gt is None else OverlapCounts(0, 0, n)
    if gt.shape != pred.shape:
        raise ValueError(f"masks differ in shape: {gt.shape} vs {pred.shape}")
    tp = int(np.count_nonzero(gt & pred))
    return OverlapCounts(tp, int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(gt)) - tp)
