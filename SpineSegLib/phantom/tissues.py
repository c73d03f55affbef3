"""Soft-tissue classes of the phantom's tissue map (bone is painted separately, with its own edges)."""

from __future__ import annotations

from enum import IntEnum


class Tissue(IntEnum):
    AIR = 0
    LUNG = 1
    FAT = 2
    MUSCLE = 3
    ORGAN = 4
    LIVER = 5
    BLOOD = 6
    CSF = 7
    CORD = 8
    ANNULUS = 9
    NUCLEUS = 10
    BRAIN = 11


N_TISSUES = len(Tissue)

# Subregion ids (SPINEPS) of the labelled soft structures.
SUB_DISC, SUB_CORD, SUB_CANAL = 100, 60, 61
