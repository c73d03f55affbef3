"""Centroid metrics: point error and identification (Glocker et al. 2013; VerSe).

- Point error PE(v) = ||p_v - g_v|| in mm (LPS), for a vertebra v with both a predicted
  centroid p_v and a ground-truth centroid g_v.
- v is *identified* when p_v exists, ||p_v - g_v|| <= threshold (20 mm) and no other
  ground-truth centroid is strictly closer to p_v than g_v (the closest ground truth is
  searched over *all* ground-truth vertebrae, as in Payer's evaluation; anjany/verse's
  notebook restricts it to labels present in both, which can only identify more).
  A tie with another ground-truth centroid counts as identified; the threshold is
  inclusive (both reference implementations reject only d > 20 mm).
- id rate = identified / number of ground-truth vertebrae; a vertebra without a
  predicted centroid is not identified. Predicted centroids of labels absent from the
  ground truth do not count.
"""

from __future__ import annotations

import numpy as np

from ..centroids import Centroids

DEFAULT_ID_THRESHOLD_MM = 20.0


def point_errors(pred: Centroids, gt: Centroids) -> dict[int, float]:
    """Label -> distance (mm) between predicted and ground-truth centroid, for labels in both."""
    return {lab: float(np.linalg.norm(pred[lab] - gt[lab])) for lab in gt if lab in pred}


def identified(pred: Centroids, gt: Centroids, threshold_mm: float = DEFAULT_ID_THRESHOLD_MM) -> dict[int, bool]:
    """Ground-truth label -> whether it is identified (see the module docstring)."""
    if threshold_mm <= 0:
        raise ValueError(f"identification threshold must be positive, got {threshold_mm} mm")
    gt_labels = gt.labels
    gt_points = gt.array(gt_labels)
    out: dict[int, bool] = {}
    for k, lab in enumerate(gt_labels):
        if lab not in pred:
            out[lab] = False
            continue
        d = np.linalg.norm(gt_points - pred[lab], axis=1)
        out[lab] = bool(d[k] <= threshold_mm and d[k] <= d.min())
    return out


def identification_rate(pred: Centroids, gt: Centroids, threshold_mm: float = DEFAULT_ID_THRESHOLD_MM) -> float:
    """Identified ground-truth vertebrae / ground-truth vertebrae."""
    if len(gt) == 0:
        raise ValueError("identification rate needs at least one ground-truth centroid")
    ids = identified(pred, gt, threshold_mm)
    return sum(ids.values()) / len(ids)
