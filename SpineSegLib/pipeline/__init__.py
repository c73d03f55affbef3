"""Inference: the stages of the full-spine pipeline, the runner base and the object that runs them.

The names below load :mod:`.runner` or :mod:`.base` (and SimpleITK) on first use, so that the
SimpleITK-free helpers (``.intensity``, ``.device``, ``.params``) import on a training-only machine.
"""

from ..methods import DEFAULT_PIPELINE

__all__ = [
    "DEFAULT_PIPELINE",
    "STAGES",
    "Pipeline",
    "PipelineResult",
    "StagedPipeline",
    "open_pipeline",
    "parse_stages",
]


def __getattr__(name: str):
    if name in ("PipelineResult", "StagedPipeline", "open_pipeline"):
        from . import base

        return getattr(base, name)
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
