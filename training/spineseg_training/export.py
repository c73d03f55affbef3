"""Export a trained stage: safetensors weights + model card, registered in a model manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from SpineSegLib.errors import SpineSegError
from SpineSegLib.methods import DEFAULT_METHOD, DEFAULT_PIPELINE, get_method
from SpineSegLib.models import save_model, sha256_of
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
    pipeline: str = DEFAULT_PIPELINE,
    manifest: str | Path | None = None,
    real_cases: list[str] | None = None,
    params_from: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write ``target/<name>.safetensors`` + ``.json`` from a run's checkpoint and register them in ``manifest``.

    ``params_from``: a model card whose post-processing parameters (calibrated thresholds,
    test-time passes) the new card takes over, e.g. the card of the weights a fine-tune
    started from; the preset's parameters otherwise.
    """
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
    if params_from is not None:
        card.params = _params_of(Path(params_from), cfg.stage)
    card.real_cases = sorted(real_cases or [])
    weights, card_path = save_model(model, card, target)
    if manifest is not None:
        # HU inputs (the CT normalisation or a window) are CT; a percentile-normalised input is MR.
        modality = "mr" if card.intensity.get("type") == "percentile" else "ct"
        register(manifest, pipeline, cfg.stage, weights, card_path, card.sha256, method=card.method, modality=modality)
    return weights, card_path


def _params_of(card_path: Path, stage: str) -> dict[str, Any]:
    try:
        other = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpineSegError(f"{card_path}: cannot read the model card to take parameters from ({exc})") from None
    if other.get("stage") != stage:
        raise SpineSegError(f"{card_path}: a {other.get('stage')!r} card, not one of stage {stage!r}")
    return dict(other.get("params", {}))


def register(
    manifest: str | Path,
    pipeline: str,
    stage: str,
    weights: Path,
    card: Path,
    sha256: str,
    method: str = DEFAULT_METHOD,
    modality: str | None = None,
) -> None:
    """Add (or replace) one stage of ``pipeline`` in ``manifest``; a new pipeline gets its method and modality."""
    manifest = Path(manifest)
    spec = get_method(method)
    data = json.loads(manifest.read_text()) if manifest.is_file() else {"schema_version": 1, "pipelines": {}}
    entry = data["pipelines"].setdefault(pipeline, {"stages": {}})
    if entry.setdefault("method", spec.name) != spec.name:
        raise SpineSegError(f"{manifest}: pipeline {pipeline!r} runs {entry['method']!r}, not {spec.name!r}")
    entry.setdefault("modality", modality or spec.modalities[0])
    entry.setdefault("title", spec.title)
    rel = os.path.relpath(weights, manifest.parent), os.path.relpath(card, manifest.parent)
    entry.setdefault("stages", {})[stage] = {
        "weights": rel[0],
        "card": rel[1],
        "sha256": sha256,
        "card_sha256": sha256_of(card),
        "size_bytes": weights.stat().st_size,
    }
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, manifest)


def update_card_hashes(manifest: str | Path) -> list[str]:
    """Rewrite ``card_sha256`` of every stage whose card file changed (after ``calibrate``); returns them."""
    manifest = Path(manifest)
    data = json.loads(manifest.read_text())
    changed = []
    for name, entry in data.get("pipelines", {}).items():
        for stage, e in entry.get("stages", {}).items():
            card = manifest.parent / e["card"]
            if card.is_file() and e.get("card_sha256") != (digest := sha256_of(card)):
                e["card_sha256"] = digest
                changed.append(f"{name}/{stage}")
    if changed:
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, manifest)
    return changed
