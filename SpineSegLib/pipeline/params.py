"""Typed, frozen stage parameters of the Payer pipeline, built from a model card's ``params``.

A card's ``params`` override the defaults below. A key the stage does not know is an error that
names the key and the card (a typo such as ``treshold`` must not be ignored silently), and each
value is checked against the type of its default.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from ..errors import InputError

P = TypeVar("P", bound="StageParams")


@dataclasses.dataclass(frozen=True)
class TTAPass:
    """One test-time augmentation pass of stage 3.

    Args:
        offset_vox: crop shift in crop voxels (x, y, z); sub-voxel offsets sample the surface more finely.
        mirror_x: mirror the crop left-right before the network and back after it.
    """

    offset_vox: tuple[float, float, float] = (0.0, 0.0, 0.0)
    mirror_x: bool = False


@dataclasses.dataclass(frozen=True)
class StageParams:
    """Base: ``from_card``/``from_mapping`` with unknown-key and type checks."""

    stage = ""  # the stage these parameters belong to (a class attribute, not a field)

    @classmethod
    def from_card(cls: type[P], card) -> P:
        """The parameters of ``card`` (a :class:`~SpineSegLib.models.ModelCard`) over the defaults."""
        return cls.from_mapping(card.params, source=getattr(card, "source", "") or f"model card {card.name!r}")

    @classmethod
    def from_mapping(cls: type[P], params: Mapping[str, Any] | None, source: object = None) -> P:
        params = dict(params or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise InputError(
                source,
                f"unknown {cls.stage} parameter(s) {', '.join(map(repr, unknown))}; known: {', '.join(fields)}",
            )
        defaults = cls()
        values = {
            k: _coerce(v, getattr(defaults, k), f"{cls.stage} parameter {k!r}", source) for k, v in params.items()
        }
        return dataclasses.replace(defaults, **values)

    def to_json(self) -> dict[str, Any]:
        return json_value(dataclasses.asdict(self))


def json_value(value: Any) -> Any:
    """Tuples as lists, recursively (for cards)."""
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def _coerce(value: Any, default: Any, what: str, source: object) -> Any:
    def bad(expected: str) -> InputError:
        return InputError(source, f"{what} must be {expected}, not {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
            raise bad("a positive whole number")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if isinstance(default, tuple) and default and isinstance(default[0], TTAPass):
        if not isinstance(value, (list, tuple)) or not value:
            raise bad("a non-empty list of passes")
        return tuple(_tta_pass(v, what, source) for v in value)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise bad(f"a list of {len(default)} numbers")
        return tuple(_coerce(v, float(d), what, source) for v, d in zip(value, default))
    raise TypeError(f"no coercion for {what}")  # a bug in a params class, not a user error


def _tta_pass(value: Any, what: str, source: object) -> TTAPass:
    if not isinstance(value, Mapping) or set(value) - {"offset_vox", "mirror_x"}:
        raise InputError(source, f"{what}: each pass is {{'offset_vox': [x, y, z], 'mirror_x': bool}}, not {value!r}")
    d = TTAPass()
    return TTAPass(
        offset_vox=_coerce(value.get("offset_vox", d.offset_vox), d.offset_vox, f"{what} offset_vox", source),
        mirror_x=_coerce(value.get("mirror_x", d.mirror_x), d.mirror_x, f"{what} mirror_x", source),
    )


@dataclasses.dataclass(frozen=True)
class SpineParams(StageParams):
    """Stage 1 (spine box from the coarse spine heatmap).

    Args:
        relative_threshold: the box is the largest component above this fraction of the heatmap's peak.
        min_peak: below this peak the image has no spine (no box).
    """

    stage = "spine"
    relative_threshold: float = 0.5
    min_peak: float = 0.25


@dataclasses.dataclass(frozen=True)
class VertebraeParams(StageParams):
    """Stage 2 (vertebra heatmaps, candidates and the landmark chain of Payer et al.).

    Args:
        margin_mm: added around the spine box (x, y, z).
        full_z: x/y from the spine box, the whole image along z (Payer 2019).
        tile_z: voxels per tile along z; step_z: the tile step (tiles merged by maximum).
        min_value: lowest heatmap response of a candidate; end_min_value: of a chain end.
        smoothing_sigma: heatmap smoothing (voxels) before the peaks are taken.
        max_per_channel: candidates kept per channel.
        border_mm: drop landmarks this close to the image's top/bottom (Payer 2020: 10 mm).
        inside_image: drop candidates outside the image (a vertebra counts when its centre is scanned).
        extend_ends: one more vertebra at a chain end from the all-channel heatmap (cut by the field of view).
        mixed_precision: float32 by default: sub-voxel peak refinement needs the precision.
        allow_skip: off by default (Payer's rules: a chain skips no level); on, the chain may jump over one
            level whose channel has no candidate near it, at ``skip_penalty`` to its score (Payer's confident
            response, 0.25), and that level is placed halfway between its neighbours with confidence 0
            (:func:`SpineSegLib.sequence.fill_skipped`).
    """

    stage = "vertebrae"
    margin_mm: tuple[float, float, float] = (32.0, 32.0, 16.0)
    full_z: bool = True
    tile_z: int = 192
    step_z: int = 128
    min_value: float = 0.1
    smoothing_sigma: float = 1.0
    end_min_value: float = 0.25
    max_per_channel: int = 6
    border_mm: float = 0.0
    inside_image: bool = True
    extend_ends: bool = True
    mixed_precision: bool = False
    allow_skip: bool = False
    skip_penalty: float = 0.25


@dataclasses.dataclass(frozen=True)
class SegmentationParams(StageParams):
    """Stage 3 (per-vertebra U-Net on a crop around each point, merged by the largest response).

    Args:
        posterior_shift_mm: crop centre = point + this along +y (LPS posterior), so the arch fits.
        heatmap_sigma_mm: sigma of the point's Gaussian input channel.
        threshold: mask threshold of the merged probabilities (calibrated per card).
        batch_size: crops per network call (memory).
        fill_holes: cavities a vertebra encloses become that vertebra (masks are solid).
        flip_x: also average with the left-right mirrored prediction of every pass.
        tta_passes: test-time augmentation passes, probabilities averaged on the input grid.
        mixed_precision: bfloat16 on capable CPUs, float16 on CUDA (the sigmoid mask tolerates it).
    """

    stage = "segmentation"
    posterior_shift_mm: float = 20.0
    heatmap_sigma_mm: float = 6.0
    threshold: float = 0.5
    batch_size: int = 4
    fill_holes: bool = True
    flip_x: bool = False
    tta_passes: tuple[TTAPass, ...] = (TTAPass(),)
    mixed_precision: bool = True


PARAMS_BY_STAGE: dict[str, type[StageParams]] = {
    "spine": SpineParams,
    "vertebrae": VertebraeParams,
    "segmentation": SegmentationParams,
}
