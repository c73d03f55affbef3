"""Typed stage parameters of ``masuzawa`` (a card's ``params`` override the defaults)."""

from __future__ import annotations

import dataclasses

from ...pipeline.params import StageParams


@dataclasses.dataclass(frozen=True)
class RegionParams(StageParams):
    """Stage 1 (cervical / thoracic / lumbar regions and the spine box).

    Args:
        min_region_mm3: pieces of a region smaller than this are dropped as specks (a cervical body is
            about 5000 mm3).
        margin_mm: added around the union of the region boxes (x, y, z): the spine box the walk covers.
    """

    stage = "regions"
    min_region_mm3: float = 2000.0
    margin_mm: tuple[float, float, float] = (16.0, 16.0, 16.0)


@dataclasses.dataclass(frozen=True)
class InstanceParams(StageParams):
    """Stage 2 (the walk of the Iterative Instance Segmentation Net), after Lessmann et al. / SPIDER.

    Args:
        threshold: probability of the next vertebra's mask.
        min_start_mm3: new voxels (not in memory) needed to take a detection as a vertebra.
        search_step: the patch moves down by this fraction of its height while no vertebra is found.
        converge_mm: the patch has converged when its centre moves less than this.
        max_steps: at most this many moves on one vertebra.
        max_vertebrae: at most this many vertebrae.
        mixed_precision: bfloat16 on capable CPUs, float16 on CUDA.
        rename_by_anatomy: on CT in Hounsfield units, move the region count to the one renaming the ribs
            and the sacrum agree with, where exactly one does (:mod:`SpineSegLib.cue_shift`; SpineSeg's
            addition to the paper, whose count hangs on the region network), and say so.
    """

    stage = "instances"
    threshold: float = 0.5
    min_start_mm3: float = 2000.0
    search_step: float = 0.5
    converge_mm: float = 4.0
    max_steps: int = 10
    max_vertebrae: int = 26
    mixed_precision: bool = True
    rename_by_anatomy: bool = True


PARAMS_BY_STAGE: dict[str, type[StageParams]] = {"regions": RegionParams, "instances": InstanceParams}
