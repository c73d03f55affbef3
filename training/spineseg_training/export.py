"""Export a trained stage: safetensors weights + model card, registered in a model manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from SpineSegLib.models import save_model
from SpineSegLib.networks import build_network

from .config import StageConfig
from .trainer import model_card


def export_stage(
    run_dir: str | Path,
    cfg: StageConfig,
    name: str,
    target: str | Path,
    training_data: str,
    which: str = "best",
    pipeline: str = "ct-full-spine",
    manifest: str | Path | None = None,
    real_cases: list[str] | None = None,
) -> tuple[Path, Path]:
    """Write ``target/<name>.safetensors`` + ``.json`` from a run's checkpoint and register them in ``manifest``."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / f"{which}.pt"
    if not ckpt.is_file():
        ckpt = run_dir / "checkpoints" / "last.pt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = build_network(cfg.network)
    model.load_state_dict(state["model"])
    validation: dict[str, Any] = {"checkpoint": ckpt.name, "iteration": int(state["iteration"])}
    best = run_dir / "checkpoints" / "best.json"
    if ckpt.name == "best.pt" and best.is_file():
        validation.update(json.loads(best.read_text()))
    card = model_card(cfg, name, training_data, validation)
    card.real_cases = sorted(real_cases or [])
    weights, card_path = save_model(model, card, target)
    if manifest is not None:
        register(manifest, pipeline, cfg.stage, weights, card_path, card.sha256)
    return weights, card_path


def register(manifest: str | Path, pipeline: str, stage: str, weights: Path, card: Path, sha256: str) -> None:
    manifest = Path(manifest)
    data = json.loads(manifest.read_text()) if manifest.is_file() else {"schema_version": 1, "pipelines": {}}
    entry = data["pipelines"].setdefault(pipeline, {"stages": {}})
    rel = os.path.relpath(weights, manifest.parent), os.path.relpath(card, manifest.parent)
    entry.setdefault("stages", {})[stage] = {
        "weights": rel[0],
        "card": rel[1],
        "sha256": sha256,
        "size_bytes": weights.stat().st_size,
    }
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, manifest)
