"""Image grids and the maps between voxel and physical (LPS mm) frames.

Everything here is correct for oblique direction matrices and anisotropic spacing: a grid
is (size, spacing, origin, direction) exactly as ITK defines it, and every resampling goes
through SimpleITK with an explicit output grid.

Index convention: continuous ITK indices (i, j, k), i fastest, voxel centres at integers.
The numpy array of an image (``sitk.GetArrayFromImage``) is indexed [k, j, i].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

try:
    import SimpleITK as sitk
except ImportError:  # a training-only (GPU) machine: Grid and the point maps need numpy alone
    sitk = None

INTERPOLATORS = (
    {
        "nearest": sitk.sitkNearestNeighbor,
        "linear": sitk.sitkLinear,
        "bspline": sitk.sitkBSpline,
        "label_gaussian": sitk.sitkLabelGaussian,
    }
    if sitk
    else {}
)

#: Tolerance (voxels) of :meth:`Grid.contains` at the box faces: far above float rounding, far below any real offset.
CONTAINS_TOL_VOX = 1e-6


@dataclass(frozen=True)
class Grid:
    """A voxel grid in physical space (ITK geometry); cheap, holds no pixels."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @classmethod
    def of(cls, image: sitk.Image) -> Grid:
        return cls(
            tuple(int(s) for s in image.GetSize()),
            tuple(float(s) for s in image.GetSpacing()),
            tuple(float(o) for o in image.GetOrigin()),
            tuple(float(d) for d in image.GetDirection()),
        )

    @classmethod
    def centered(
        cls,
        center: Sequence[float],
        size: Sequence[int],
        spacing: Sequence[float],
        direction: Sequence[float] | np.ndarray | None = None,
    ) -> Grid:
        """A grid of ``size`` voxels at ``spacing`` whose box is centred on the LPS point ``center``."""
        size_a = np.asarray(size, dtype=int)
        sp = np.asarray(spacing, dtype=float)
        d = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
        origin = np.asarray(center, float) - d @ (sp * (size_a - 1) / 2.0)
        return cls(tuple(int(s) for s in size_a), tuple(sp.tolist()), tuple(origin.tolist()), tuple(d.ravel().tolist()))

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def index_to_physical_matrix(self) -> np.ndarray:
        """4x4 affine from continuous (i, j, k) index to LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing)
        a[:3, 3] = self.origin
        return a

    @property
    def shape_kji(self) -> tuple[int, int, int]:
        """Shape of the numpy array of an image on this grid."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def center(self) -> np.ndarray:
        return self.index_to_physical((np.asarray(self.size) - 1) / 2.0)[0]

    def index_to_physical(self, index: np.ndarray | Sequence[float]) -> np.ndarray:
        """(N, 3) continuous ITK indices (i, j, k) -> (N, 3) LPS mm."""
        idx = np.atleast_2d(np.asarray(index, dtype=float))
        m = self.index_to_physical_matrix
        return idx @ m[:3, :3].T + m[:3, 3]

    def physical_to_index(self, points: np.ndarray | Sequence[float]) -> np.ndarray:
        """(N, 3) LPS mm -> (N, 3) continuous ITK indices (i, j, k)."""
        p = np.atleast_2d(np.asarray(points, dtype=float))
        m = self.index_to_physical_matrix
        return np.linalg.solve(m[:3, :3], (p - m[:3, 3]).T).T

    def contains(self, points: np.ndarray | Sequence[float], margin_vox: float = 0.0) -> np.ndarray:
        """Whether each LPS point lies inside the grid's box (voxel edges) shrunk by ``margin_vox`` voxels.

        The box's faces count as inside, to ``CONTAINS_TOL_VOX`` voxels, so that a corner or face
        point computed in floating point is not rejected by rounding in the last bit.
        """
        idx = self.physical_to_index(points)
        lo = -0.5 + margin_vox - CONTAINS_TOL_VOX
        hi = np.asarray(self.size) - 0.5 - margin_vox + CONTAINS_TOL_VOX
        return np.all((idx >= lo) & (idx <= hi), axis=1)

    def corners(self) -> np.ndarray:
        """(8, 3) LPS corners of the grid's box (voxel edges, not centres)."""
        s = np.asarray(self.size, float)
        c = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float) * s - 0.5
        return self.index_to_physical(c)

    def mask_box(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) LPS corners of the axis-aligned box around the True voxels of ``mask`` ([k, j, i]; voxel edges)."""
        kji = np.argwhere(mask)
        lo, hi = kji.min(axis=0)[::-1] - 0.5, kji.max(axis=0)[::-1] + 0.5
        unit = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
        pts = self.index_to_physical(lo + unit * (hi - lo))
        return pts.min(axis=0), pts.max(axis=0)

    def empty_image(self, pixel_type: int | None = None) -> sitk.Image:
        img = sitk.Image([int(s) for s in self.size], sitk.sitkUInt8 if pixel_type is None else pixel_type)
        self.apply(img)
        return img

    def apply(self, image: sitk.Image) -> sitk.Image:
        """Set this grid's geometry on ``image`` (same size required) and return it."""
        if tuple(image.GetSize()) != tuple(self.size):
            raise ValueError(f"image size {image.GetSize()} does not match grid size {self.size}")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def same_as(self, other: Grid, tol: float = 1e-4) -> bool:
        """Equal size, and spacing/origin/direction within ``tol`` (mm, or unitless for direction)."""
        # rtol=0: np.allclose's default relative term would loosen the origin test far from 0.
        return (
            tuple(self.size) == tuple(other.size)
            and np.allclose(self.spacing, other.spacing, rtol=0.0, atol=tol)
            and np.allclose(self.origin, other.origin, rtol=0.0, atol=tol)
            and np.allclose(self.direction, other.direction, rtol=0.0, atol=tol)
        )


# ----------------------------------------------------------------------------------------
# Point maps on images


def index_to_physical(image: sitk.Image, index: np.ndarray | Sequence[float]) -> np.ndarray:
    """(N, 3) continuous ITK indices -> (N, 3) LPS mm for ``image``'s grid."""
    return Grid.of(image).index_to_physical(index)


def physical_to_index(image: sitk.Image, points: np.ndarray | Sequence[float]) -> np.ndarray:
    """(N, 3) LPS mm -> (N, 3) continuous ITK indices for ``image``'s grid."""
    return Grid.of(image).physical_to_index(points)


def orientation_code(image_or_direction: sitk.Image | Sequence[float]) -> str:
    """Three-letter DICOM/ITK code ("LPS" = identity) of the axes nearest the direction matrix."""
    if isinstance(image_or_direction, sitk.Image):
        d = image_or_direction.GetDirection()
    else:
        d = image_or_direction
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines([float(x) for x in d])


def is_oblique(image: sitk.Image, tol: float = 1e-4) -> bool:
    d = np.abs(np.asarray(image.GetDirection()).reshape(3, 3))
    return bool(np.any((d > tol) & (d < 1 - tol)))


# ----------------------------------------------------------------------------------------
# Resampling


def reorient(image: sitk.Image, orientation: str = "LPS") -> sitk.Image:
    """Permute/flip axes so that they point as close as possible to ``orientation``.

    No interpolation: voxels are kept exactly. For an oblique image the result is still
    oblique (its axes are only the nearest to ``orientation``); use :func:`resample_to_grid`
    with an axis-aligned :class:`Grid` when a truly axis-aligned grid is needed.
    """
    return sitk.DICOMOrient(image, orientation)


def resample_to_grid(
    image: sitk.Image,
    grid: Grid,
    *,
    interpolator: str = "linear",
    default_value: float = 0.0,
    pixel_type: int | None = None,
) -> sitk.Image:
    """Resample ``image`` onto ``grid`` (identity transform in physical space)."""
    f = sitk.ResampleImageFilter()
    f.SetSize([int(s) for s in grid.size])
    f.SetOutputSpacing(grid.spacing)
    f.SetOutputOrigin(grid.origin)
    f.SetOutputDirection(grid.direction)
    f.SetInterpolator(INTERPOLATORS[interpolator])
    f.SetDefaultPixelValue(float(default_value))
    f.SetOutputPixelType(image.GetPixelID() if pixel_type is None else pixel_type)
    return f.Execute(image)


def resample_like(
    image: sitk.Image, reference: sitk.Image, *, is_label: bool = False, default_value: float = 0.0
) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid (nearest for labels, linear otherwise)."""
    return resample_to_grid(
        image, Grid.of(reference), interpolator="nearest" if is_label else "linear", default_value=default_value
    )


def grid_with_spacing(grid: Grid, spacing: Sequence[float] | float) -> Grid:
    """The same physical box and direction sampled at ``spacing`` (the box's first edge is kept)."""
    new_sp = np.broadcast_to(np.asarray(spacing, dtype=float), (3,)).copy()
    if np.any(new_sp <= 0):
        raise ValueError(f"spacing must be positive, got {new_sp.tolist()}")
    old_sp = np.asarray(grid.spacing)
    extent = np.asarray(grid.size) * old_sp
    new_size = np.maximum(1, np.round(extent / new_sp)).astype(int)
    d = grid.direction_matrix
    # Keep the box's corner (origin - half a voxel) fixed.
    new_origin = np.asarray(grid.origin) + d @ ((new_sp - old_sp) / 2.0)
    return Grid(tuple(int(s) for s in new_size), tuple(new_sp.tolist()), tuple(new_origin.tolist()), grid.direction)


def resample_to_spacing(
    image: sitk.Image,
    spacing: Sequence[float] | float,
    *,
    is_label: bool = False,
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample to ``spacing`` mm, keeping direction and physical box.

    Linear interpolation for images, nearest neighbour for labels.
    """
    target = grid_with_spacing(Grid.of(image), spacing)
    return resample_to_grid(
        image, target, interpolator="nearest" if is_label else "linear", default_value=default_value
    )


def axis_aligned_grid(image: sitk.Image, spacing: Sequence[float] | float | None = None) -> Grid:
    """The LPS-identity grid covering ``image``'s box (for oblique images: its bounding box)."""
    g = Grid.of(image)
    sp = np.asarray(g.spacing if spacing is None else np.broadcast_to(spacing, (3,)), dtype=float)
    if spacing is None and is_oblique(image):
        sp = np.full(3, float(np.min(sp)))
    elif spacing is None:
        # Permute spacing to the LPS axes the image axes map to.
        perm = np.argmax(np.abs(g.direction_matrix), axis=0)
        sp_lps = np.empty(3)
        sp_lps[perm] = g.spacing
        sp = sp_lps
    corners = g.corners()
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    # ceil, not round: the grid must cover the whole box (rounding down cut off oblique corners);
    # the tolerance keeps an exact fit (axis-aligned input) from gaining a voxel to float rounding.
    size = np.maximum(1, np.ceil((hi - lo) / sp - 1e-6)).astype(int)
    # Spread the extra (at most one voxel per axis) evenly on both sides of the box.
    origin = (lo + hi) / 2.0 - sp * (size - 1) / 2.0
    return Grid(tuple(int(s) for s in size), tuple(sp.tolist()), tuple(origin.tolist()))


def crop_box(
    image: sitk.Image,
    center: Sequence[float],
    size: Sequence[int],
    spacing: Sequence[float] | float,
    *,
    direction: Sequence[float] | None = None,
    interpolator: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """A ``size``-voxel crop at ``spacing`` centred on the LPS point ``center``.

    The crop's axes are LPS unless ``direction`` is given; parts outside ``image`` are
    padded with ``default_value``. Use ``interpolator="nearest"`` for labels.
    """
    sp = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    grid = Grid.centered(center, size, sp, direction)
    return resample_to_grid(image, grid, interpolator=interpolator, default_value=default_value)
