"""The ``lu_lumbar`` runner: lumbar box, then the XUNet's label map and the centroids of its masks."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import SimpleITK as sitk

from ...centroids import Centroids
from ...errors import SpineSegError
from ...labelmap import label_centroids
from ...methods import get_method
from ...pipeline.base import PipelineResult, StagedPipeline, empty_like
from ...pipeline.progress import CancelCheck, ProgressCallback
from .localisation import localize_lumbar
from .params import PARAMS_BY_STAGE
from .segmentation import segment_lumbar

NO_LUMBAR = "no lumbar spine found in the image (the lumbar heatmap has no convincing peak)"


class LumbarPipeline(StagedPipeline):
    """Lu et al. 2023: lumbar localisation U-Net -> XUNet segmentation of L1-L5 (L6) in the crop."""

    method = get_method("lu_lumbar")
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
        """Both stages on ``image`` (the segmentation needs the box of the localisation).

        ``labels`` keeps only those vertebrae. Given points are refused: this method does not start from
        points (``MethodSpec.resegment_from_points`` is False).
        """
        stages = self.method.parse_stages(stages or self.method.stage_names)
        self._refuse_points(centroids)
        if "segmentation" in stages and "localisation" not in stages:
            raise SpineSegError("the lumbar segmentation needs the lumbar box: run the localisation stage too")
        reporter, result = self._begin(image, stages, progress, cancel)
        seg_share = 0.85 if "segmentation" in stages else 0.0
        net, card = self.model("localisation")
        t0 = time.perf_counter()
        result.spine = localize_lumbar(image, net, card, self.device, reporter.part(0.0, 1.0 - seg_share))
        result.timings["localisation"] = time.perf_counter() - t0
        if result.spine is None:
            result.messages.append(NO_LUMBAR)
            if "segmentation" in stages:
                result.labelmap = empty_like(image)
            return self._finish(result, reporter)
        if "segmentation" in stages:
            net, card = self.model("segmentation")
            t0 = time.perf_counter()
            result.labelmap = segment_lumbar(
                image, result.spine, net, card, self.device, labels, reporter.part(1.0 - seg_share, 1.0)
            )
            result.timings["segmentation"] = time.perf_counter() - t0
            result.centroids = label_centroids(result.labelmap)
            if not result.centroids:
                result.messages.append("no lumbar vertebra segmented in the lumbar box")
        return self._finish(result, reporter)
