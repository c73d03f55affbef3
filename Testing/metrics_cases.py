"""Random multi-label vertebra-like volumes and MONAI references for the metric tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
import torch
from monai.metrics import DiceMetric, HausdorffDistanceMetric, SurfaceDistanceMetric
from scipy import ndimage


def image(arr: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
    """A SimpleITK image of the [k, j, i] array with the given (i, j, k) spacing."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in origin])
    if direction is not None:
        img.SetDirection([float(d) for d in direction])
    return img


def random_labelmap(rng: np.random.Generator, shape: tuple[int, int, int], labels: Sequence[int]) -> np.ndarray:
    """Ellipsoids with a box-shaped 'process' per label; the first one is cut by the volume border."""
    arr = np.zeros(shape, np.uint8)
    idx = np.indices(shape, dtype=float)
    for n, lab in enumerate(labels):
        centre = rng.uniform(3, np.asarray(shape) - 3)
        if n == 0:
            centre[rng.integers(3)] = 0.5  # cut by a volume face: its surface lies on the border
        radii = rng.uniform(2.5, 6.0, size=3)
        m = sum(((idx[a] - centre[a]) / radii[a]) ** 2 for a in range(3)) <= 1.0
        k0, j0, i0 = (int(np.rint(c)) for c in centre)
        m[max(k0 - 1, 0) : k0 + 1, j0 : j0 + int(rng.integers(4, 9)), max(i0 - 1, 0) : i0 + 2] = True
        arr[m] = lab
    return arr


def perturbed(rng: np.random.Generator, gt: np.ndarray, extra_label: int | None = None) -> np.ndarray:
    """A prediction: per label one of identical / shifted / dilated / eroded / noisy / missing."""
    pred = np.zeros_like(gt)
    labels = [int(v) for v in np.unique(gt) if v]
    kinds = ["shift", "dilate", "erode", "noise", "same", "missing"]
    for n, lab in enumerate(labels):
        m = gt == lab
        kind = kinds[n % len(kinds)]
        if kind == "shift":
            m = ndimage.shift(m.astype(np.uint8), rng.integers(-2, 3, size=3), order=0).astype(bool)
        elif kind == "dilate":
            m = ndimage.binary_dilation(m)
        elif kind == "erode":
            m = ndimage.binary_erosion(m) if ndimage.binary_erosion(m).any() else m
        elif kind == "noise":
            m = m ^ (rng.random(m.shape) < 0.02) & ndimage.binary_dilation(m, iterations=2)
        elif kind == "missing":
            continue
        pred[m] = lab
    if extra_label is not None:
        c = np.asarray(gt.shape) // 2
        pred[c[0] - 2 : c[0] + 2, c[1] - 2 : c[1] + 3, c[2] - 1 : c[2] + 2] = extra_label
    return pred


def one_hot(arr: np.ndarray, n_classes: int) -> torch.Tensor:
    """(1, n_classes, *shape) float tensor, channel c = (arr == c)."""
    t = torch.from_numpy(arr.astype(np.int64))
    return torch.nn.functional.one_hot(t, n_classes).permute(3, 0, 1, 2)[None].float()


def monai_per_label(gt: np.ndarray, pred: np.ndarray, sampling: Sequence[float]) -> dict[str, np.ndarray]:
    """MONAI's Dice, HD, HD95 and symmetric ASSD per channel (index = label), background dropped."""
    n = int(max(gt.max(), pred.max())) + 1
    y, yp = one_hot(gt, n), one_hot(pred, n)
    sp = [float(s) for s in sampling]
    out = {
        "dice": DiceMetric(include_background=False, reduction="none")(yp, y),
        "hd": HausdorffDistanceMetric(include_background=False, reduction="none")(yp, y, spacing=sp),
        "hd95": HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")(yp, y, spacing=sp),
        "assd": SurfaceDistanceMetric(include_background=False, symmetric=True, reduction="none")(yp, y, spacing=sp),
    }
    # index by label: channel c-1 holds label c
    return {k: np.concatenate([[np.nan], v[0].numpy().astype(np.float64)]) for k, v in out.items()}
