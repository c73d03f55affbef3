"""Stage configurations: network, grid, targets and optimisation, with named presets.

``small`` is the default: small enough to train and run on a 2-core CPU. ``paper`` has the
widths of Payer et al. 2020 (96 filters) for GPU training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from SpineSegLib import labels as L
from SpineSegLib.pipeline.intensity import CT_NORMALIZATION

from .appearance import AppearanceConfig
from .spatial import AugmentationConfig


@dataclass(frozen=True)
class StageConfig:
    stage: str
    network: dict[str, Any]
    spacing_mm: tuple[float, float, float]
    crop_size: tuple[int, int, int]  # training crop (x, y, z) voxels
    intensity: dict[str, Any] = field(default_factory=lambda: dict(CT_NORMALIZATION))
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)  # HU remap, blur, noise (CT)
    params: dict[str, Any] = field(default_factory=dict)  # stage parameters copied into the model card
    sigma_vox: float = 3.0  # heatmap sigma (spine, vertebrae)
    iterations: int = 10_000
    batch_size: int = 1
    learning_rate: float = 1e-4
    final_learning_rate: float = 1e-5
    weight_decay: float = 0.0
    intensity_shift: float = 0.25
    intensity_scale: float = 0.25
    validate_every: int = 1000
    checkpoint_every: int = 250
    labels: tuple[int, ...] = ()
    method: str = "payer"  # the registry method (SpineSegLib.methods) the stage belongs to

    @property
    def key(self) -> str:
        """The stage's name in the training CLI, run folders and packs: ``stage`` for Payer, else ``method-stage``."""
        return self.stage if self.method == "payer" else f"{self.method}-{self.stage}"


def _spine(width: int, levels: int, dropout: float) -> StageConfig:
    return StageConfig(
        stage="spine",
        network=dict(
            architecture="unet", in_channels=1, out_channels=1, num_filters=width, num_levels=levels, dropout=dropout
        ),
        spacing_mm=(8.0, 8.0, 8.0),
        crop_size=(48, 48, 96),
        augmentation=AugmentationConfig(translation_mm=60.0, elastic_max_mm=20.0),
        appearance=_APPEARANCE,
        params={"relative_threshold": 0.5, "min_peak": 0.25},
        sigma_vox=3.0,
        iterations=1500,
        batch_size=2,
        learning_rate=3e-4,
        validate_every=500,
    )


def _vertebrae(width: int, dropout: float, crop_z: int, norm: str | None = None) -> StageConfig:
    return StageConfig(
        stage="vertebrae",
        network=dict(
            architecture="scn",
            in_channels=1,
            num_labels=len(L.HEATMAP_LABELS),
            num_filters=width,
            local_levels=4,
            spatial_levels=4,
            spatial_downsample=4,
            dropout=dropout,
            norm=norm,
        ),
        spacing_mm=(2.0, 2.0, 2.0),
        crop_size=(64, 64, crop_z),
        appearance=_APPEARANCE,
        params={"tile_z": crop_z, "step_z": crop_z // 2, "min_value": 0.1, "smoothing_sigma": 1.0},
        sigma_vox=3.0,
        iterations=6000,
        learning_rate=3e-4,
        validate_every=1000,
        labels=L.HEATMAP_LABELS,
    )


def _segmentation(width: int, dropout: float, norm: str | None = None) -> StageConfig:
    return StageConfig(
        stage="segmentation",
        network=dict(
            architecture="unet",
            in_channels=2,
            out_channels=1,
            num_filters=width,
            num_levels=5,
            dropout=dropout,
            norm=norm,
        ),
        spacing_mm=(1.0, 1.0, 1.0),
        crop_size=(128, 128, 96),
        augmentation=AugmentationConfig(translation_mm=10.0, rotation_rad=0.25, elastic_max_mm=8.0),
        appearance=_APPEARANCE,
        params={"posterior_shift_mm": 20.0, "heatmap_sigma_mm": 6.0, "threshold": 0.5, "batch_size": 4},
        iterations=5000,
        learning_rate=3e-4,
        validate_every=1000,
    )


#: Appearance randomisation of the presets: 70 % of crops get a random HU remap, blur and noise.
_APPEARANCE = AppearanceConfig(probability=0.7)

PRESETS: dict[str, dict[str, StageConfig]] = {
    "small": {
        "spine": _spine(16, 5, 0.1),
        # Instance norm in the local branch and a higher learning rate: heatmap regression without
        # normalisation barely moves in the few thousand iterations a CPU affords.
        "vertebrae": replace(_vertebrae(16, 0.1, 128, norm="instance"), learning_rate=1e-3),
        # The same for the segmentation U-Net: validation Dice 0.80 after 1000 iterations (0.57 without).
        "segmentation": replace(_segmentation(8, 0.1, norm="instance"), learning_rate=1e-3, validate_every=500),
    },
    # Payer et al. 2020: 96 filters, dropout 0.25, Adam 1e-4 decaying, 10k/50k/50k iterations (GPU).
    "paper": {
        "spine": replace(_spine(96, 5, 0.25), iterations=10_000, learning_rate=1e-4),
        "vertebrae": replace(_vertebrae(96, 0.25, 192), iterations=50_000, learning_rate=1e-4),
        "segmentation": replace(_segmentation(96, 0.25), iterations=50_000, learning_rate=1e-4),
    },
}


def _add_method_presets() -> None:
    from .method_modules import presets

    for preset, configs in presets(StageConfig).items():
        PRESETS[preset].update(configs)


_add_method_presets()
#: Every trainable stage key of every method (``spine`` ... ``lu_lumbar-segmentation``).
STAGE_KEYS = tuple(PRESETS["small"])


def stage_config(stage: str, preset: str = "small", **overrides: Any) -> StageConfig:
    try:
        cfg = PRESETS[preset][stage]
    except KeyError:
        raise KeyError(f"no preset {preset!r} for stage {stage!r}; presets: {sorted(PRESETS)}") from None
    return replace(cfg, **overrides) if overrides else cfg
