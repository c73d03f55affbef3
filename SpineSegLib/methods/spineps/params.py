"""Typed stage parameters of ``spineps`` (a card's ``params`` override the defaults)."""

from __future__ import annotations

import dataclasses

from ...pipeline.params import StageParams


@dataclasses.dataclass(frozen=True)
class SemanticParams(StageParams):
    """Stage 1 (the 14 structures).

    Args:
        min_piece_mm3: pieces of a class smaller than this are dropped (SPINEPS: 30 voxels at
            0.75 x 0.75 x 1.65 mm).
        overlap: overlap of the sliding-window patches (MONAI ``sliding_window_inference``).
        mixed_precision: bfloat16 on capable CPUs, float16 on CUDA.
    """

    stage = "semantic"
    min_piece_mm3: float = 28.0
    overlap: float = 0.25
    mixed_precision: bool = True


@dataclasses.dataclass(frozen=True)
class InstanceParams(StageParams):
    """Stage 2 (vertebra instances from semantic cutouts, fused by inter-Dice agreement).

    Args:
        min_body_mm3: a body piece smaller than this gets no cutout.
        min_vertebra_mm3: instance pieces smaller than this are dropped after the fusion.
        mixed_precision: bfloat16 on capable CPUs, float16 on CUDA.
    """

    stage = "instance"
    min_body_mm3: float = 300.0
    min_vertebra_mm3: float = 232.0
    mixed_precision: bool = True


PARAMS_BY_STAGE: dict[str, type[StageParams]] = {"semantic": SemanticParams, "instance": InstanceParams}
