"""The pipeline object: runs the stages in order, or from any stage on.

Models are injected (``models=``) or loaded from the manifest; the stages report progress
through a callback and stop between batches when ``cancel()`` says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import SimpleITK as sitk

from .. import labels as L
from ..centroids import Centroids
from ..errors import SpineSegError
from ..methods import get_method
from .base import PipelineResult, StagedPipeline, empty_like, open_pipeline  # noqa: F401 (re-exported)
from .params import PARAMS_BY_STAGE
from .progress import CancelCheck, ProgressCallback, Reporter
from .segmentation import segment_vertebrae
from .spine import localize_spine
from .vertebrae import localize_vertebrae

METHOD = get_method("payer")
STAGES = METHOD.stage_names
NO_SPINE_HEATMAP = "no spine found in the image (the spine heatmap has no convincing peak)"
NO_SPINE = "no spine found in the image (neither the spine heatmap nor the vertebra heatmaps show one)"
#: Share of the progress bar per stage (segmentation dominates the run time).
_STAGE_SPAN = {"spine": (0.0, 0.05), "vertebrae": (0.05, 0.25), "segmentation": (0.25, 1.0)}


def parse_stages(stages: str | Iterable[str]) -> tuple[str, ...]:
    """Stages of the Payer method from ``"a,b"`` or a list, in run order."""
    return METHOD.parse_stages(stages)


class Pipeline(StagedPipeline):
    """The full-spine CT pipeline of Payer et al. (spine -> vertebrae -> segmentation)."""

    method = METHOD
    params_by_stage = PARAMS_BY_STAGE

    def run(
        self,
        image: sitk.Image,
        *,
        stages: Sequence[str] = STAGES,
        centroids: Centroids | None = None,
        labels: Iterable[int] | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> PipelineResult:
        """Run ``stages`` (in pipeline order) on ``image``.

        ``centroids`` replaces stage 2's output (user-edited centroids); ``labels`` restricts
        segmentation to those vertebrae. Raises ``CancelledError`` when cancelled.
        """
        stages = parse_stages(stages)
        if "segmentation" in stages and "vertebrae" not in stages and centroids is None:
            raise SpineSegError("the segmentation stage needs centroids: run the vertebrae stage or give centroids")
        checked = [s for s in stages if not (s == "vertebrae" and centroids is not None)]
        reporter, result = self._begin(image, checked, progress, cancel)
        warning = bool(result.messages)  # the only message so far is the CT check's
        first, last = _STAGE_SPAN[stages[0]][0], _STAGE_SPAN[stages[-1]][1]
        span = max(last - first, 1e-9)

        def part(stage: str) -> Reporter:
            a, b = _STAGE_SPAN[stage]
            return reporter.part((a - first) / span, (b - first) / span)

        if "spine" in stages:
            net, card = self.model("spine")
            t0 = time.perf_counter()
            result.spine = localize_spine(image, net, card, self.device, part("spine"))
            result.timings["spine"] = time.perf_counter() - t0
            if result.spine is None:
                if "vertebrae" not in stages or centroids is not None or warning:
                    result.messages.append(NO_SPINE_HEATMAP)
                    return self._finish(result, reporter)
                # A narrow field of view (a cervical scan) can leave the coarse spine heatmap weak while the
                # vertebrae are plain at 2 mm: stage 2 searches the whole image and has the last word. Not on
                # an image that does not look like CT (no bone, not Hounsfield units): nothing to find there.
                result.messages.append(
                    "the spine heatmap has no convincing peak: vertebrae searched in the whole image"
                )
        if "vertebrae" in stages and centroids is None:
            net, card = self.model("vertebrae")
            t0 = time.perf_counter()
            result.localization = localize_vertebrae(image, result.spine, net, card, self.device, part("vertebrae"))
            result.timings["vertebrae"] = time.perf_counter() - t0
            result.centroids = result.localization.centroids
            if not result.centroids and result.spine is None and "spine" in stages:
                result.messages.append(NO_SPINE)
                return self._finish(result, reporter)
            if not result.centroids:
                result.messages.append("no vertebra identified (no landmark chain obeys the anatomical rules)")
        if centroids is not None:
            result.centroids = centroids
            skipped = [L.name_of(lab) for lab in centroids.labels if lab not in L.VERTEBRA_LABELS]
            if skipped and "segmentation" in stages:
                result.messages.append(f"not segmented (no vertebra): {', '.join(skipped)}")
        if "segmentation" in stages and result.centroids:
            net, card = self.model("segmentation")
            t0 = time.perf_counter()
            result.labelmap = segment_vertebrae(
                image,
                result.centroids,
                net,
                card,
                self.device,
                labels,
                part("segmentation"),
                confidence=result.segmentation_confidence,
            )
            result.timings["segmentation"] = time.perf_counter() - t0
        elif "segmentation" in stages:
            result.labelmap = empty_like(image)
        return self._finish(result, reporter)
