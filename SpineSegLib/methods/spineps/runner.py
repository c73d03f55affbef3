"""The ``spineps`` runner: 14 structures, then vertebra instances, discs and endplates by level."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import numpy as np
import SimpleITK as sitk

from ... import labels as L
from ...centroids import Centroids
from ...errors import SpineSegError
from ...geometry import Grid, resample_to_grid
from ...methods import get_method
from ...pipeline.base import PipelineResult, StagedPipeline, empty_like
from ...pipeline.progress import CancelCheck, ProgressCallback
from .discs import DISC_OFFSET, ENDPLATE_OFFSET
from .instances import segment_instances
from .params import PARAMS_BY_STAGE
from .semantic import SemanticMap, segment_semantic
from .semantic_ids import VERTEBRA_IDS

log = logging.getLogger(__name__)

NO_SPINE = "no spine found in the image (the semantic network finds no vertebral body)"


class SpinepsPipeline(StagedPipeline):
    """SPINEPS (Moeller et al.): semantic network -> instance network on semantic cutouts -> fusion and labels.

    ``result.labelmap`` holds the instances (vertebrae by VerSe id, discs 100+X, endplates 200+X),
    ``result.semantic`` the 14 structures with SPINEPS ids, both on the input grid.
    """

    method = get_method("spineps")
    params_by_stage = PARAMS_BY_STAGE

    def run(
        self,
        image: sitk.Image,
        *,
        stages: Sequence[str] | None = None,
        centroids: Centroids | None = None,
        labels: Iterable[int] | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> PipelineResult:
        """Both stages (the instances need the semantic mask); ``labels`` keeps only those vertebrae."""
        stages = self.method.parse_stages(stages or self.method.stage_names)
        self._refuse_points(centroids)
        if "instance" in stages and "semantic" not in stages:
            raise SpineSegError("the instance stage works on the semantic mask: run the semantic stage too")
        reporter, result = self._begin(image, stages, progress, cancel)
        net, card = self.model("semantic")
        t0 = time.perf_counter()
        semantic = segment_semantic(
            image, net, card, self.device, reporter.part(0.0, 0.5 if "instance" in stages else 1.0)
        )
        result.timings["semantic"] = time.perf_counter() - t0
        if "instance" not in stages:
            result.semantic = semantic.on_image(image)
            return self._finish(result, reporter)
        if not np.isin(semantic.ids, VERTEBRA_IDS).any():
            result.messages.append(NO_SPINE)
            result.semantic = semantic.on_image(image)
            result.labelmap = empty_like(image)
            return self._finish(result, reporter)
        net, card = self.model("instance")
        t0 = time.perf_counter()
        grid = _instance_grid(semantic, card.spacing_mm)
        ids = semantic.ids if grid is semantic.grid else _resampled_ids(semantic, grid)
        found = segment_instances(ids, grid, net, card, self.device, reporter.part(0.5, 0.95))
        result.timings["instance"] = time.perf_counter() - t0
        levels = found.levels
        if labels is not None:
            wanted = {int(v) for v in labels}
            keep = np.isin(levels % 100, list(wanted)) | (levels == 0)
            levels = np.where(keep, levels, 0).astype(levels.dtype)
        result.semantic = SemanticMap(found.semantic, grid).on_image(image)
        result.labelmap = resample_to_grid(
            grid.apply(sitk.GetImageFromArray(levels)),
            Grid.of(image),
            interpolator="nearest",
            default_value=0,
            pixel_type=sitk.sitkUInt16,
        )
        present = {int(v) for v in np.unique(levels) if 0 < v < DISC_OFFSET}
        result.centroids = Centroids({k: v for k, v in found.body_centres.items() if k in present})
        result.messages.extend(f"labels: {r}" for r in found.labelling.review)
        if not present:
            result.messages.append("no vertebra segmented")
        discs = sorted(int(v) for v in np.unique(levels) if DISC_OFFSET < v < ENDPLATE_OFFSET)
        log.info(
            "%s: %s; discs %s",
            found.labelling.anchor,
            ", ".join(L.name_of(v) for v in L.anatomical_order(present)),
            ", ".join(str(d) for d in discs),
        )
        return self._finish(result, reporter)


def _instance_grid(semantic: SemanticMap, spacing_mm) -> Grid:
    """The semantic grid when it has the instance card's spacing, else the same box at that spacing."""
    if np.allclose(semantic.grid.spacing, spacing_mm):
        return semantic.grid
    from ...pipeline.network_input import box_grid

    corners = semantic.grid.corners()
    return box_grid(corners.min(0), corners.max(0), spacing_mm)


def _resampled_ids(semantic: SemanticMap, grid: Grid) -> np.ndarray:
    image = semantic.grid.apply(sitk.GetImageFromArray(semantic.ids))
    out = resample_to_grid(image, grid, interpolator="nearest", default_value=0, pixel_type=sitk.sitkUInt8)
    return sitk.GetArrayFromImage(out)
