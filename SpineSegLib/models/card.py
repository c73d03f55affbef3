"""Model cards: the JSON file that says what a weights file is and how to use it.

A card travels with every ``.safetensors`` file. It holds the network config (enough to
rebuild the module), the input geometry and intensity normalisation, the labels, what the
network was trained on and how well it validated, and the sha256 of the weights.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, SpineSegError
from ..methods import DEFAULT_METHOD, get_method
from .hashing import sha256_of

#: The stages of the default method (Payer et al.); other methods' stages are in the method registry.
STAGES = get_method(DEFAULT_METHOD).stage_names
CARD_SCHEMA_VERSION = 1


@dataclass
class ModelCard:
    name: str
    stage: str  # one of the method's stages
    network: dict[str, Any]  # build_network() config
    spacing_mm: list[float]  # network grid spacing
    input_size: list[int]  # (x, y, z) voxels of a training crop / the segmentation crop
    intensity: dict[str, Any]  # SpineSegLib.pipeline.intensity spec
    labels: list[int] = field(default_factory=list)  # VerSe ids of the output channels (heatmaps)
    params: dict[str, Any] = field(default_factory=dict)  # stage parameters (sigma, thresholds, crop shift ...)
    training_data: str = ""
    #: Real (patient) cases whose images the weights were trained on, by case name (e.g. "sub-verse005"):
    #: a real-CT benchmark never scores a case with weights that saw it. Empty: phantoms only.
    real_cases: list[str] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    license: str = "Apache-2.0"
    version: str = "0.0.0"
    spineseg_version: str = ""
    created: str = ""
    sha256: str = ""  # of the weights file
    schema_version: int = CARD_SCHEMA_VERSION
    method: str = DEFAULT_METHOD  # the registry's method these weights serve (SpineSegLib.methods)
    #: Where the card was read from (for messages); not written to the card.
    source: str = field(default="", repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["source"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], path: str | Path | None = None) -> ModelCard:
        if not isinstance(data, dict):
            raise InputError(path, "model card must be a JSON object")
        missing = [k for k in ("name", "stage", "network", "spacing_mm", "input_size", "intensity") if k not in data]
        if missing:
            raise InputError(path, f"model card lacks {', '.join(missing)}")
        known = set(cls.__dataclass_fields__) - {"source"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(path, f"model card has unknown key(s) {', '.join(map(repr, unknown))}")
        problem = _type_problem(data)
        if problem:
            raise InputError(path, f"model card: {problem}")
        try:
            method = get_method(data.get("method", DEFAULT_METHOD))
        except SpineSegError as exc:
            raise InputError(path, f"model card: {exc}") from None
        if data["stage"] not in method.stage_names:
            raise InputError(
                path,
                f"model card stage {data['stage']!r} is not a stage of {method.name} ({', '.join(method.stage_names)})",
            )
        return cls(**data, source=str(path) if path else "")

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "model card not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(path, f"model card is not valid JSON ({exc})") from None
        return cls.from_json(data, path)


_STRINGS = ("name", "stage", "training_data", "license", "version", "spineseg_version", "created", "sha256", "method")
_OBJECTS = ("network", "intensity", "params", "validation")


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _type_problem(data: dict[str, Any]) -> str | None:
    """Which field of a card's JSON has a type the pipeline cannot use (None when all are right)."""
    for key in _STRINGS:
        if key in data and not isinstance(data[key], str):
            return f"{key} is not a string"
    for key in _OBJECTS:
        if key in data and not isinstance(data[key], dict):
            return f"{key} is not an object"
    spacing = data["spacing_mm"]
    if not (isinstance(spacing, list) and len(spacing) == 3 and all(_number(v) and v > 0 for v in spacing)):
        return f"spacing_mm {spacing!r} is not three positive numbers (mm)"
    size = data["input_size"]
    if not (isinstance(size, list) and len(size) == 3 and all(_whole(v) and v > 0 for v in size)):
        return f"input_size {size!r} is not three positive whole numbers (voxels)"
    if not (isinstance(data.get("labels", []), list) and all(_whole(v) for v in data.get("labels", []))):
        return "labels is not a list of whole numbers (label ids)"
    cases = data.get("real_cases", [])
    if not (isinstance(cases, list) and all(isinstance(v, str) for v in cases)):
        return "real_cases is not a list of case names"
    if "schema_version" in data and not _whole(data["schema_version"]):
        return "schema_version is not a whole number"
    return None


def _whole(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_verified_card(path: str | Path, expected_sha256: str | None) -> ModelCard:
    """The model card at ``path`` after checking its bytes against the manifest's ``card_sha256``."""
    path = Path(path)
    if expected_sha256:
        if not path.is_file():
            raise InputError(path, "model card not found")
        digest = sha256_of(path)
        if digest != expected_sha256:
            raise InputError(
                path,
                f"sha256 {digest[:12]}... does not match the model manifest ({expected_sha256[:12]}...): the card "
                "(thresholds, normalisation, labels) was changed or is not this model's; reinstall it",
            )
    return ModelCard.read(path)
