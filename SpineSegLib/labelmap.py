"""Small facts about instance label maps: which labels, where, and their centres."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .centroids import Centroids
from .geometry import Grid


def label_ids(array: np.ndarray) -> list[int]:
    """Sorted non-zero labels present in an integer array."""
    if array.dtype.kind not in "iu":
        raise TypeError(f"label arrays must be integer, got {array.dtype}")
    if array.dtype.itemsize == 1 and array.dtype.kind == "u":
        present = np.flatnonzero(np.bincount(array.ravel(), minlength=256))
    else:
        present = np.unique(array)
    return [int(v) for v in present if v != 0]


def bounding_boxes(array: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """Label -> numpy slices of its bounding box (one pass over the array)."""
    if array.dtype.kind not in "iu":
        raise TypeError(f"label arrays must be integer, got {array.dtype}")
    if array.size and array.max() > 65535:
        raise ValueError("label values above 65535 are not supported")
    if array.size and array.dtype.kind == "i" and array.min() < 0:
        # scipy's find_objects skips negative values silently: a label map has none.
        raise ValueError(f"label values must not be negative, got {int(array.min())}")
    objs = ndimage.find_objects(array.astype(np.int32, copy=False) if array.dtype.kind == "i" else array)
    return {i + 1: sl for i, sl in enumerate(objs) if sl is not None}


def largest_component(mask: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """The largest connected piece of boolean ``mask`` (``connectivity`` 1: 6-, 2: 18-, 3: 26-neighbour)."""
    lab, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, connectivity))
    if n <= 1:
        return mask.astype(bool, copy=False)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def label_centroids(image: sitk.Image, labels: Iterable[int] | None = None) -> Centroids:
    """Centre of mass of each label's voxels, as LPS mm (whole-label centroids)."""
    arr = sitk.GetArrayViewFromImage(image)
    boxes = bounding_boxes(arr)
    wanted = sorted(boxes) if labels is None else [int(v) for v in labels if int(v) in boxes]
    grid = Grid.of(image)
    points = {}
    for lab in wanted:
        sl = boxes[lab]
        kji = np.asarray(ndimage.center_of_mass(arr[sl] == lab)) + [s.start for s in sl]
        points[lab] = grid.index_to_physical(kji[::-1])[0]
    return Centroids(points)


def relabelled(image: sitk.Image, mapping: Mapping[int, int], others: int | None = None) -> sitk.Image:
    """``image`` with its labels renamed by ``mapping``, all at once (a swap stays a swap); labels not in the
    mapping keep their value, or all become ``others`` (e.g. 0) when it is given. The input is not changed."""
    change = {float(a): float(b) for a, b in mapping.items() if a != b}
    if others is not None:
        present = np.unique(sitk.GetArrayViewFromImage(image))
        change.update({float(v): float(others) for v in present.tolist() if int(v) not in mapping})
    return sitk.ChangeLabel(image, changeMap=change) if change else image


def without_labels(image: sitk.Image, labels: Iterable[int]) -> sitk.Image:
    """``image`` with ``labels`` set to background (levels left out of an evaluation); the input is not changed."""
    drop = {float(v): 0.0 for v in labels}
    return sitk.ChangeLabel(image, changeMap=drop) if drop else image


def fill_enclosed_background(array: np.ndarray) -> int:
    """Give every background cavity that one label encloses in 3D to that label, in place; returns the voxels filled.

    Vertebra masks are solid (VerSe, SPINEPS's hole filling); a network that sees the dark
    cancellous core may leave cavities inside the cortical shell. Other labels' voxels are kept.
    """
    filled = 0
    for lab, sl in bounding_boxes(array).items():
        region = array[sl]
        mask = region == lab
        cavity = ndimage.binary_fill_holes(mask) & ~mask & (region == 0)
        region[cavity] = lab
        filled += int(cavity.sum())
    return filled
