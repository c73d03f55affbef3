"""Landmark heatmaps: analytic Gaussian targets and sub-voxel maxima (Payer et al. 2019/2020).

Targets are ``h(x) = scale * exp(-|x - mu|^2 / (2 sigma^2))`` evaluated at voxel centres with a continuous
centre ``mu`` (sigma in voxels of the grid). MONAI's ``GenerateHeatmap`` rounds ``mu`` to the nearest voxel
(up to half a voxel of error), hence the hand-written version here.

Maxima follow Payer 2020: optional Gaussian smoothing, strict maxima over the 26-neighbourhood, boundary
voxels excluded, sub-voxel refinement by a 1-D quadratic fit per axis on the unsmoothed heatmap.
Voxel indices stay in this module: :func:`heatmap_candidates` hands out LPS millimetres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .centroids import Centroids
from .geometry import Grid
from .labels import HEATMAP_LABELS

if TYPE_CHECKING:
    import torch

__all__ = [
    "Candidate",
    "gaussian_heatmap",
    "gaussian_heatmaps_torch",
    "heatmap_candidates",
    "heatmap_targets",
    "local_maxima",
    "refine_quadratic",
    "spine_heatmap",
]


@dataclass(frozen=True, eq=False)
class Candidate:
    """One heatmap maximum of one channel: the landmark hypothesis ``label`` at ``point_lps`` (mm)."""

    label: int
    point_lps: np.ndarray
    value: float

    def __post_init__(self) -> None:
        p = np.array(self.point_lps, dtype=np.float64).reshape(-1)
        if p.shape != (3,):
            raise ValueError(f"candidate of label {self.label} needs a 3-D point, got {p.shape[0]} coordinates")
        p.setflags(write=False)
        object.__setattr__(self, "point_lps", p)
        object.__setattr__(self, "label", int(self.label))
        object.__setattr__(self, "value", float(self.value))

    def __repr__(self) -> str:
        return (
            f"Candidate(label={self.label}, point_lps={np.round(self.point_lps, 2).tolist()}, value={self.value:.3f})"
        )


# ----------------------------------------------------------------------------------------
# Targets


def _sigma_ijk(sigma_vox: float | Sequence[float]) -> np.ndarray:
    s = np.broadcast_to(np.asarray(sigma_vox, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"sigma must be positive and finite, got {s.tolist()}")
    return s


def gaussian_heatmap(
    shape_kji: Sequence[int],
    center_ijk: Sequence[float],
    sigma_vox: float | Sequence[float],
    scale: float = 1.0,
    normalize: bool = False,
    truncate: float | None = 4.0,
) -> np.ndarray:
    """A float32 ``[k, j, i]`` array holding ``scale * exp(-|x - mu|^2 / (2 sigma^2))`` at voxel centres.

    ``center_ijk`` is a continuous ITK index (i, j, k) and is never rounded; ``sigma_vox`` is in voxels, one value
    or one per axis (i, j, k). ``normalize`` divides ``scale`` by ``(sqrt(2 pi) sigma)^3`` (unit integral, as
    Payer 2019). With ``truncate`` the Gaussian is evaluated only inside the box ``|x - mu| <= truncate * sigma``
    per axis and is zero outside (``None``: the whole grid).
    """
    shape = tuple(int(n) for n in shape_kji)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape_kji must be 3 positive sizes, got {shape}")
    mu = np.asarray(center_ijk, dtype=np.float64).reshape(-1)
    if mu.shape != (3,) or not np.all(np.isfinite(mu)):
        raise ValueError(f"center_ijk must be 3 finite numbers, got {mu.tolist()}")
    sigma = _sigma_ijk(sigma_vox)
    if normalize:
        scale = scale / float(np.prod(np.sqrt(2.0 * np.pi) * sigma))
    out = np.zeros(shape, dtype=np.float32)
    n_ijk = shape[::-1]
    lo = np.zeros(3, dtype=int)
    hi = np.asarray(n_ijk, dtype=int) - 1
    if truncate is not None:
        lo = np.maximum(lo, np.ceil(mu - truncate * sigma).astype(int))
        hi = np.minimum(hi, np.floor(mu + truncate * sigma).astype(int))
        if np.any(lo > hi):
            return out
    # The Gaussian is separable: an outer product of three 1-D profiles.
    g = [
        np.exp(-((np.arange(lo[d], hi[d] + 1, dtype=np.float64) - mu[d]) ** 2) / (2.0 * sigma[d] ** 2))
        for d in range(3)
    ]
    box = scale * g[2][:, None, None] * g[1][None, :, None] * g[0][None, None, :]
    out[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1] = box
    return out


def heatmap_targets(
    grid: Grid,
    centroids: Centroids,
    labels: Sequence[int] = HEATMAP_LABELS,
    sigma_vox: float | Sequence[float] = 3.0,
    scale: float = 1.0,
    normalize: bool = False,
    truncate: float | None = 4.0,
) -> np.ndarray:
    """(C, k, j, i) float32 Gaussian targets on ``grid``, channel ``c`` = landmark ``labels[c]``.

    A channel whose landmark is missing or lies outside the grid's box is all zero (Payer: invalid landmark).
    ``sigma_vox`` is one value for all channels or one value per channel.
    """
    labels = [int(lab) for lab in labels]
    sig = np.asarray(sigma_vox, dtype=np.float64)
    sigmas = np.full(len(labels), float(sig)) if sig.ndim == 0 else sig.reshape(-1)
    if sigmas.shape != (len(labels),):
        raise ValueError(f"sigma_vox needs one value or one per channel ({len(labels)}), got {sigmas.size}")
    out = np.zeros((len(labels), *grid.shape_kji), dtype=np.float32)
    for c, label in enumerate(labels):
        if label not in centroids:
            continue
        point = centroids[label]
        if not grid.contains(point)[0]:
            continue
        center = grid.physical_to_index(point)[0]
        out[c] = gaussian_heatmap(grid.shape_kji, center, sigmas[c], scale, normalize, truncate)
    return out


def spine_heatmap(
    grid: Grid,
    centroids: Centroids,
    sigma_vox: float = 3.0,
    smoothing_sigma_vox: float | None = None,
    labels: Sequence[int] = HEATMAP_LABELS,
) -> np.ndarray:
    """Payer 2020 stage-1 target: the sum of all landmark Gaussians, smoothed, min-max normalised to [0, 1].

    Smoothing is a Gaussian of ``smoothing_sigma_vox`` voxels (default: ``sigma_vox``), edges replicated so the
    spine keeps its height where it leaves the image. No landmark on the grid gives an all-zero map.
    """
    smooth = sigma_vox if smoothing_sigma_vox is None else smoothing_sigma_vox
    total = np.zeros(grid.shape_kji, dtype=np.float64)
    for label in labels:
        if label in centroids and grid.contains(centroids[label])[0]:
            total += gaussian_heatmap(grid.shape_kji, grid.physical_to_index(centroids[label])[0], sigma_vox)
    if smooth > 0:
        total = ndimage.gaussian_filter(total, smooth, mode="nearest")
    lo, hi = float(total.min()), float(total.max())
    if hi - lo <= 0:
        return np.zeros(grid.shape_kji, dtype=np.float32)
    return ((total - lo) / (hi - lo)).astype(np.float32)


def gaussian_heatmaps_torch(
    shape_kji: Sequence[int],
    centers_ijk: torch.Tensor,
    sigma_vox: float | torch.Tensor = 3.0,
    scale: float = 1.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Torch version of :func:`gaussian_heatmap` for training: ``(..., 3)`` centres -> ``(..., k, j, i)``.

    ``centers_ijk`` are continuous (i, j, k) indices with any leading dims (e.g. batch, channel);
    ``sigma_vox`` is a float or a tensor broadcastable to the leading dims (differentiable, so a learnable sigma
    works); ``valid`` (leading dims, bool) zeroes missing landmarks. Dense (no truncation), on the centres' device.
    """
    import torch

    c = torch.as_tensor(centers_ijk)
    if not torch.is_floating_point(c):
        c = c.float()
    if c.shape[-1] != 3:
        raise ValueError(f"centers_ijk must end in 3 coordinates, got shape {tuple(c.shape)}")
    sigma = torch.as_tensor(sigma_vox, dtype=c.dtype, device=c.device)
    sigma = torch.broadcast_to(sigma, c.shape[:-1])[..., None]
    k_size, j_size, i_size = (int(n) for n in shape_kji)

    def profile(n: int, mu: torch.Tensor) -> torch.Tensor:
        x = torch.arange(n, dtype=c.dtype, device=c.device)
        return torch.exp(-((x - mu[..., None]) ** 2) / (2.0 * sigma**2))

    gk, gj, gi = profile(k_size, c[..., 2]), profile(j_size, c[..., 1]), profile(i_size, c[..., 0])
    h = scale * gk[..., :, None, None] * gj[..., None, :, None] * gi[..., None, None, :]
    if valid is not None:
        h = h * torch.as_tensor(valid, device=c.device).to(c.dtype)[..., None, None, None]
    return h


# ----------------------------------------------------------------------------------------
# Maxima


def refine_quadratic(heatmap: np.ndarray, index_kji: Sequence[int]) -> np.ndarray:
    """Sub-voxel position (i, j, k) of a maximum by a 1-D quadratic fit through 3 voxels per axis.

    ``delta = 0.5 (p- - p+) / (p- - 2 p0 + p+)``, clipped to [-0.5, 0.5]; an axis where the three values are not
    concave (zero or positive curvature) or the voxel has no neighbour on both sides keeps delta = 0.
    """
    h = np.asarray(heatmap)
    idx = tuple(int(x) for x in index_kji)
    delta = np.zeros(3)
    for axis in range(3):
        x = idx[axis]
        if x - 1 < 0 or x + 1 >= h.shape[axis]:
            continue
        before, after = list(idx), list(idx)
        before[axis] -= 1
        after[axis] += 1
        pm, p0, pp = float(h[tuple(before)]), float(h[idx]), float(h[tuple(after)])
        denom = pm - 2.0 * p0 + pp
        if denom < 0:
            delta[axis] = np.clip(0.5 * (pm - pp) / denom, -0.5, 0.5)
    return (np.asarray(idx, dtype=np.float64) + delta)[::-1].copy()


def local_maxima(
    heatmap_kji: np.ndarray,
    min_value: float = 0.05,
    smoothing_sigma: float = 0.0,
    include_border: bool = False,
) -> list[tuple[np.ndarray, float]]:
    """Strict local maxima of a ``[k, j, i]`` heatmap as ``(center_ijk (3,), value)``, value descending.

    A voxel is a maximum when its (optionally Gaussian-smoothed, ``smoothing_sigma`` voxels) value is strictly
    greater than all 26 neighbours; plateaus therefore give none. Boundary voxels are never maxima unless
    ``include_border`` (then missing neighbours do not count). ``value`` is the unsmoothed heatmap at the maximum
    voxel (the network's own response; smoothing only decides where maxima are) and must exceed ``min_value``.
    The position is refined on the unsmoothed heatmap (:func:`refine_quadratic`).
    """
    full = np.asarray(heatmap_kji)
    if full.ndim != 3:
        raise ValueError(f"heatmap must be 3-D [k, j, i], got {full.ndim} dimensions")
    if not np.all(np.isfinite(full)):
        raise ValueError("heatmap contains non-finite values")
    above = np.argwhere(full > min_value)
    if not len(above):
        return []
    # Work only in the box of supra-threshold voxels plus the smoothing radius and one voxel: every
    # value that decides a candidate is then computed exactly as on the whole heatmap, at a fraction
    # of the cost (a network heatmap is mostly below the threshold).
    radius = int(4.0 * smoothing_sigma + 0.5) + 1 if smoothing_sigma > 0 else 1
    lo = np.maximum(above.min(axis=0) - radius, 0)
    hi = np.minimum(above.max(axis=0) + radius + 1, full.shape)
    h = full[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.float64)
    s = ndimage.gaussian_filter(h, smoothing_sigma, mode="nearest") if smoothing_sigma > 0 else h
    # Cheap pre-selection (equal to the 3x3x3 max), then strictness checked on the few survivors.
    is_candidate = (s == ndimage.maximum_filter(s, size=3, mode="constant", cval=-np.inf)) & (h > min_value)
    if not include_border:  # the whole heatmap's border voxels, where they lie inside the box
        for axis in range(3):
            sl = [slice(None)] * 3
            if lo[axis] == 0:
                sl[axis] = 0
                is_candidate[tuple(sl)] = False
            if hi[axis] == full.shape[axis]:
                sl[axis] = -1
                is_candidate[tuple(sl)] = False
    padded = np.pad(s, 1, mode="constant", constant_values=-np.inf)
    found: list[tuple[np.ndarray, float]] = []
    for k, j, i in np.argwhere(is_candidate):
        neighbourhood = padded[k : k + 3, j : j + 3, i : i + 3]
        if np.count_nonzero(neighbourhood >= s[k, j, i]) != 1:
            continue  # another neighbour reaches the same value: not strict
        refined = refine_quadratic(h, (k, j, i)) + lo[::-1]
        found.append((refined, float(h[k, j, i])))
    found.sort(key=lambda m: -m[1])  # stable: ties keep index order
    return found


def heatmap_candidates(
    heatmaps: np.ndarray,
    grid: Grid,
    labels: Sequence[int] = HEATMAP_LABELS,
    min_value: float = 0.05,
    smoothing_sigma: float = 2.0,
    max_per_channel: int | None = None,
    include_border: bool = False,
) -> dict[int, list[Candidate]]:
    """Landmark candidates of ``(C, k, j, i)`` heatmaps on ``grid``: label -> candidates in LPS mm, best first.

    Every label of ``labels`` gets a (possibly empty) list; ``max_per_channel`` keeps the strongest maxima only.
    Defaults follow Payer 2020 (smoothing 2 voxels, values above 0.05).
    """
    hm = np.asarray(heatmaps)
    labels = [int(lab) for lab in labels]
    if hm.ndim != 4 or hm.shape[0] != len(labels) or tuple(hm.shape[1:]) != tuple(grid.shape_kji):
        raise ValueError(
            f"heatmaps of shape {tuple(hm.shape)} do not match {len(labels)} labels on a grid of shape {grid.shape_kji}"
        )
    result: dict[int, list[Candidate]] = {}
    for c, label in enumerate(labels):
        maxima = local_maxima(hm[c], min_value, smoothing_sigma, include_border)
        if max_per_channel is not None:
            maxima = maxima[: max(0, int(max_per_channel))]
        result[label] = [Candidate(label, grid.index_to_physical(ijk)[0], value) for ijk, value in maxima]
    return result
