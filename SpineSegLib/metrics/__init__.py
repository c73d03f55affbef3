"""Evaluation metrics of vertebra segmentation, localisation and identification.

:func:`evaluate` gives per-vertebra Dice/FND/FPD, HD/HD95/ASSD (MONAI's definitions), point
error and identification, and PQ/SQ/RQ, computed inside per-label boxes so that a full CT
label map takes seconds. The modules hold one metric family each and document its
definition.
"""

from .evaluate import Evaluation, Summary, VertebraMetrics, evaluate
from .overlap import OverlapCounts, overlap_counts
from .panoptic import PanopticResult, panoptic_quality
from .points import identification_rate, identified, point_errors
from .surface import SurfaceMetrics, surface_distances, surface_metrics, surface_voxels
from .volumes import check_same_grid, resample_prediction

__all__ = [
    "Evaluation",
    "OverlapCounts",
    "PanopticResult",
    "Summary",
    "SurfaceMetrics",
    "VertebraMetrics",
    "check_same_grid",
    "evaluate",
    "identification_rate",
    "identified",
    "overlap_counts",
    "panoptic_quality",
    "point_errors",
    "resample_prediction",
    "surface_distances",
    "surface_metrics",
    "surface_voxels",
]
