"""The training modules of the methods other than Payer's, merged: their presets, samplers, losses, validators.

Each module (``lu_lumbar``, ``masuzawa``, ``spineps``) keys its parts by ``StageConfig.key`` (``method-stage``);
Payer's stages keep their own bare keys in config/samples/losses/validate.
"""

from __future__ import annotations

import importlib
from functools import cache

MODULES = ("lu_lumbar", "masuzawa", "spineps")


@cache
def _modules() -> tuple:
    return tuple(importlib.import_module(f"{__package__}.{name}") for name in MODULES)


def presets(StageConfig) -> dict[str, dict]:
    """preset -> key -> StageConfig of every method module."""
    out: dict[str, dict] = {}
    for module in _modules():
        for preset, configs in module.stage_configs(StageConfig).items():
            out.setdefault(preset, {}).update(configs)
    return out


def _merged(attribute: str) -> dict:
    merged: dict = {}
    for module in _modules():
        merged.update(getattr(module, attribute))
    return merged


def samplers() -> dict:
    return _merged("SAMPLERS")


def losses() -> dict:
    return _merged("LOSSES")


def validators() -> dict:
    return _merged("VALIDATORS")
