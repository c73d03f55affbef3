"""Typed stage parameters of ``lu_lumbar`` (a card's ``params`` override the defaults)."""

from __future__ import annotations

import dataclasses

from ...pipeline.params import StageParams


@dataclasses.dataclass(frozen=True)
class LocalisationParams(StageParams):
    """Stage 1 (lumbar box from the lumbar heatmap), as section 3.2.2 of the paper.

    Args:
        relative_threshold: the bright region is the heatmap above this fraction of its peak (paper 0.3).
        min_peak: below this peak the image shows no lumbar spine (no box, nothing segmented).
        expand_fraction: the box grows by this fraction of the image's extent on every axis (paper 0.1),
            clipped to the image.
    """

    stage = "localisation"
    relative_threshold: float = 0.3
    min_peak: float = 0.25
    expand_fraction: float = 0.1


@dataclasses.dataclass(frozen=True)
class LumbarSegmentationParams(StageParams):
    """Stage 2 (XUNet softmax in the crop).

    Args:
        min_volume_mm3: a label smaller than this after keeping its largest component is dropped
            (a lumbar vertebra is 20-90 cm3; a few stray voxels are not a vertebra).
        fill_holes: cavities a vertebra encloses become that vertebra.
        mixed_precision: bfloat16 on capable CPUs, float16 on CUDA.
    """

    stage = "segmentation"
    min_volume_mm3: float = 2000.0
    fill_holes: bool = True
    mixed_precision: bool = True


PARAMS_BY_STAGE: dict[str, type[StageParams]] = {
    "localisation": LocalisationParams,
    "segmentation": LumbarSegmentationParams,
}
