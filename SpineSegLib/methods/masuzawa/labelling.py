"""Anatomical labels of the walk's vertebrae, counted from a region boundary (Masuzawa et al. 2020, 3.3).

The vertebrae come cranial to caudal, each with the stage-1 region at its centre. The count starts at
the thoracolumbar boundary (first lumbar after a thoracic one = L1), else at the cervicothoracic one
(first thoracic after a cervical one = T1). Without a boundary in view the paper says nothing; SpineSeg
then anchors on the end a partial field of view most often shows: the last lumbar is L5, else the first
cervical is C1, else the last thoracic is T12 (said in the result's messages as an assumption).

An instance the count would call L6 but whose centre the region network does not call lumbar is the
sacrum's first segment, which the walk may take for one more vertebra: it gets no label (SpineSeg's rule;
a real L6 is a lumbar vertebra and reads as one).
"""

from __future__ import annotations

from collections.abc import Sequence

#: C1..C7, T1..T12, L1..L5, L6 (VerSe ids in anatomical order; T13 is not counted).
ORDER = tuple(range(1, 25)) + (25,)


def anchor(regions: Sequence[str]) -> tuple[int, int, str] | None:
    """(index in the walk, VerSe id there, how it was found), or None when no region is known."""
    for i in range(1, len(regions)):
        if regions[i - 1] == "thoracic" and regions[i] == "lumbar":
            return i, 20, "thoracolumbar boundary"
    for i in range(1, len(regions)):
        if regions[i - 1] == "cervical" and regions[i] == "thoracic":
            return i, 8, "cervicothoracic boundary"
    lumbar = [i for i, r in enumerate(regions) if r == "lumbar"]
    if lumbar:
        return lumbar[-1], 24, "no boundary in view: the last lumbar vertebra taken as L5"
    cervical = [i for i, r in enumerate(regions) if r == "cervical"]
    if cervical:
        return cervical[0], 1, "no boundary in view: the first cervical vertebra taken as C1"
    thoracic = [i for i, r in enumerate(regions) if r == "thoracic"]
    if thoracic:
        return thoracic[-1], 19, "no boundary in view: the last thoracic vertebra taken as T12"
    return None


def count_labels(regions: Sequence[str]) -> tuple[list[int | None], str]:
    """A VerSe id per vertebra of the walk (None beyond C1..L6) and how the count was anchored."""
    found = anchor(regions)
    if found is None:
        return [None] * len(regions), "no vertebra has a known region: no labels"
    index, label, how = found
    start = ORDER.index(label) - index
    labels = [ORDER[start + j] if 0 <= start + j < len(ORDER) else None for j in range(len(regions))]
    labels = [None if lab == 25 and region != "lumbar" else lab for lab, region in zip(labels, regions)]
    return labels, how
