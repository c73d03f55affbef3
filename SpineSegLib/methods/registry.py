"""Method specs: the one place a method's stages, modality, outputs and abilities are written.

A *method* is an algorithm from a paper (Payer et al. 2020 today); a *pipeline* is a named set of
trained weights in the model manifest that runs one method (``ct-full-spine`` runs ``payer``).
The CLI, the Slicer module and the training package read their stage lists, heatmap channels and
editing buttons from these specs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import SpineSegError

DEFAULT_METHOD = "payer"
#: The pipeline ``spineseg run`` and the Slicer module use when none is named.
DEFAULT_PIPELINE = "ct-full-spine"


@dataclass(frozen=True)
class StageSpec:
    """One stage of a method.

    Args:
        name: the stage's name on the command line, in model cards and in the manifest.
        title: what a user reads (progress, buttons).
        produces: what the stage hands on: ``"spine_box"``, ``"centroids"``, ``"heatmaps"``, ``"labelmap"``.
        needs: what it needs besides the image (``"centroids"``: points from an earlier stage or the user).
    """

    name: str
    title: str
    produces: tuple[str, ...]
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class MethodSpec:
    """A method: its stages in run order and what it offers the user.

    Args:
        name: registry key (``--method`` in cards and manifests).
        title: one line naming the paper.
        reference: the paper, for model cards and the README.
        modalities: image modalities it is trained for (``"ct"``, ``"mr"``).
        stages: the stages in the order they run.
        runner: ``"module:attribute"`` of the class that runs the stages (imported on first use, so the
            registry stays torch-free).
        heatmap_stage: the stage whose per-vertebra heatmaps a user can review, or None.
        points_stage: the stage that places and names the vertebra points, or None.
        resegment_from_points: the segmentation stage can start from edited points.
        scope: the part of the spine the method handles (said to the user before a run).
    """

    name: str
    title: str
    reference: str
    modalities: tuple[str, ...]
    stages: tuple[StageSpec, ...]
    runner: str
    heatmap_stage: str | None = None
    points_stage: str | None = None
    resegment_from_points: bool = False
    scope: str = "C1-L5"

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise SpineSegError(f"method {self.name!r} has no stage {name!r}; its stages are {', '.join(self.stage_names)}")

    def stages_through(self, last: str) -> tuple[str, ...]:
        """The stages up to and including ``last`` (e.g. the points only, for review before segmenting)."""
        names = self.stage_names
        self.stage(last)
        return names[: names.index(last) + 1]

    def parse_stages(self, stages: str | Iterable[str]) -> tuple[str, ...]:
        """Stage names from ``"a,b"`` or a list, checked and put in run order."""
        return parse_stages(stages, self)

    def runner_class(self):
        """The class that runs this method's stages (imports torch and SimpleITK)."""
        import importlib

        module, _, attr = self.runner.partition(":")
        return getattr(importlib.import_module(module), attr)


PAYER = MethodSpec(
    name="payer",
    title="Payer et al.: spine localisation, vertebra heatmaps (SpatialConfiguration-Net), per-vertebra U-Net",
    reference=(
        "Payer C, Stern D, Bischof H, Urschler M. Coarse to Fine Vertebrae Localization and Segmentation with "
        "SpatialConfiguration-Net and U-Net. VISIGRAPP 2020 (VISAPP), vol. 5, 124-133"
    ),
    modalities=("ct",),
    stages=(
        StageSpec("spine", "spine localisation", produces=("spine_box",)),
        StageSpec("vertebrae", "vertebra localisation and identification", produces=("centroids", "heatmaps")),
        StageSpec("segmentation", "vertebra segmentation", produces=("labelmap",), needs=("centroids",)),
    ),
    runner="SpineSegLib.pipeline.runner:Pipeline",
    heatmap_stage="vertebrae",
    points_stage="vertebrae",
    resegment_from_points=True,
)

LU_LUMBAR = MethodSpec(
    name="lu_lumbar",
    title="Lu et al.: lumbar localisation U-Net, then the 3D multi-scale XUNet segmenting L1-L5 in the lumbar crop",
    reference=(
        "Lu H, Li M, Yu K, Zhang Y, Yu L. Lumbar spine segmentation method based on deep learning. "
        "J Appl Clin Med Phys 2023; 24: e13996, doi:10.1002/acm2.13996"
    ),
    modalities=("ct",),
    stages=(
        StageSpec("localisation", "lumbar spine localisation", produces=("spine_box",)),
        StageSpec("segmentation", "lumbar vertebra segmentation", produces=("labelmap", "centroids")),
    ),
    runner="SpineSegLib.methods.lu_lumbar.runner:LumbarPipeline",
    scope="L1-L5 (L6 when present); other vertebrae are not segmented",
)

MASUZAWA = MethodSpec(
    name="masuzawa",
    title="Masuzawa et al.: cervical/thoracic/lumbar regions, then an iterative instance network with a memory channel",
    reference=(
        "Masuzawa N, Kitamura Y, Nakamura K, Iizuka S, Simo-Serra E. Automatic Segmentation, Localization, and "
        "Identification of Vertebrae in 3D CT Images Using Cascaded Convolutional Neural Networks. MICCAI 2020"
    ),
    modalities=("ct",),
    stages=(
        StageSpec("regions", "spine regions (cervical, thoracic, lumbar)", produces=("spine_box",)),
        StageSpec("instances", "vertebrae one by one", produces=("labelmap", "centroids")),
    ),
    runner="SpineSegLib.methods.masuzawa.runner:IterativePipeline",
)

SPINEPS = MethodSpec(
    name="spineps",
    title="SPINEPS: 14 spinal structures, then vertebra instances from semantic cutouts fused by inter-Dice agreement",
    reference=(
        "Moeller H, Graf R, Schmitt J, et al. SPINEPS - automatic whole spine segmentation of T2-weighted MR images "
        "using a two-phase approach to multi-class semantic and instance segmentation. Eur Radiol 2025; 35: "
        "1178-1189, doi:10.1007/s00330-024-11155-y"
    ),
    modalities=("mr",),
    stages=(
        StageSpec("semantic", "spinal structures (14 classes)", produces=("semantic",)),
        StageSpec(
            "instance",
            "vertebra instances, discs and endplates by level",
            produces=("labelmap", "centroids"),
            needs=("semantic",),
        ),
    ),
    runner="SpineSegLib.methods.spineps.runner:SpinepsPipeline",
    scope="sagittal T2w MR, C1-S1: vertebrae, discs (100+X) and endplates (200+X)",
)

#: name -> spec of every method SpineSeg can run.
REGISTRY: dict[str, MethodSpec] = {m.name: m for m in (PAYER, LU_LUMBAR, MASUZAWA, SPINEPS)}


def get_method(name: str) -> MethodSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SpineSegError(f"unknown method {name!r}; methods are {', '.join(sorted(REGISTRY))}") from None


def parse_stages(stages: str | Iterable[str], method: MethodSpec | str = DEFAULT_METHOD) -> tuple[str, ...]:
    """Stage names from ``"a,b"`` or a list, checked against ``method`` and put in run order."""
    spec = get_method(method) if isinstance(method, str) else method
    names = [s.strip() for s in (stages.split(",") if isinstance(stages, str) else stages) if s.strip()]
    unknown = [s for s in names if s not in spec.stage_names]
    if unknown:
        raise SpineSegError(
            f"unknown stage(s) {', '.join(unknown)}; the stages of {spec.name} are {', '.join(spec.stage_names)}"
        )
    if not names:
        raise SpineSegError("no stage to run")
    return tuple(s for s in spec.stage_names if s in names)
