"""The model manifest (``Resources/models/manifest.json``): which weights each pipeline uses.

Both hashes are required: ``sha256`` of the weights and ``card_sha256`` of the model card (its
thresholds, normalisation and labels decide the result as much as the weights do); an entry with an
empty, missing or malformed hash is refused, never loaded unchecked.

A pipeline entry says which registered method it runs (``method``, default ``payer``), for which
``modality`` and with a ``title``. Each stage entry names a safetensors file and its card (relative
to the manifest's folder or a cache folder) and the sha256 the weights must have. Entries may also
carry a ``url`` for weights that are downloaded on first use instead of bundled.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, SpineSegError
from ..methods import DEFAULT_METHOD, MethodSpec, get_method

ENV_RESOURCES = "SPINESEG_RESOURCES"
ENV_MODEL_CACHE = "SPINESEG_MODEL_CACHE"


def resources_dir() -> Path:
    """The Resources folder: $SPINESEG_RESOURCES, the source tree's, or the installed extension's.

    A $SPINESEG_RESOURCES without ``models/manifest.json`` is an error, not a silent fall-back to the
    bundled models (a mistyped folder must not run other weights than the user asked for).
    """
    env = os.environ.get(ENV_RESOURCES)
    if env:
        if not (Path(env) / "models" / "manifest.json").is_file():
            raise InputError(env, f"{ENV_RESOURCES} names a folder without models/manifest.json")
        return Path(env)
    candidates = []
    here = Path(__file__).resolve().parent.parent  # .../SpineSegLib
    candidates += [here.parent / "Resources", here / "Resources"]
    for c in candidates:
        if (c / "models" / "manifest.json").is_file():
            return c
    raise SpineSegError(
        "SpineSeg resources (models/manifest.json) not found; set SPINESEG_RESOURCES to the Resources folder"
    )


def model_cache_dir() -> Path:
    env = os.environ.get(ENV_MODEL_CACHE)
    return Path(env) if env else Path.home() / ".spineseg" / "models"


@dataclass(frozen=True)
class ModelEntry:
    pipeline: str
    stage: str
    weights: Path
    card: Path
    sha256: str
    card_sha256: str = ""
    url: str | None = None
    size_bytes: int | None = None


@dataclass
class Manifest:
    path: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path | None = None) -> Manifest:
        path = Path(path) if path else resources_dir() / "models" / "manifest.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(path, "model manifest not found") from None
        except json.JSONDecodeError as exc:
            raise InputError(path, f"model manifest is not valid JSON ({exc})") from None
        except UnicodeDecodeError:
            raise InputError(path, "model manifest is not a text file (not UTF-8)") from None
        except OSError as exc:
            raise InputError(path, f"model manifest cannot be read ({exc.strerror or exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("pipelines"), dict):
            raise InputError(path, "model manifest has no 'pipelines' object")
        problem = _structure_problem(data["pipelines"])
        if problem:
            raise InputError(path, f"model manifest: {problem}")
        return cls(path, data)

    @property
    def pipelines(self) -> list[str]:
        return list(self.data["pipelines"])

    def pipeline(self, name: str) -> dict[str, Any]:
        try:
            return self.data["pipelines"][name]
        except KeyError:
            raise SpineSegError(f"unknown pipeline {name!r}; available: {', '.join(self.pipelines)}") from None

    def method(self, pipeline: str) -> MethodSpec:
        """The registered method ``pipeline`` runs; an unknown one names the manifest."""
        name = self.pipeline(pipeline).get("method", DEFAULT_METHOD)
        try:
            return get_method(name)
        except SpineSegError as exc:
            raise InputError(self.path, f"pipeline {pipeline!r}: {exc}") from None

    def modality(self, pipeline: str) -> str:
        return str(self.pipeline(pipeline).get("modality") or self.method(pipeline).modalities[0])

    def title(self, pipeline: str) -> str:
        return str(self.pipeline(pipeline).get("title", ""))

    def entry(self, pipeline: str, stage: str) -> ModelEntry:
        stages = self.pipeline(pipeline).get("stages", {})
        if stage not in stages:
            raise SpineSegError(f"pipeline {pipeline!r} has no model for stage {stage!r} in {self.path}")
        e = stages[stage]
        for key in ("weights", "card", "sha256", "card_sha256"):
            if key not in e:
                raise InputError(self.path, f"pipeline {pipeline!r} stage {stage!r} lacks {key!r}")
        for key in ("sha256", "card_sha256"):
            if not _is_sha256(e[key]):
                raise InputError(
                    self.path,
                    f"pipeline {pipeline!r} stage {stage!r}: {key} {e[key]!r} is not a sha256 (64 hex digits); "
                    "SpineSeg does not load files it cannot verify",
                )
        base = self.path.parent if not e.get("url") else model_cache_dir() / pipeline
        return ModelEntry(
            pipeline=pipeline,
            stage=stage,
            weights=base / e["weights"],
            card=base / e["card"],
            sha256=e["sha256"],
            card_sha256=e["card_sha256"],
            url=e.get("url"),
            size_bytes=e.get("size_bytes"),
        )


def _structure_problem(pipelines: dict) -> str | None:
    """What makes the manifest's pipelines unusable (wrong types, unknown method, unsafe file names), or None."""
    for name, pipeline in pipelines.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            return f"pipeline name {name!r} is not a plain name (letters, digits, '.', '_', '-')"
        if not isinstance(pipeline, dict):
            return f"pipeline {name!r} is not an object"
        for key in ("title", "method", "modality"):
            if key in pipeline and not isinstance(pipeline[key], str):
                return f"pipeline {name!r}: {key} is not a string"
        try:
            get_method(pipeline.get("method", DEFAULT_METHOD))
        except SpineSegError as exc:
            return f"pipeline {name!r}: {exc}"
        stages = pipeline.get("stages", {})
        if not isinstance(stages, dict):
            return f"pipeline {name!r}: stages is not an object"
        for stage, e in stages.items():
            where = f"pipeline {name!r} stage {stage!r}"
            if not isinstance(e, dict):
                return f"{where} is not an object"
            for key in ("weights", "card"):
                if key in e and not _plain_file_name(e[key]):
                    return f"{where}: {key} {e[key]!r} is not a file name in the models folder"
            for key in ("sha256", "card_sha256", "url"):
                if e.get(key) is not None and not isinstance(e[key], str):
                    return f"{where}: {key} is not a string"
            size = e.get("size_bytes")
            if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
                return f"{where}: size_bytes is not a whole number of bytes"
    return None


def _plain_file_name(value: object) -> bool:
    """A relative path inside the models folder (no absolute path, no '..')."""
    if not isinstance(value, str) or not value.strip():
        return False
    parts = Path(value).parts
    return not Path(value).is_absolute() and ".." not in parts and "\\" not in value


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower())
