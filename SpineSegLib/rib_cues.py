"""Rib cues: which segmented vertebrae carry a rib, read from the CT itself.

Ribs are the strongest check of a vertebra's name a CT offers: T1-T12 carry them (T13 too, where
present), lumbar and cervical vertebrae do not (a lumbar or cervical rib is a rare variant). A chain
shifted by one level at the thoracolumbar junction names a rib-bearing T12 "L1", or a rib-free L1
"T12"; the plausibility review (:mod:`SpineSegLib.plausibility`) turns what is found here into flags.

For each vertebra of the label map, a box is sampled at 2 mm in the vertebra's own frame
(:mod:`SpineSegLib.vertebra_box`): 120 mm to either side, from 10 mm in front of the centroid to 90 mm
behind it, from 15 mm above it to 35 mm below it (ribs run down as they run out). Bone that lies off every
labelled vertebra is split into connected pieces. A piece is a rib when it touches this vertebra's mask
(within :data:`CONTACT_MM`), is no larger than a rib can be inside the box (:data:`MAX_RIB_CM3`: the pelvis
and a neighbouring vertebra are larger), stays on its side of the midline and reaches :data:`RIB_REACH_MM`
from the centroid: no transverse process reaches that far (lumbar tips lie within about 55 mm of the
midline). A side whose lateral band lies mostly outside the image is "unknown", not "no rib".

The values come from anatomy; how bone is told (the threshold that follows the vertebra's density, the
1 mm maximum, the rims of the masks left out) and which levels may lack a detectable rib (T1, T12, T13)
were settled on training phantoms (seeds 1000-1049) only, before any benchmark case was looked at.

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
from .vertebra_box import STEP_MM, pieces, vertebra_box

__all__ = ["RibCue", "rib_cues"]

#: A rib piece must come this close to the vertebra's mask (its joints: head and tubercle).
CONTACT_MM = 4.0
#: A piece that reaches this far from the centroid to one side is a rib, not a transverse process.
RIB_REACH_MM = 75.0
#: Larger pieces are no rib (the sacrum with the pelvis, an unlabelled vertebra with its ribs).
MAX_RIB_CM3 = 30.0
#: The vertebra's box (mm): lateral half-width, anterior / posterior, cranial / caudal.
HALF_WIDTH_MM = 120.0
FRONT_MM, BACK_MM = 10.0, 90.0
ABOVE_MM, BELOW_MM = 15.0, 35.0
#: The band that must lie inside the image for "no rib" to be said: from/to this far out, level with the body.
BAND_MM = (70.0, 90.0)
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


def rib_cue(image: sitk.Image, labelmap: sitk.Image, label: int, centroids: Centroids) -> RibCue | None:
    """The rib cue of one vertebra, or None when its mask is not in its box."""
    box = vertebra_box(image, labelmap, label, centroids, HALF_WIDTH_MM, (-FRONT_MM, BACK_MM), (-ABOVE_MM, BELOW_MM))
    own = box.ids == label
    if not own.any():
        return None
    # Bone one voxel off any labelled vertebra: the masks' own rims must not join the ribs of both sides.
    found = pieces(box.bone(label) & ~ndimage.binary_dilation(box.ids > 0))
    near = ndimage.binary_dilation(own, iterations=1 + max(1, round(CONTACT_MM / STEP_MM)))
    touching = np.unique(found[near & (found > 0)])
    sizes = np.bincount(found.ravel())[touching]
    xs = np.broadcast_to(box.x[None, None, :], found.shape)
    rib = {+1: False, -1: False}
    for piece, size in zip(touching, sizes):
        if size * STEP_MM**3 / 1000.0 > MAX_RIB_CM3:
            continue
        px = xs[found == piece]
        for side in (+1, -1):
            # A rib stays on its side; a piece across the midline is something else (sternum, unlabelled bone).
            if (side * px).max() >= RIB_REACH_MM and (side * px).min() >= -MIDLINE_SLACK_MM:
                rib[side] = True
    level = np.abs(box.s) <= ABOVE_MM
    seen = {}
    for side in (+1, -1):
        cols = (side * box.x >= BAND_MM[0]) & (side * box.x <= BAND_MM[1])
        seen[side] = float(box.inside[level][:, :, cols].mean()) >= 0.5
    return RibCue(
        left=rib[+1] if rib[+1] or seen[+1] else None,
        right=rib[-1] if rib[-1] or seen[-1] else None,
    )


def rib_cues(image: sitk.Image, labelmap: sitk.Image, centroids: Centroids) -> dict[int, RibCue]:
    """Rib cue of every vertebra that has both a centroid and a mask (VerSe id -> cue)."""
    out: dict[int, RibCue] = {}
    for lab in L.anatomical_order(centroids.labels):
        if lab in L.VERTEBRA_LABELS:  # no mask in its box: rib_cue says None
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
                "a lumbar rib, or every vertebra carries the name of the one below it"
                if region == "lumbar"
                else ("a cervical rib, or every vertebra carries the name of the one above it")
            )
            out[lab] = f"a rib attaches on {cue.sides()} ({region} vertebrae carry none: {other})"
        elif want is True and cue.no_rib:
            above, below = order[:i], order[i + 1 :]
            if any(side and all(cues[o].no_rib for o in side) for side in (above, below)):
                out[lab] = "no rib found on either side, nor on the vertebrae beyond it (T2-T11 carry ribs)"
    return out
