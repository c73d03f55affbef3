"""The ``masuzawa`` runner: regions and spine box, the walk, labels counted from a region boundary."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import numpy as np
import SimpleITK as sitk

from ... import labels as L
from ...centroids import Centroids
from ...cue_shift import anatomy_shift, rename_by_shift
from ...errors import SpineSegError
from ...geometry import Grid
from ...labelmap import label_centroids, without_labels
from ...methods import get_method
from ...pipeline.base import PipelineResult, StagedPipeline, empty_like
from ...pipeline.progress import CancelCheck, ProgressCallback
from ...pipeline.segmentation import merge_vertebrae
from .instances import place_on_image, walk_spine
from .labelling import count_labels
from .params import PARAMS_BY_STAGE, InstanceParams
from .regions import segment_regions

log = logging.getLogger(__name__)

NO_SPINE = "no spine found in the image (the region network finds no cervical, thoracic or lumbar vertebrae)"


class IterativePipeline(StagedPipeline):
    """Masuzawa et al. 2020: Semantic Segmentation Net -> Iterative Instance Segmentation Net."""

    method = get_method("masuzawa")
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
        """Both stages on ``image`` (the walk needs the spine box); ``labels`` keeps only those vertebrae."""
        stages = self.method.parse_stages(stages or self.method.stage_names)
        self._refuse_points(centroids)
        if "instances" in stages and "regions" not in stages:
            raise SpineSegError(
                "the iterative instance segmentation needs the spine regions: run the regions stage too"
            )
        reporter, result = self._begin(image, stages, progress, cancel)
        net, card = self.model("regions")
        t0 = time.perf_counter()
        regions = segment_regions(
            image, net, card, self.device, reporter.part(0.0, 0.1 if "instances" in stages else 1.0)
        )
        result.timings["regions"] = time.perf_counter() - t0
        result.spine = regions.box
        if regions.box is None:
            result.messages.append(NO_SPINE)
            if "instances" in stages:
                result.labelmap = empty_like(image)
            return self._finish(result, reporter)
        if "instances" in stages:
            net, card = self.model("instances")
            t0 = time.perf_counter()
            found = walk_spine(image, regions.box, net, card, self.device, reporter.part(0.1, 0.95))
            named, how = count_labels(regions.region_at(np.array([f.centre for f in found]))) if found else ([], "")
            if how.startswith("no "):
                result.messages.append(f"labels: {how}")
            params = InstanceParams.from_card(card)
            placed = place_on_image(found, named, image)
            shape = Grid.of(image).shape_kji
            out = merge_vertebrae(placed, shape, params.threshold, True, result.segmentation_confidence)
            result.labelmap = sitk.GetImageFromArray(out)
            result.labelmap.CopyInformation(image)
            result.centroids = label_centroids(result.labelmap)
            if params.rename_by_anatomy and result.review_image is not None and result.centroids:
                _rename_by_anatomy(result)
            if labels is not None:
                _keep_only(result, {int(v) for v in labels})
            result.timings["instances"] = time.perf_counter() - t0
            if not result.centroids:
                result.messages.append("no vertebra segmented")
            dropped = len([n for n in named if n is None])
            if dropped:
                result.messages.append(f"{dropped} segmented structure(s) beyond C1-L6 by the count: not labelled")
            log.info("walk: %d vertebrae, %s", len(found), ", ".join(L.name_of(n) for n in named if n))
        return self._finish(result, reporter)


def _rename_by_anatomy(result: PipelineResult) -> None:
    """The region count moved to where the ribs and the sacrum put it, when exactly one renaming agrees."""
    shift = anatomy_shift(result.review_image, result.labelmap, result.centroids)
    if not shift:
        return
    before = [L.name_of(lab) for lab in result.centroids.labels]
    result.labelmap, result.centroids, mapping = rename_by_shift(result.labelmap, result.centroids, shift)
    result.segmentation_confidence = {mapping.get(k, k): v for k, v in result.segmentation_confidence.items()}
    result.messages.append(
        f"labels: the region count ({before[0]}-{before[-1]}) renamed {abs(shift)} level(s) towards the "
        f"{'feet' if shift > 0 else 'head'}: the ribs and the sacrum agree only with that"
    )


def _keep_only(result: PipelineResult, wanted: set[int]) -> None:
    """Only the vertebrae ``wanted`` in the label map, the centroids and the confidences."""
    result.labelmap = without_labels(result.labelmap, [lab for lab in result.centroids.labels if lab not in wanted])
    result.centroids = result.centroids.subset([lab for lab in result.centroids.labels if lab in wanted])
    result.segmentation_confidence = {k: v for k, v in result.segmentation_confidence.items() if k in wanted}
