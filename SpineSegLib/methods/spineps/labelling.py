"""VerSe ids for the vertebra instances, counted along the spine from an anatomical anchor.

SPINEPS numbers its instances top to bottom from C2 (or C1). A sagittal MR shows the dens or the
sacrum far more often than C1, so SpineSeg anchors the count where the scan shows one:

- the dens (semantic 51) marks C2; vertebrae are counted down from it;
- else the sacrum (26) just below the lowest vertebra marks that one as L5; counted up from it;
- both in view: counted from C2; a 25th presacral vertebra is named L6, a missing one leaves the
  lowest as L4, and either is flagged for review (T13/L6 and sacralised L5 look alike on a
  sagittal T2w scan);
- neither: the lowest vertebra is taken as L5 (lumbar scans are the commonest spine MR), flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .semantic_ids import DENS, SACRUM

#: C1..C7, T1..T12, L1..L5, L6 as VerSe ids in anatomical order (T13 is named L6 in a count).
ORDER = tuple(range(1, 25)) + (25,)
C2, L5, L6 = 2, 24, 25
#: The lowest vertebra's bottom lies at most this far (mm) above the sacrum to be taken as L5.
SACRUM_GAP_MM = 25.0


@dataclass
class Labelling:
    """Instance id -> VerSe id, how the count was anchored, and what a reader must check."""

    ids: dict[int, int]
    anchor: str
    review: list[str] = field(default_factory=list)


def _extent_mm(mask: np.ndarray, spacing_k: float) -> tuple[float, float]:
    """(lowest, highest) axis-0 position of a mask in mm."""
    k = np.nonzero(mask.any(axis=(1, 2)))[0]
    return float(k.min()) * spacing_k, float(k.max()) * spacing_k


def label_instances(instances: np.ndarray, semantic: np.ndarray, spacing_kji: Sequence[float]) -> Labelling:
    """VerSe ids for the instances 1..n of ``instances`` (numbered top to bottom, as the merge leaves them)."""
    n = int(instances.max()) if instances.size else 0
    if n == 0:
        return Labelling({}, "no vertebra")
    order = list(range(1, n + 1))  # top to bottom
    dens = semantic == DENS
    start: int | None = None
    anchor = ""
    if dens.any():
        hits = np.bincount(instances[dens], minlength=n + 1)[1:]
        if hits.any():
            start = ORDER.index(C2) - int(np.argmax(hits))
            anchor = "dens in view: C2"
    sacrum = semantic == SACRUM
    above_sacrum = False
    if sacrum.any():
        _, sacrum_top = _extent_mm(sacrum, spacing_kji[0])
        lowest_bottom, _ = _extent_mm(instances == n, spacing_kji[0])
        above_sacrum = (
            0 <= lowest_bottom - sacrum_top <= SACRUM_GAP_MM
            or (ndimage.binary_dilation(instances == n, iterations=2) & sacrum).any()
        )
    review: list[str] = []
    if start is None and above_sacrum:
        start = ORDER.index(L5) - (n - 1)
        anchor = "sacrum in view: the vertebra above it is L5"
    elif start is not None and above_sacrum:
        lowest = start + n - 1
        if lowest == ORDER.index(L6):
            review.append("25 presacral vertebrae: the lowest is named L6 (or the thoracic count has a T13); review")
        elif lowest != ORDER.index(L5):
            review.append(
                f"counted from C2, the vertebra above the sacrum is {lowest - ORDER.index(L5):+d} from L5; review"
            )
    if start is None:
        start = ORDER.index(L5) - (n - 1)
        anchor = "neither dens nor sacrum in view: the lowest vertebra taken as L5"
        review.append(anchor)
    ids = {}
    for rank, inst in enumerate(order):
        pos = start + rank
        if 0 <= pos < len(ORDER):
            ids[inst] = ORDER[pos]
        else:
            review.append(f"instance {inst} falls outside C1..L6 in the count and is left unlabelled")
    return Labelling(ids, anchor, review)
