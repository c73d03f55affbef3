"""The method registry: which methods SpineSeg runs, their stages, modality and outputs.

Torch-free and SimpleITK-free to import: the CLI's ``--help``, the Slicer module (before its
dependencies are installed) and the training package's argument parsers read it. A method's stage
list, heatmap channels and editing abilities are written here and nowhere else; a pipeline (a
named set of weights in the model manifest) says which method it runs.
"""

from .registry import (
    DEFAULT_METHOD,
    DEFAULT_PIPELINE,
    REGISTRY,
    MethodSpec,
    StageSpec,
    get_method,
    parse_stages,
)

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_PIPELINE",
    "REGISTRY",
    "MethodSpec",
    "StageSpec",
    "get_method",
    "parse_stages",
]
