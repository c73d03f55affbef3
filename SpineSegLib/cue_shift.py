"""Which renaming of the levels the rib and sacrum cues agree with, when they contradict the names given.

A chain off by one level is the commonest wrong answer of a landmark network and the easiest to mend by
hand (Slicer's label shift). When the cues of :mod:`SpineSegLib.rib_cues` and :mod:`SpineSegLib.sacrum_cue`
contradict the names, every shift of up to :data:`MAX_SHIFT` levels is tried; where exactly one agrees with
every cue, the review names it: a suggestion, for the person who checks. A method whose names are only a
count from weak evidence (the iterative pipeline's region boundaries) may apply it
(:func:`rename_by_shift`) and say so.
"""

from __future__ import annotations

from collections.abc import Mapping

import SimpleITK as sitk

from . import labels as L
from .centroids import Centroids
from .labelmap import relabelled
from .rib_cues import RibCue, contradictions, rib_cues
from .sacrum_cue import SacrumCue, sacrum_cue

__all__ = ["MAX_SHIFT", "agreeing_shifts", "anatomy_shift", "rename_by_shift", "shift_text", "suggested_shift"]

#: Largest shift tried (levels, either way).
MAX_SHIFT = 3
#: The levels in order without the transitional ones (a chain with T13 or L6 gets no suggestion).
ORDER = [lab for lab in L.anatomical_order(L.HEATMAP_LABELS) if lab not in L.TRANSITIONAL_LABELS]


def _rename(label: int, shift: int) -> int | None:
    if label not in ORDER:
        return None
    i = ORDER.index(label) + shift
    return ORDER[i] if 0 <= i < len(ORDER) else None


def _agrees(ribs: Mapping[int, RibCue], sacrum: SacrumCue | None, shift: int) -> bool | None:
    """Whether no cue contradicts the names moved ``shift`` levels towards the feet; None if a name falls off."""
    renamed = {_rename(lab, shift): cue for lab, cue in ribs.items()}
    if None in renamed:
        return None
    if contradictions(renamed):
        return False
    if sacrum is not None:
        last = _rename(sacrum.label, shift)
        if last is None:
            return None
        if SacrumCue(last, sacrum.below).contradiction():
            return False
    return True


def agreeing_shifts(ribs: Mapping[int, RibCue], sacrum: SacrumCue | None) -> list[int]:
    """Every shift in [-MAX_SHIFT, MAX_SHIFT] (positive: towards the feet) with which no cue disagrees."""
    return [k for k in range(-MAX_SHIFT, MAX_SHIFT + 1) if _agrees(ribs, sacrum, k)]


def suggested_shift(ribs: Mapping[int, RibCue], sacrum: SacrumCue | None) -> int | None:
    """The one non-zero shift the cues agree with, when the names as given contradict them; else None."""
    labels = set(ribs) | ({sacrum.label} if sacrum else set())
    if not labels or labels & L.TRANSITIONAL_LABELS or _agrees(ribs, sacrum, 0) is not False:
        return None
    shifts = agreeing_shifts(ribs, sacrum)
    return shifts[0] if len(shifts) == 1 else None


def shift_text(shift: int, labels: list[int]) -> str:
    """E.g. "every name moved 1 level towards the feet (T10-L4 would be T11-L5)"."""
    order = [lab for lab in L.anatomical_order(labels) if lab in ORDER]
    first, last = order[0], order[-1]
    way = "feet" if shift > 0 else "head"
    n = abs(shift)
    return (
        f"every name moved {n} level{'s' if n > 1 else ''} towards the {way} "
        f"({L.name_of(first)}-{L.name_of(last)} would be "
        f"{L.name_of(_rename(first, shift))}-{L.name_of(_rename(last, shift))})"
    )


def anatomy_shift(image: sitk.Image, labelmap: sitk.Image, centroids: Centroids) -> int | None:
    """The renaming the ribs and the sacrum ask for (see :func:`suggested_shift`), read from the CT."""
    chain = centroids.subset([lab for lab in centroids.labels if lab in L.VERTEBRA_LABELS])
    if not chain:
        return None
    return suggested_shift(rib_cues(image, labelmap, chain), sacrum_cue(image, labelmap, chain))


def rename_by_shift(labelmap: sitk.Image, centroids: Centroids, shift: int) -> tuple[sitk.Image, Centroids, dict]:
    """Label map and centroids with every vertebra moved ``shift`` levels (positive: towards the feet);
    the mapping old -> new id. Labels outside the order (sacrum, T13, L6) keep their ids."""
    mapping = {lab: _rename(lab, shift) or lab for lab in centroids.labels if lab in ORDER}
    return relabelled(labelmap, mapping), centroids.relabelled(mapping), mapping
