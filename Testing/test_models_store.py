"""Weights are safetensors + model card, verified by sha256; tampering and mistakes are refused by name."""

import json

import pytest
import torch

from SpineSegLib.errors import InputError, SpineSegError
from SpineSegLib.models import Manifest, ModelCard, load_model, save_model, sha256_of
from SpineSegLib.networks import build_network

NET = {"architecture": "unet", "in_channels": 1, "out_channels": 1, "num_filters": 4, "num_levels": 2}


def _card(name="m", net=NET):
    return ModelCard(
        name=name,
        stage="spine",
        network=dict(net),
        spacing_mm=[8, 8, 8],
        input_size=[16, 16, 16],
        intensity={"type": "ct", "min_hu": -1024.0, "divisor": 2048.0},
    )


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_network(NET)
    weights, card = save_model(model, _card(), tmp_path)
    return model, weights, card


def test_round_trip_gives_identical_outputs(saved):
    model, weights, card = saved
    loaded, c = load_model(weights, card)
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))
    assert c.sha256 == sha256_of(weights)
    assert json.loads(card.read_text())["sha256"] == c.sha256


def test_tampered_weights_are_refused(saved):
    _, weights, card = saved
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256 .* does not match the model card") as err:
        load_model(weights, card)
    assert str(weights) in str(err.value)


def test_manifest_hash_is_checked_first(saved):
    _, weights, card = saved
    with pytest.raises(InputError, match="does not match the model manifest"):
        load_model(weights, card, expected_sha256="0" * 64)
    load_model(weights, card, expected_sha256=sha256_of(weights))


def test_pickled_or_missing_weights_are_refused(saved, tmp_path):
    _, weights, card = saved
    pickled = tmp_path / "m.pt"
    torch.save({"x": torch.zeros(1)}, pickled)
    with pytest.raises(InputError, match="only .safetensors"):
        load_model(pickled, card)
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "absent.safetensors", card)


def test_weights_of_another_network_are_refused(saved, tmp_path):
    _, weights, _ = saved
    other = _card("other", {**NET, "num_filters": 6})
    other.sha256 = ""
    with pytest.raises(InputError, match="do not fit the network of the model card"):
        load_model(weights, other)


def test_broken_cards_name_the_problem(tmp_path):
    bad = tmp_path / "card.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        ModelCard.read(bad)
    bad.write_text(json.dumps({"name": "x", "stage": "spine"}))
    with pytest.raises(InputError, match="lacks network, spacing_mm, input_size, intensity"):
        ModelCard.read(bad)
    bad.write_text(json.dumps({**_card().to_json(), "stage": "nope"}))
    with pytest.raises(InputError, match="stage 'nope'"):
        ModelCard.read(bad)


def test_manifest_entries_and_errors(saved, tmp_path):
    _, weights, card = saved
    manifest = tmp_path / "manifest.json"
    good = {"weights": weights.name, "card": card.name, "sha256": sha256_of(weights), "card_sha256": sha256_of(card)}

    def write(entry: dict) -> Manifest:
        manifest.write_text(json.dumps({"pipelines": {"p": {"stages": {"spine": entry}}}}))
        return Manifest.load(manifest)

    m = write(good)
    entry = m.entry("p", "spine")
    assert entry.weights == weights and entry.card == card and entry.card_sha256 == good["card_sha256"]
    load_model(entry.weights, entry.card, entry.sha256, expected_card_sha256=entry.card_sha256)
    # A hash that is missing, empty or not a sha256 switches nothing off: the entry is refused.
    for key in ("sha256", "card_sha256"):
        with pytest.raises(InputError, match=f"lacks '{key}'"):
            write({k: v for k, v in good.items() if k != key}).entry("p", "spine")
        for bad in ("", "abc", "g" * 64):
            with pytest.raises(InputError, match=f"{key} '{bad}' is not a sha256"):
                write({**good, key: bad}).entry("p", "spine")
    # The card is covered too: a changed threshold is caught before the card is used.
    changed = tmp_path / "changed.json"
    changed.write_text(card.read_text().replace('"name"', '"name" ', 1))
    with pytest.raises(InputError, match="the card .* was changed"):
        load_model(weights, changed, good["sha256"], expected_card_sha256=good["card_sha256"])
    m = write(good)
    with pytest.raises(SpineSegError, match="unknown pipeline 'q'; available: p"):
        m.entry("q", "spine")
    with pytest.raises(SpineSegError, match="no model for stage 'vertebrae'"):
        m.entry("p", "vertebrae")
    manifest.write_text("[]")
    with pytest.raises(InputError, match="no 'pipelines' object"):
        Manifest.load(manifest)
