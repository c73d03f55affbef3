"""PQ/SQ/RQ against monai.metrics.compute_panoptic_quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_cases import image, perturbed, random_labelmap
from monai.metrics import compute_panoptic_quality

from SpineSegLib.metrics import evaluate, panoptic_quality


def _monai(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    p, g = torch.from_numpy(pred.astype(np.int32)), torch.from_numpy(gt.astype(np.int32))
    out = {name: float(compute_panoptic_quality(p, g, metric_name=name)) for name in ("pq", "sq", "rq")}
    tp, fp, fn, _ = compute_panoptic_quality(p, g, output_confusion_matrix=True).tolist()
    out.update(tp=tp, fp=fp, fn=fn)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_panoptic_quality_equals_monai(seed):
    rng = np.random.default_rng(seed)
    gt = random_labelmap(rng, (20, 28, 24), [1, 2, 3, 4, 5, 6, 7, 8])
    pred = perturbed(rng, gt, extra_label=9)
    if seed % 2:  # swap two labels: the matching ignores ids, as MONAI's does
        pred = np.where(pred == 2, 3, np.where(pred == 3, 2, pred)).astype(pred.dtype)
    ref = _monai(gt, pred)
    ours = panoptic_quality(gt, pred)
    assert (ours.tp, ours.fp, ours.fn) == (ref["tp"], ref["fp"], ref["fn"])
    assert ours.fp >= 1 and ours.fn >= 1  # extra label and missing label
    for name in ("pq", "sq", "rq"):
        assert getattr(ours, name) == pytest.approx(ref[name], abs=1e-5), name
    ev = evaluate(image(pred), image(gt))
    for name in ("pq", "sq", "rq"):
        assert getattr(ev.summary, name) == pytest.approx(ref[name], abs=1e-5), name
    assert ev.summary.pq == pytest.approx(ev.summary.sq * ev.summary.rq)


def test_panoptic_matching_needs_iou_above_one_half():
    gt = np.zeros((4, 4, 8), np.uint8)
    gt[:, :, :4] = 1  # 64 voxels
    half = np.zeros_like(gt)
    half[:, :, :2] = 1  # IoU 32/64 = 0.5 exactly: not a match
    ours = panoptic_quality(gt, half)
    assert (ours.tp, ours.fp, ours.fn, ours.pq) == (0, 1, 1, 0.0)
    assert ours.pq == pytest.approx(_monai(gt, half)["pq"], abs=1e-5)
    more = np.zeros_like(gt)
    more[:, :, 1:5] = 7  # IoU 48/80 = 0.6, any id
    ours = panoptic_quality(gt, more)
    assert (ours.tp, ours.fp, ours.fn) == (1, 0, 0)
    assert ours.sq == pytest.approx(0.6) and ours.pq == pytest.approx(0.6) and ours.matches == {1: 7}
    ref = _monai(gt, more)
    assert ours.pq == pytest.approx(ref["pq"], abs=1e-5)
