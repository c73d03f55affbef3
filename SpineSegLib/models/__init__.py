"""Model cards, verified safetensors weights and the model manifest."""

from .card import STAGES, ModelCard
from .manifest import Manifest, ModelEntry, model_cache_dir, resources_dir
from .store import load_model, save_model, sha256_of

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
