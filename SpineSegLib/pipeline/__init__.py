"""Inference: the stages of the full-spine pipeline and the object that runs them.

The names below load :mod:`.runner` (and SimpleITK) on first use, so that the SimpleITK-free
helpers (``.intensity``, ``.device``) import on a training-only machine.
"""

__all__ = ["DEFAULT_PIPELINE", "STAGES", "Pipeline", "PipelineResult", "open_pipeline", "parse_stages"]


def __getattr__(name: str):
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
