"""What every method's runner shares: models from the manifest, card checks, the result object.

A runner subclasses :class:`StagedPipeline`, names its :class:`~SpineSegLib.methods.MethodSpec` and
its stage parameter classes, and implements ``run(image, *, stages, centroids, labels, progress,
cancel) -> PipelineResult``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import SimpleITK as sitk
import torch

from ..centroids import Centroids
from ..errors import SpineSegError
from ..methods import DEFAULT_PIPELINE, MethodSpec
from ..models import Manifest, ModelCard, load_model
from ..plausibility import Review, review
from .checks import ct_intensity_warning, mr_input_warning
from .device import resolve_device
from .params import StageParams
from .progress import Reporter

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """A run's outputs; a method fills what it produces (``localization`` is Payer's stage 2)."""

    spine: object | None = None  # the region box of the first stage (a SpineBox), when the method has one
    localization: object | None = None
    centroids: Centroids = field(default_factory=Centroids)
    labelmap: sitk.Image | None = None
    semantic: sitk.Image | None = None  # structure classes (SPINEPS ids), for methods with a semantic stage
    timings: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    input_warning: str | None = None  # the input check's warning (not CT in HU, not an MR), also in messages
    review: Review | None = None  # plausibility flags of the result (SpineSegLib.plausibility)
    #: Mean segmentation probability of each vertebra's voxels (methods that segment with a probability).
    segmentation_confidence: dict[int, float] = field(default_factory=dict)
    #: The CT the review reads the rib cues from (CT pipelines, input in Hounsfield units); not an output.
    review_image: sitk.Image | None = field(default=None, repr=False)

    @property
    def heatmaps(self) -> sitk.Image | None:
        return self.localization.heatmap_image() if self.localization else None


class StagedPipeline:
    """Loads each stage's verified weights on first use and checks the cards before a run."""

    method: ClassVar[MethodSpec]
    params_by_stage: ClassVar[dict[str, type[StageParams]]] = {}

    def __init__(
        self,
        name: str = DEFAULT_PIPELINE,
        device: str = "auto",
        models: dict[str, tuple[torch.nn.Module, ModelCard]] | None = None,
        manifest: Manifest | None = None,
    ):
        self.name = name
        self.device = resolve_device(device)
        self._models = dict(models or {})
        self._manifest = manifest
        self._cards: dict[str, ModelCard] = {}  # verified cards, read once per pipeline object

    def model(self, stage: str) -> tuple[torch.nn.Module, ModelCard]:
        if stage not in self._models:
            manifest = self._manifest or Manifest.load()
            entry = manifest.entry(self.name, stage)
            self._models[stage] = load_model(
                entry.weights, entry.card, entry.sha256, self.device, expected_card_sha256=entry.card_sha256
            )
        net, card = self._models[stage]
        return net.to(self.device).eval(), card

    def card(self, stage: str) -> ModelCard:
        """The model card of ``stage`` (read without loading the weights)."""
        if stage in self._models:
            return self._models[stage][1]
        from ..models.card import read_verified_card

        if stage not in self._cards:
            manifest = self._manifest or Manifest.load()
            entry = manifest.entry(self.name, stage)
            self._cards[stage] = read_verified_card(entry.card, entry.card_sha256)
        return self._cards[stage]

    def check(self, stages: Sequence[str] | None = None) -> None:
        """Fail before any work when a card of ``stages`` is not one this method can use.

        The card must be of this method and stage, and its parameters must all be known ones
        (a typo in a card is an error that names the key and the file, not a silent default).
        """
        for stage in self.method.parse_stages(stages or self.method.stage_names):
            card = self.card(stage)
            where = card.source or f"model card {card.name!r}"
            if card.method != self.method.name or card.stage != stage:
                raise SpineSegError(
                    f"{where}: a {card.method}/{card.stage} card where {self.name!r} needs {self.method.name}/{stage}"
                )
            self.params_by_stage[stage].from_card(card)

    def _refuse_points(self, centroids) -> None:
        """Given points are an error for a method that does not start from points."""
        if centroids is not None and not self.method.resegment_from_points:
            raise SpineSegError(f"pipeline {self.name!r} ({self.method.name}) cannot start from given vertebra points")

    def _begin(self, image: sitk.Image, stages: Sequence[str], progress, cancel) -> tuple[Reporter, PipelineResult]:
        """The start every method's run shares: the cards of ``stages`` checked, then the input check's warning."""
        self.check(stages)
        result = PipelineResult()
        warning = ct_intensity_warning(image) if "ct" in self.method.modalities else mr_input_warning(image)
        if warning:
            log.warning(warning)
            result.messages.append(warning)
            result.input_warning = warning
        elif "ct" in self.method.modalities:
            result.review_image = image
        return Reporter(progress, cancel), result

    @staticmethod
    def _finish(result: PipelineResult, reporter: Reporter) -> PipelineResult:
        """Total time, and the plausibility review every output carries (:mod:`SpineSegLib.plausibility`)."""
        result.timings["total"] = sum(v for k, v in result.timings.items() if k != "total")
        result.review = review(
            result.centroids,
            result.labelmap,
            input_warning=result.input_warning,
            segmentation_confidence=result.segmentation_confidence,
            image=result.review_image,
        )
        result.review_image = None  # the input stays the caller's: a result holds only what the run made
        reporter(1.0, "done")
        return result


def open_pipeline(
    name: str = DEFAULT_PIPELINE,
    device: str = "auto",
    manifest: Manifest | None = None,
    models: dict[str, tuple[torch.nn.Module, ModelCard]] | None = None,
) -> StagedPipeline:
    """The runner of pipeline ``name`` (the class its method names in the registry).

    An unknown name is a :class:`SpineSegError` that lists the manifest's pipelines.
    """
    manifest = manifest or Manifest.load()
    spec = manifest.method(name)
    return spec.runner_class()(name, device=device, models=models, manifest=manifest)


def empty_like(image: sitk.Image) -> sitk.Image:
    """An all-background uint8 label map on ``image``'s grid."""
    out = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    out.CopyInformation(image)
    return out
