"""The CT and the label map around one vertebra, sampled in the vertebra's own frame.

The anatomical cues (:mod:`SpineSegLib.rib_cues`, :mod:`SpineSegLib.sacrum_cue`) look for bone beside or
below a vertebra. Measured in a frame that follows the spine (x: the patient's left, y: posterior, s:
caudal along the spine, from the neighbours' centroids), "75 mm to the side" and "directly below" mean
the same on a straight, a curved, a rotated or an oblique scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import labels as L
from .centroids import Centroids
from .geometry import Grid, resample_to_grid

#: Voxel size (mm) of the box; the CT is read at half of it first (thin cortex survives the maximum).
STEP_MM = 2.0
#: Range of the bone threshold (HU), which follows the vertebra's own density (:func:`bone_threshold`):
#: the floor lies above muscle and unenhanced blood, the ceiling below the cortex of a healthy rib.
BONE_HU_RANGE = (120.0, 250.0)
_OUTSIDE = -4000.0


def vertebra_frame(label: int, centroids: Centroids) -> np.ndarray:
    """Columns: patient left, posterior, caudal spine direction (from the neighbours' centroids)."""
    order = [lab for lab in L.anatomical_order(centroids.labels) if lab in L.VERTEBRA_LABELS]
    i = order.index(label)
    up = np.asarray(centroids[order[i - 1]], float) if i > 0 else None
    down = np.asarray(centroids[order[i + 1]], float) if i + 1 < len(order) else None
    here = np.asarray(centroids[label], float)
    if up is not None or down is not None:
        s = (down if down is not None else here) - (up if up is not None else here)
    else:
        s = np.array([0.0, 0.0, -1.0])  # LPS: caudal is -z
    s = s / np.linalg.norm(s) if np.linalg.norm(s) > 1e-6 else np.array([0.0, 0.0, -1.0])
    x = np.array([1.0, 0.0, 0.0]) - s[0] * s
    if np.linalg.norm(x) < 1e-6:  # a spine along left-right: no sensible frame, take any
        x = np.array([0.0, 1.0, 0.0]) - s[1] * s
    x /= np.linalg.norm(x)
    y = np.cross(x, s)  # posterior for a spine running caudally
    return np.stack([x, y, s], axis=1)


@dataclass
class VertebraBox:
    """Arrays [s, y, x] on the box grid and the frame coordinates (mm from the centroid) of its axes."""

    ids: np.ndarray  # label map (nearest)
    hu: np.ndarray  # highest HU of the 1 mm samples in each voxel, after a 1 mm Gaussian
    hu_mean: np.ndarray  # their mean: no thicker than the bone is (a disc stays a gap)
    inside: np.ndarray  # the voxel lies in the image
    x: np.ndarray
    y: np.ndarray
    s: np.ndarray

    def bone(self, label: int, thin: bool = True) -> np.ndarray:
        """Bone by the threshold that the vertebra ``label`` itself sets (:func:`bone_threshold`).

        ``thin``: from the highest 1 mm sample (a thin rib cortex survives; bone grows by about a voxel);
        otherwise from their mean (bone keeps its size, narrow gaps such as discs stay open).
        """
        hu = self.hu if thin else self.hu_mean
        return hu >= bone_threshold(hu[(self.ids == label) & self.inside])


def vertebra_box(
    image: sitk.Image,
    labelmap: sitk.Image,
    label: int,
    centroids: Centroids,
    half_width: float,
    y_range: tuple[float, float],
    s_range: tuple[float, float],
) -> VertebraBox:
    """The box ``|x| <= half_width``, ``y`` and ``s`` in the given ranges (mm from the centroid)."""
    frame = vertebra_frame(label, centroids)
    lo = np.array([-half_width, y_range[0], s_range[0]])
    hi = np.array([half_width, y_range[1], s_range[1]])
    size = (np.round((hi - lo) / STEP_MM).astype(int) + 1).tolist()
    centre = np.asarray(centroids[label], float) + frame @ ((lo + hi) / 2.0)
    grid = Grid.centered(centre, size, (STEP_MM,) * 3, frame.ravel())
    ids = sitk.GetArrayFromImage(resample_to_grid(labelmap, grid, interpolator="nearest", default_value=0))
    hu, hu_mean, inside = _fine_max(image, grid)
    x, y, s = (lo[a] + np.arange(size[a]) * STEP_MM for a in range(3))
    return VertebraBox(ids, hu, hu_mean, inside, x, y, s)


def _fine_max(image: sitk.Image, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per voxel of ``grid``: the highest and the mean HU at 1 mm after a 1 mm Gaussian (thin rib cortex
    survives the maximum, image noise does not bridge soft tissue), and whether the voxel lies in the image."""
    fine = Grid(
        tuple(2 * n for n in grid.size),
        (STEP_MM / 2.0,) * 3,
        tuple((np.asarray(grid.origin) - grid.direction_matrix @ np.full(3, STEP_MM / 4.0)).tolist()),
        grid.direction,
    )
    ct = sitk.GetArrayFromImage(resample_to_grid(image, fine, default_value=_OUTSIDE, pixel_type=sitk.sitkFloat32))
    k, j, i = ct.shape
    blocks = (k // 2, 2, j // 2, 2, i // 2, 2)
    inside = ct > _OUTSIDE + 1
    smooth = ndimage.gaussian_filter(np.where(inside, ct, -1000.0), sigma=1.0)
    smooth = smooth.reshape(blocks)
    return smooth.max(axis=(1, 3, 5)), smooth.mean(axis=(1, 3, 5)), inside.reshape(blocks).all(axis=(1, 3, 5))


def bone_threshold(own_hu: np.ndarray) -> float:
    """Half the vertebra's own bright bone (95th percentile), within :data:`BONE_HU_RANGE`.

    Ribs, the sacrum and the vertebra next to them share the patient's bone density and the scan's
    kernel, so the vertebra tells how bright they can be; the floor keeps soft tissue out.
    """
    if own_hu.size == 0:
        return BONE_HU_RANGE[1]
    return float(np.clip(0.5 * np.percentile(own_hu, 95), *BONE_HU_RANGE))


def pieces(mask: np.ndarray) -> np.ndarray:
    """Connected pieces (18-connectivity: an oblique rib stays one piece at 2 mm)."""
    return ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 2))[0]
