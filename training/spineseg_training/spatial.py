"""Random spatial augmentation: affine (translation, rotation, scaling) and elastic deformation.

A transform maps points of the *output* crop (network grid) to points of the input image,
all in LPS mm: ``p_in = c + t + A (p + d(p) - c)``, with ``d`` a smooth displacement
interpolated (cubic) from a coarse random control grid over the crop (Payer et al.: 6x6x6
control points, up to 25 mm). Landmarks are carried into the crop by inverting the map
numerically. Sampling reads only the input block the crop touches, so a memory-mapped
1 mm volume serves crops without loading the whole case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.spatial.transform import Rotation

from SpineSegLib.geometry import Grid


@dataclass(frozen=True)
class AugmentationConfig:
    translation_mm: float = 30.0
    rotation_rad: float = 0.25
    scale: float = 0.15  # isotropic scale in 1 +- scale
    axis_scale: float = 0.15  # extra per-axis scale in 1 +- axis_scale
    elastic_points: int = 6
    elastic_max_mm: float = 8.0  # small enough for the control spacing of the crops: no folding
    flip_lr: bool = False  # random left-right flip (landmarks are not L/R specific)

    @classmethod
    def none(cls) -> AugmentationConfig:
        return cls(0.0, 0.0, 0.0, 0.0, 0, 0.0, False)


@dataclass
class SpatialTransform:
    center: np.ndarray  # (3,) LPS mm, the centre of the output crop
    translation: np.ndarray  # (3,)
    matrix: np.ndarray  # (3, 3)
    field: np.ndarray | None = None  # (3, n, n, n) control displacements (mm) over the crop box
    grid: Grid | None = None  # the crop grid the control points span

    @classmethod
    def identity(cls, center) -> SpatialTransform:
        return cls(np.asarray(center, float), np.zeros(3), np.eye(3))

    @classmethod
    def random(cls, rng: np.random.Generator, grid: Grid, cfg: AugmentationConfig) -> SpatialTransform:
        center = grid.center
        t = rng.uniform(-cfg.translation_mm, cfg.translation_mm, 3)
        r = Rotation.from_rotvec(rng.uniform(-cfg.rotation_rad, cfg.rotation_rad, 3)).as_matrix()
        s = rng.uniform(1 - cfg.scale, 1 + cfg.scale) * rng.uniform(1 - cfg.axis_scale, 1 + cfg.axis_scale, 3)
        m = r @ np.diag(s)
        if cfg.flip_lr and rng.random() < 0.5:
            m = m @ np.diag([-1.0, 1.0, 1.0])
        field = None
        if cfg.elastic_points >= 2 and cfg.elastic_max_mm > 0:
            n = cfg.elastic_points
            field = rng.uniform(-cfg.elastic_max_mm, cfg.elastic_max_mm, (3, n, n, n))
        return cls(center, t, m, field, grid if field is not None else None)

    # -- point maps ---------------------------------------------------------------------
    def displacement(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) elastic displacement (mm) at output points: a cubic B-spline with the random control values.

        The control values are B-spline coefficients (no interpolating prefilter), as in a B-spline
        transform, so the field is smooth and never larger than the largest control value.
        """
        if self.field is None:
            return np.zeros_like(points)
        n = self.field.shape[1]
        corners = self.grid.corners()
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        # Control points span the crop box; outside it the field is extended as constant.
        coords = ((points - lo) / np.maximum(hi - lo, 1e-6) * (n - 1)).T
        return np.stack(
            [
                ndimage.map_coordinates(self.field[d], coords, order=3, mode="nearest", prefilter=False)
                for d in range(3)
            ],
            axis=1,
        )

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) output-crop points -> input points (LPS mm)."""
        p = np.atleast_2d(points).astype(float)
        q = p + self.displacement(p)
        return self.center + self.translation + (q - self.center) @ self.matrix.T

    def invert(self, points: np.ndarray, iterations: int = 30, tol: float = 1e-5) -> np.ndarray:
        """(N, 3) input points -> output-crop points, by Newton's method on the smooth map."""
        target = np.atleast_2d(points).astype(float)
        m_inv = np.linalg.inv(self.matrix)
        p = self.center + (target - self.center - self.translation) @ m_inv.T
        if self.field is None:
            return p
        h = 0.05  # mm, central differences for the Jacobian of the displacement
        eye = np.eye(3)
        for _ in range(iterations):
            residual = self.apply(p) - target
            if np.abs(residual).max() < tol:
                break
            grad = np.stack(
                [(self.displacement(p + h * eye[a]) - self.displacement(p - h * eye[a])) / (2 * h) for a in range(3)],
                axis=2,
            )  # (N, 3, 3): d displacement_i / d p_a
            jac = self.matrix[None] @ (eye[None] + grad)
            p = p - np.linalg.solve(jac, residual[..., None])[..., 0]
        return p


def _coarse_axis(n: int, stride: int) -> np.ndarray:
    m = max(2, int(np.ceil((n - 1) / stride)) + 1)
    return np.linspace(0.0, n - 1.0, m) if n > 1 else np.zeros(1)


def sampling_coordinates(
    volume_grid: Grid, out_grid: Grid, transform: SpatialTransform, stride: int = 4
) -> torch.Tensor:
    """(K, J, I, 3) continuous input indices (i, j, k) of every output voxel, as float32.

    The map is smooth (affine + a spline over a few control points), so it is evaluated exactly on a
    lattice every ``stride`` voxels (ends included) and interpolated trilinearly in between.
    """
    axes = [_coarse_axis(n, stride) for n in out_grid.shape_kji]
    kk, jj, ii = np.meshgrid(*axes, indexing="ij")
    lattice = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
    idx = volume_grid.physical_to_index(transform.apply(out_grid.index_to_physical(lattice)))
    coarse = torch.from_numpy(idx.T.reshape(3, *kk.shape).astype(np.float32))[None]
    full = F.interpolate(coarse, size=out_grid.shape_kji, mode="trilinear", align_corners=True)
    return full[0].permute(1, 2, 3, 0)


def sample_array(
    volume: np.ndarray,
    volume_grid: Grid,
    out_grid: Grid,
    transform: SpatialTransform,
    order: int = 1,
    cval: float = 0.0,
    select: int | None = None,
) -> np.ndarray:
    """Resample ``volume`` ([k, j, i] on ``volume_grid``) into ``out_grid`` through ``transform``: [k, j, i] float32.

    Linear (``order=1``) or nearest (``order=0``) interpolation, ``cval`` outside the volume. Only
    the block of ``volume`` the crop touches is read (cheap on memory-mapped arrays).
    ``select``: resample the indicator ``volume == select`` instead (linear: the fraction of that
    label around each output point, a partial-volume mask).
    """
    coords = sampling_coordinates(volume_grid, out_grid, transform)
    flat = coords.reshape(-1, 3)
    lo = np.maximum(np.floor(flat.min(0).values.numpy()).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(flat.max(0).values.numpy()).astype(int) + 2, np.asarray(volume_grid.size))
    if np.any(hi <= lo + 1):
        return np.full(out_grid.shape_kji, cval, dtype=np.float32)
    block = volume[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]]
    block = torch.from_numpy(np.array(block == select if select is not None else block, dtype=np.float32))
    size = torch.tensor((hi - lo - 1).astype(np.float32))  # (i, j, k) extents - 1 for align_corners
    norm = (coords - torch.from_numpy(lo.astype(np.float32))) / size * 2.0 - 1.0
    # grid_sample pads with zeros: shift by cval so that "outside" means cval.
    out = F.grid_sample(
        (block - cval)[None, None],
        norm[None],
        mode="bilinear" if order == 1 else "nearest",
        padding_mode="zeros",
        align_corners=True,
    )[0, 0]
    out = (out + cval).numpy()
    return np.clip(out, 0.0, 1.0, out=out) if select is not None else out  # no float overshoot of a fraction
