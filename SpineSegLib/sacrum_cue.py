"""Sacrum cue: is the bone right below the last segmented vertebra the sacrum or another free vertebra?

On a lumbar CT the sacrum is the landmark that names the levels: the vertebra right above it is L5 (L6
where a sixth lumbar vertebra is present). A chain named one level too high ends with "L5" above a free
vertebra; one named too low, or missing the last lumbar vertebra, ends with "L4" right on the sacrum.
A free vertebra below any other last vertebra is a vertebra the result left out (a chain that stopped
early): not a naming error, a missing piece, said as such.

Below the last vertebra of the chain (in its own frame, :mod:`SpineSegLib.vertebra_box`), the bone piece
that fills the column under its body, within :data:`COLUMN_DEPTH_MM` of its lower edge, is the next bone
down. The sacrum is one long fused bone: its piece reaches :data:`SACRUM_MIN_MM` or more down the spine's
direction (S1 to S3 even with the sacrum's backward tilt). A free vertebra ends at its disc, within
:data:`VERTEBRA_MAX_MM`. In between, or where the image stops before the piece could show its length,
the cue says nothing. The bone of the vertebrae in the chain is left out (with a one-voxel rim); a
sacrum in the label map (VerSe id 26) is bone like any other here.

The lengths come from anatomy (a lumbar vertebra with its processes is 35-45 mm tall, the sacrum
90-110 mm long) and were fixed before any benchmark case was looked at; the method was tried on training
phantoms (seeds 1000-1049) only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import labels as L
from .centroids import Centroids
from .vertebra_box import STEP_MM, pieces, vertebra_box

__all__ = ["SacrumCue", "sacrum_cue"]

#: The bodies' column (mm from the centroid: half-width, front / back) and how far below the last
#: vertebra's lower edge the next bone must begin.
TUBE_HALF_WIDTH_MM = 12.0
TUBE_Y_MM = (-30.0, 30.0)
COLUMN_DEPTH_MM = 30.0
#: In the column, a piece this long along the spine is the sacrum (S1 and S2 fused, 50-60 mm even as the
#: sacrum tilts back out of the column); one this short at most is a free vertebral body (25-35 mm).
SACRUM_MIN_MM = 50.0
VERTEBRA_MAX_MM = 40.0
#: Share of the last vertebra's own mask that must read as bone for the cue to trust the threshold.
MIN_OWN_BONE = 0.5
#: The smallest piece that counts as the next bone (cm3).
MIN_PIECE_CM3 = 1.0
#: The box: half-width, front / back, above the centroid / below it.
HALF_WIDTH_MM = 80.0
Y_RANGE_MM = (-60.0, 90.0)
S_RANGE_MM = (-10.0, 120.0)


@dataclass(frozen=True)
class SacrumCue:
    """What lies right below ``label``, the last vertebra of the chain: "sacrum", "vertebra" or None."""

    label: int
    below: str | None

    def contradiction(self) -> str | None:
        """The text of a flag when the name of the last vertebra does not fit what lies below it."""
        name = L.name_of(self.label)
        last_lumbar = name in ("L5", "L6")
        if self.below == "vertebra" and last_lumbar:
            return (
                f"a free vertebra, not the sacrum, lies below {name}: an L6, or every vertebra carries the name "
                "of the one below it"
            )
        if self.below == "sacrum" and not last_lumbar:
            return (
                f"the sacrum lies right below {name}: the last lumbar vertebrae are missing from the result, "
                "or every vertebra carries the name of one above it"
            )
        return None

    def missed(self) -> str | None:
        """The text of a flag when a free vertebra below a last vertebra above L5 is not in the result."""
        name = L.name_of(self.label)
        if self.below == "vertebra" and name not in ("L5", "L6"):
            return f"the vertebra below {name} is in the image but not in the result (the chain stopped early)"
        return None


def sacrum_cue(image: sitk.Image, labelmap: sitk.Image, centroids: Centroids) -> SacrumCue | None:
    """The cue of the chain's last vertebra, or None where it cannot be judged (its mask missing)."""
    chain = [lab for lab in L.anatomical_order(centroids.labels) if lab in L.VERTEBRA_LABELS]
    if not chain:
        return None
    last = chain[-1]
    box = vertebra_box(image, labelmap, last, centroids, HALF_WIDTH_MM, Y_RANGE_MM, S_RANGE_MM)
    own = box.ids == last
    if not own.any():
        return None
    bottom = float(box.s[np.flatnonzero(own.any(axis=(1, 2)))[-1]])
    in_chain = np.isin(box.ids, chain)
    # Only the bodies' column: facet joints and laminae bridge neighbouring vertebrae at 2 mm, discs do not.
    tube = ((box.y >= TUBE_Y_MM[0]) & (box.y <= TUBE_Y_MM[1]))[None, :, None] & (np.abs(box.x) <= TUBE_HALF_WIDTH_MM)[
        None, None, :
    ]
    bone = box.bone(last, thin=False)
    if float(bone[own].mean()) < MIN_OWN_BONE:
        return SacrumCue(last, None)  # the vertebra's own body is not told from soft tissue: nor is the next
    # One voxel eroded: a disc wedged thin at its back, or a bony lip, must not join a body to the next.
    found = pieces(ndimage.binary_erosion(bone & ~ndimage.binary_dilation(in_chain) & tube))
    column = ((box.s > bottom) & (box.s <= bottom + COLUMN_DEPTH_MM))[:, None, None] & tube
    if float(box.inside[column].mean()) < 0.5:
        return SacrumCue(last, None)
    counts = np.bincount(found[column], minlength=1)
    counts[0] = 0
    piece = int(np.argmax(counts))
    if piece == 0 or counts[piece] * STEP_MM**3 / 1000.0 < MIN_PIECE_CM3:
        return SacrumCue(last, None)
    ks = np.flatnonzero((found == piece).any(axis=(1, 2)))
    top, end = float(box.s[ks[0]]), float(box.s[ks[-1]])
    length = end - top
    if length >= SACRUM_MIN_MM:
        return SacrumCue(last, "sacrum")
    # Short: a free vertebra only if the image goes on below it (a sacrum cut by the field of view is short too).
    beyond = (box.s > end) & (box.s <= end + (SACRUM_MIN_MM - length) + STEP_MM)
    seen_beyond = beyond.any() and float(box.inside[beyond][:, tube[0]].mean()) >= 0.5
    if length <= VERTEBRA_MAX_MM and seen_beyond and end + STEP_MM < float(box.s[-1]):
        return SacrumCue(last, "vertebra")
    return SacrumCue(last, None)
