"""Rib cues: which segmented vertebrae carry a rib, read from the CT itself.

Ribs are the strongest check of a vertebra's name a CT offers: T1-T12 carry them (T13 too, where
present), lumbar and cervical vertebrae do not (a lumbar or cervical rib is a rare variant). A chain
shifted by one level at the thoracolumbar junction names a rib-bearing T12 "L1", or a rib-free L1
"T12"; the plausibility review (:mod:`SpineSegLib.plausibility`) turns what is found here into flags.

For each vertebra of the label map, a box is sampled at 2 mm in the vertebra's own frame (the spine's
direction from its neighbours' centroids, the patient's left, and posterior): 120 mm to either side,
from 10 mm in front of the centroid to 90 mm behind it, from 15 mm above it to 35 mm below it (ribs
run down as they run out). Bone (:func:`bone_threshold`) that belongs to no labelled vertebra is split
into connected pieces; a piece that touches this vertebra's mask (within :data:`CONTACT_MM`), is no
larger than a rib can be inside the box (:data:`MAX_RIB_CM3`: the pelvis and a neighbouring
vertebra are larger) and reaches :data:`RIB_REACH_MM` from the centroid to that side is a rib: no
transverse process reaches that far (lumbar tips lie within about 55 mm of the midline). A side whose
lateral band lies mostly outside the image is "unknown", not "no rib". All values were set from
anatomy before any case was looked at.

Needs CT in Hounsfield units; returns nothing for a vertebra the label map does not hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import labels as L
from .centroids import Centroids
from .geometry import Grid, resample_to_grid

__all__ = ["BONE_HU_RANGE", "RibCue", "rib_cues"]

#: Range of the bone threshold (HU), which follows the vertebra's own density (:func:`bone_threshold`):
#: the floor lies above muscle and unenhanced blood, the ceiling below the cortex of a healthy rib.
BONE_HU_RANGE = (120.0, 250.0)
#: A rib piece must come this close to the vertebra's mask (its joints: head and tubercle).
CONTACT_MM = 4.0
#: A piece that reaches this far from the centroid to one side is a rib, not a transverse process.
RIB_REACH_MM = 75.0
#: Larger pieces are no rib (the sacrum with the pelvis, an unlabelled vertebra with its ribs).
MAX_RIB_CM3 = 30.0
#: Sampling of the vertebra's box (mm) and its extent: lateral half-width, anterior / posterior, cranial / caudal.
STEP_MM = 2.0
HALF_WIDTH_MM = 120.0
FRONT_MM, BACK_MM = 10.0, 90.0
ABOVE_MM, BELOW_MM = 15.0, 35.0
#: The band that must lie inside the image for "no rib" to be said: from/to this far out, level with the body.
BAND_MM = (70.0, 90.0)
_OUTSIDE = -4000.0
#: How far past the midline a rib piece may reach (its head lies beside the body, not across it).
MIDLINE_SLACK_MM = 4.0


@dataclass(frozen=True)
class RibCue:
    """Whether a rib attaches on each side: True, False, or None (that side is outside the image)."""

    left: bool | None
    right: bool | None

    @property
    def any_rib(self) -> bool:
        return bool(self.left) or bool(self.right)

    @property
    def no_rib(self) -> bool:
        """Both sides seen and neither carries a rib."""
        return self.left is False and self.right is False

    def sides(self) -> str:
        both = [s for s, v in (("left", self.left), ("right", self.right)) if v]
        return "both sides" if len(both) == 2 else f"the {both[0]}" if both else "neither side"


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


def _box_grid(centre: np.ndarray, frame: np.ndarray) -> Grid:
    extent = np.array([2 * HALF_WIDTH_MM, FRONT_MM + BACK_MM, ABOVE_MM + BELOW_MM])
    size = (np.round(extent / STEP_MM).astype(int) + 1).tolist()
    offset = frame @ np.array([0.0, (BACK_MM - FRONT_MM) / 2.0, (BELOW_MM - ABOVE_MM) / 2.0])
    return Grid.centered(centre + offset, size, (STEP_MM,) * 3, frame.ravel())


def _coords(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Lateral (x, + = patient left) and caudal (s) coordinates in mm of the box's columns and slices."""
    nx, _, ns = grid.size
    x = (np.arange(nx) - (nx - 1) / 2.0) * STEP_MM
    s = (np.arange(ns) - (ns - 1) / 2.0) * STEP_MM + (BELOW_MM - ABOVE_MM) / 2.0
    return x, s


def _fine_max(image: sitk.Image, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel of ``grid``: the highest HU at 1 mm after a 1 mm Gaussian (thin rib cortex survives,
    image noise does not bridge soft tissue), and whether the voxel lies in the image."""
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
    return smooth.reshape(blocks).max(axis=(1, 3, 5)), inside.reshape(blocks).all(axis=(1, 3, 5))


def bone_threshold(own_hu: np.ndarray) -> float:
    """Half the vertebra's own bright bone (95th percentile), within :data:`BONE_HU_RANGE`.

    Ribs and the vertebra they join share the patient's bone density and the scan's kernel, so the
    vertebra tells how bright a rib can be; the floor keeps soft tissue out.
    """
    if own_hu.size == 0:
        return BONE_HU_RANGE[1]
    return float(np.clip(0.5 * np.percentile(own_hu, 95), *BONE_HU_RANGE))


def rib_cue(image: sitk.Image, labelmap: sitk.Image, label: int, centroids: Centroids) -> RibCue | None:
    """The rib cue of one vertebra, or None when its mask is not in its box."""
    grid = _box_grid(np.asarray(centroids[label], float), vertebra_frame(label, centroids))
    ids = sitk.GetArrayFromImage(resample_to_grid(labelmap, grid, interpolator="nearest", default_value=0))
    own = ids == label
    if not own.any():
        return None
    hu, inside = _fine_max(image, grid)
    bone = hu >= bone_threshold(hu[own & inside])
    x, s = _coords(grid)
    # Bone one voxel off any labelled vertebra: the masks' own rims must not join the ribs of both sides.
    free = bone & ~ndimage.binary_dilation(ids > 0)
    pieces, _ = ndimage.label(free, structure=ndimage.generate_binary_structure(3, 2))
    near = ndimage.binary_dilation(own, iterations=1 + max(1, round(CONTACT_MM / STEP_MM)))
    touching = np.unique(pieces[near & (pieces > 0)])
    sizes = np.bincount(pieces.ravel())[touching]
    xs = np.broadcast_to(x[None, None, :], pieces.shape)
    rib = {+1: False, -1: False}
    for piece, size in zip(touching, sizes):
        if size * STEP_MM**3 / 1000.0 > MAX_RIB_CM3:
            continue
        px = xs[pieces == piece]
        for side in (+1, -1):
            # A rib stays on its side; a piece across the midline is something else (sternum, unlabelled bone).
            if (side * px).max() >= RIB_REACH_MM and (side * px).min() >= -MIDLINE_SLACK_MM:
                rib[side] = True
    level = np.abs(s) <= ABOVE_MM
    seen = {}
    for side in (+1, -1):
        cols = (side * x >= BAND_MM[0]) & (side * x <= BAND_MM[1])
        seen[side] = float(inside[level][:, :, cols].mean()) >= 0.5
    return RibCue(
        left=rib[+1] if rib[+1] or seen[+1] else None,
        right=rib[-1] if rib[-1] or seen[-1] else None,
    )


def rib_cues(image: sitk.Image, labelmap: sitk.Image, centroids: Centroids) -> dict[int, RibCue]:
    """Rib cue of every vertebra that has both a centroid and a mask (VerSe id -> cue)."""
    present = set(int(v) for v in np.unique(sitk.GetArrayViewFromImage(labelmap)))
    out: dict[int, RibCue] = {}
    for lab in L.anatomical_order(centroids.labels):
        if lab in L.VERTEBRA_LABELS and lab in present:
            cue = rib_cue(image, labelmap, lab, centroids)
            if cue is not None:
                out[lab] = cue
    return out


def expected_rib(label: int) -> bool | None:
    """True for T2-T11, False for cervical and lumbar levels; None where the rib may be too short to reach
    :data:`RIB_REACH_MM` (the first rib, which curves forward at once, and the floating T12 or T13 rib)."""
    name = L.name_of(label)
    if name in ("T1", "T12", "T13"):
        return None
    return L.region_of(label) == "thoracic"


def contradictions(cues: Mapping[int, RibCue]) -> dict[int, str]:
    """One text per vertebra whose rib cue contradicts its name.

    A rib on a vertebra named cervical or lumbar is said at once (a rib found is a rib). A vertebra named
    T2-T11 without a rib is said only where the rib-free vertebrae run from it to one end of what was seen
    (the rib cage ends above or starts below it): a rib missed in the middle of the chest, where the ribs
    around it were found, is the cue's failure, not the name's.
    """
    order = [lab for lab in L.anatomical_order(cues) if cues[lab].any_rib or cues[lab].no_rib]
    out = {}
    for i, lab in enumerate(order):
        cue, want = cues[lab], expected_rib(lab)
        if want is False and cue.any_rib:
            region = L.region_of(lab)
            other = (
                "a lumbar rib, or the levels are one too low"
                if region == "lumbar"
                else ("a cervical rib, or the levels are one too high")
            )
            out[lab] = f"a rib attaches on {cue.sides()} ({region} vertebrae carry none: {other})"
        elif want is True and cue.no_rib:
            above, below = order[:i], order[i + 1 :]
            if any(side and all(cues[o].no_rib for o in side) for side in (above, below)):
                out[lab] = "no rib found on either side, nor on the vertebrae beyond it (T2-T11 carry ribs)"
    return out
