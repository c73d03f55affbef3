"""``spineps``: the sagittal T2w MR method of Moeller et al. (SPINEPS, Eur Radiol 2025; pipeline ``mr-t2w``).

A semantic network labels 14 spinal structures; an instance network, fed one-hot semantic cutouts
around each vertebral-body centre, predicts the vertebra at the centre and its neighbours above and
below; the predictions are fused by inter-Dice agreement, cleaned, labelled top to bottom (or counted
up from the sacrum) and the discs and endplates get the id of the nearest vertebra above them.

The geometry steps here (:mod:`.semantic_ids`, :mod:`.centres`, :mod:`.merge`, :mod:`.postprocess`,
:mod:`.labelling`, :mod:`.discs`) are numpy/scipy only. Their arrays are in an LPS-oriented image's
array order: axis 0 runs inferior to superior, axis 1 anterior to posterior, axis 2 right to left.
"""
