"""Save and load weights as safetensors + model card, verified by sha256.

Never unpickle a file a user gave us: weights are safetensors only, and a file whose
sha256 differs from the one the manifest (or caller) expects is refused by name.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import InputError
from ..io.atomic import atomic_path, write_json_atomic
from ..networks import build_network
from .card import ModelCard, read_verified_card
from .hashing import sha256_of


def save_model(model: torch.nn.Module, card: ModelCard, folder: str | Path) -> tuple[Path, Path]:
    """Write ``<card.name>.safetensors`` and ``<card.name>.json`` (with the weights' sha256) atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{card.name}.safetensors"
    card_path = folder / f"{card.name}.json"
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:  # the library's atomic writer: no partial file, normal permissions
        save_file(state, str(tmp), metadata={"name": card.name, "stage": card.stage})
        card.sha256 = sha256_of(tmp)
    write_json_atomic(card.to_json(), card_path, indent=1)
    return weights, card_path


def load_model(
    weights: str | Path,
    card: str | Path | ModelCard,
    expected_sha256: str | None = None,
    device: str | torch.device = "cpu",
    expected_card_sha256: str | None = None,
) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the network of ``card`` and load ``weights`` after checking their sha256.

    ``expected_sha256`` and ``expected_card_sha256`` come from the model manifest; without the first
    the card's own hash is used (which still catches truncated or swapped files).
    """
    weights = Path(weights)
    card = card if isinstance(card, ModelCard) else read_verified_card(card, expected_card_sha256)
    if not weights.is_file():
        raise InputError(weights, f"weights of model {card.name!r} not found")
    if weights.suffix != ".safetensors":
        raise InputError(weights, "SpineSeg loads only .safetensors weights (never pickled checkpoints)")
    digest = sha256_of(weights)
    for source, want in (("model manifest", expected_sha256), ("model card", card.sha256)):
        if want and digest != want:
            raise InputError(
                weights,
                f"sha256 {digest[:12]}... does not match the {source} ({want[:12]}...): "
                "the file is corrupt, tampered with or not the weights of this model; reinstall or re-download it",
            )
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(weights, f"not a readable safetensors file ({exc})") from None
    try:
        net = build_network(card.network)
    except (TypeError, ValueError) as exc:
        raise InputError(weights, f"model card network config is invalid ({exc})") from None
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise InputError(weights, f"weights do not fit the network of the model card ({first})") from None
    if missing or unexpected:
        raise InputError(
            weights,
            f"weights do not fit the network of the model card (missing {len(missing)}, unexpected {len(unexpected)} "
            f"tensors, e.g. {(missing or unexpected)[0]})",
        )
    return net.to(device).eval(), card
