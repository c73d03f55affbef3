"""Label maps as the metrics see them: an integer array, one box per vertebra label, ignored ids.

Every metric works inside per-label bounding boxes found in one pass over the volume
(:func:`SpineSegLib.labelmap.bounding_boxes`), so a 512x512x600 label map is never copied
to float64 or one-hot encoded. Label ids that are not VerSe vertebrae
(:mod:`SpineSegLib.labels`) are reported with a warning and ignored: every metric only
ever looks at ``array == label`` for known labels, so ignoring them needs no copy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .. import labels as L
from ..errors import SpineSegError
from ..geometry import Grid, resample_like
from ..labelmap import bounding_boxes

Box = tuple[slice, slice, slice]

_MAX_LABEL = 65535


@dataclass(frozen=True)
class LabelVolume:
    """One label map ready for the metrics.

    ``array`` is indexed [k, j, i] (a view of the image's buffer when its pixel type is
    already uint8/uint16), ``boxes`` holds the numpy slices of every known vertebra label,
    ``ignored`` the sorted non-VerSe ids that were found and left out.
    """

    array: np.ndarray
    boxes: dict[int, Box]
    ignored: tuple[int, ...]

    @property
    def labels(self) -> list[int]:
        """Known vertebra labels present, in anatomical order."""
        return L.anatomical_order(self.boxes)


def grid_text(grid: Grid) -> str:
    """One line describing a grid, for error messages."""
    d = np.round(np.asarray(grid.direction), 4).tolist()
    return (
        f"size {list(grid.size)}, spacing {[round(s, 4) for s in grid.spacing]} mm, "
        f"origin {[round(o, 3) for o in grid.origin]} mm, direction {d}"
    )


def check_same_grid(pred: sitk.Image, gt: sitk.Image) -> None:
    """Raise :class:`SpineSegError` naming both grids when ``pred`` is not on ``gt``'s grid."""
    gp, gg = Grid.of(pred), Grid.of(gt)
    if len(gp.size) != 3 or len(gg.size) != 3:
        raise SpineSegError(
            f"label maps must be 3-D, got a {pred.GetDimension()}-D prediction and a {gt.GetDimension()}-D ground truth"
        )
    if not gp.same_as(gg):
        raise SpineSegError(
            "prediction and ground truth are on different grids: "
            f"prediction {grid_text(gp)}; ground truth {grid_text(gg)}. "
            "Resample the prediction onto the ground-truth grid first "
            "(SpineSegLib.metrics.resample_prediction, nearest neighbour)."
        )


def resample_prediction(pred: sitk.Image, gt: sitk.Image) -> sitk.Image:
    """The prediction resampled onto the ground truth's grid, nearest neighbour (labels stay labels)."""
    return resample_like(pred, gt, is_label=True)


def integer_label_array(image: sitk.Image, what: str) -> np.ndarray:
    """The [k, j, i] label array of ``image`` as uint8/uint16 without float64 copies.

    uint8/uint16 images are returned as a view. Other integer types are cast (a 1- or
    2-byte copy); float masks (VerSe stores some as float64) are rounded slab by slab.
    Values outside 0..65535 are not vertebra ids: they are reported and set to 0.
    """
    if image.GetNumberOfComponentsPerPixel() != 1:
        n = image.GetNumberOfComponentsPerPixel()
        raise SpineSegError(f"{what} mask must be a scalar label map, got {n} components per voxel")
    arr = sitk.GetArrayViewFromImage(image)
    if arr.dtype in (np.uint8, np.uint16):
        return arr
    if arr.size == 0:
        raise SpineSegError(f"{what} mask is empty (size {list(image.GetSize())})")
    lo, hi = arr.min(), arr.max()
    if arr.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
        raise SpineSegError(f"{what} mask holds NaN or infinite values; a label map must hold integer ids")
    lo_i, hi_i = int(np.rint(lo)), int(np.rint(hi))
    out_dtype = np.uint8 if hi_i <= 255 else np.uint16
    out = np.empty(arr.shape, dtype=out_dtype)
    bad: set[int] = set()
    for k in range(arr.shape[0]):  # slab by slab: never a full-size float64/int64 temporary
        s = np.rint(arr[k]) if arr.dtype.kind == "f" else arr[k]
        if lo_i < 0 or hi_i > _MAX_LABEL:
            out_of_range = (s < 0) | (s > _MAX_LABEL)
            if out_of_range.any():
                bad.update(int(v) for v in np.unique(s[out_of_range]))
                s = np.where(out_of_range, 0, s)
        out[k] = s
    if bad:
        _warn_ignored(what, sorted(bad))
    return out


def label_volume(image: sitk.Image, what: str) -> LabelVolume:
    """Array, known-label boxes (one pass) and ignored ids of a label map; warns about the ignored ids."""
    arr = integer_label_array(image, what)
    boxes = bounding_boxes(arr)
    known = {lab: box for lab, box in boxes.items() if L.is_known(lab)}
    ignored = tuple(sorted(lab for lab in boxes if not L.is_known(lab)))
    if ignored:
        _warn_ignored(what, list(ignored))
    return LabelVolume(arr, known, ignored)


def union_box(a: Box | None, b: Box | None) -> Box:
    """The smallest box holding both (either may be None, not both)."""
    if a is None or b is None:
        box = a if b is None else b
        if box is None:
            raise ValueError("union of two missing boxes")
        return box
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))  # type: ignore[return-value]


def _warn_ignored(what: str, ids: list[int]) -> None:
    warnings.warn(
        f"{what}: label ids {ids} are not VerSe vertebra labels (1-28, SpineSegLib.labels); they are ignored",
        UserWarning,
        stacklevel=4,
    )
