"""Model cards, verified safetensors weights and the model manifest.

Importing this package does not import torch (the Slicer GUI reads manifests and cards
before torch is installed); ``load_model``/``save_model`` import it when first used.
"""

from .card import STAGES, ModelCard
from .hashing import sha256_of
from .manifest import Manifest, ModelEntry, model_cache_dir, resources_dir

__all__ = [
    "STAGES",
    "Manifest",
    "ModelCard",
    "ModelEntry",
    "load_model",
    "model_cache_dir",
    "resources_dir",
    "save_model",
    "sha256_of",
]


def __getattr__(name: str):
    if name in ("load_model", "save_model"):
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
