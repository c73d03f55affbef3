"""The method registry, typed stage parameters and ``spineseg pipelines``.

The bundled manifest and cards are read as shipped; the CLI runs in-process on the tiny hand-set
model set of :mod:`slicer_fixtures`, with cards edited the way a user would mistype them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from slicer_fixtures import synthetic_lumbar_ct, write_tiny_resources

from SpineSegLib.cli import main
from SpineSegLib.errors import InputError, SpineSegError
from SpineSegLib.methods import DEFAULT_PIPELINE, REGISTRY, get_method, parse_stages
from SpineSegLib.models import Manifest, ModelCard
from SpineSegLib.pipeline import Pipeline, open_pipeline
from SpineSegLib.pipeline.params import PARAMS_BY_STAGE, SegmentationParams, TTAPass, VertebraeParams

REPO = Path(__file__).resolve().parent.parent


def cli(capsys, *args) -> tuple[int, str, str]:
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_every_bundled_pipeline_runs_a_registered_method_whose_cards_all_parse():
    manifest = Manifest.load(REPO / "Resources" / "models" / "manifest.json")
    assert DEFAULT_PIPELINE in manifest.pipelines
    for name in manifest.pipelines:
        spec = manifest.method(name)
        assert spec is REGISTRY[spec.name]
        assert manifest.modality(name) in spec.modalities
        for stage in spec.stage_names:
            card = ModelCard.read(manifest.entry(name, stage).card)
            assert (card.method, card.stage) == (spec.name, stage)
            params = PARAMS_BY_STAGE[stage].from_card(card)
            # Every parameter the card sets is the value the stage will use.
            assert {k: params.to_json()[k] for k in card.params} == json.loads(json.dumps(card.params))


def test_the_registry_names_stages_in_run_order_and_refuses_unknown_ones():
    payer = get_method("payer")
    assert parse_stages("segmentation, spine") == ("spine", "segmentation")
    assert payer.stages_through(payer.points_stage) == ("spine", "vertebrae")
    assert payer.heatmap_stage in payer.stage_names and payer.resegment_from_points
    assert payer.runner_class() is Pipeline
    with pytest.raises(SpineSegError, match="unknown stage.*segmentaton.*spine, vertebrae, segmentation"):
        parse_stages("spine,segmentaton")
    with pytest.raises(SpineSegError, match="no stage"):
        parse_stages(" , ")
    with pytest.raises(SpineSegError, match=f"unknown method 'nnunet'; methods are {', '.join(sorted(REGISTRY))}$"):
        get_method("nnunet")


def test_stage_parameters_reject_unknown_keys_and_wrong_types_naming_the_source():
    assert SegmentationParams.from_mapping({"threshold": 0.6}).threshold == 0.6
    passes = SegmentationParams.from_mapping({"tta_passes": [{"offset_vox": [0.5, 0.5, 0.5], "mirror_x": True}]})
    assert passes.tta_passes == (TTAPass((0.5, 0.5, 0.5), True),)
    assert VertebraeParams.from_mapping({"margin_mm": [1, 2, 3]}).margin_mm == (1.0, 2.0, 3.0)
    bad = [
        ({"treshold": 0.6}, "unknown segmentation parameter.*'treshold'"),
        ({"threshold": "0.6"}, "'threshold' must be a finite number"),
        ({"threshold": float("nan")}, "'threshold' must be a finite number"),
        ({"batch_size": 0}, "'batch_size' must be a positive whole number"),
        ({"fill_holes": 1}, "'fill_holes' must be true or false"),
        ({"tta_passes": []}, "non-empty list of passes"),
        ({"tta_passes": [{"offset": [0, 0, 0]}]}, "each pass is"),
        ({"tta_passes": [{"offset_vox": [0, 0]}]}, "offset_vox must be a list of 3 numbers"),
    ]
    for params, message in bad:
        with pytest.raises(InputError, match=message) as info:
            SegmentationParams.from_mapping(params, source="my/card.json")
        assert str(info.value).startswith("my/card.json: ")


def test_a_card_with_an_unknown_key_or_a_stage_of_no_method_is_refused(tmp_path):
    card = json.loads((REPO / "Resources" / "models" / "ct-full-spine-vertebrae.json").read_text())
    for change, message in (
        ({"tresholds": {}}, "unknown key.*'tresholds'"),
        ({"method": "xunet"}, "unknown method 'xunet'"),
        ({"stage": "instance"}, "stage 'instance' is not a stage of payer"),
    ):
        path = tmp_path / "card.json"
        path.write_text(json.dumps({**card, **change}))
        with pytest.raises(InputError, match=message) as info:
            ModelCard.read(path)
        assert info.value.path == str(path)
    path.write_text(json.dumps(card))
    read = ModelCard.read(path)
    assert read.source == str(path) and "source" not in read.to_json() and read.method == "payer"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_resources(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def lumbar(tmp_path_factory) -> Path:
    image = synthetic_lumbar_ct().image
    path = tmp_path_factory.mktemp("case") / "sub-lumbar_ct.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def _edit_card(resources: Path, stage: str, **params) -> Path:
    path = Manifest.load(resources / "models" / "manifest.json").entry(DEFAULT_PIPELINE, stage).card
    card = json.loads(path.read_text())
    card["params"] = {**card["params"], **params}
    path.write_text(json.dumps(card))
    return path


def test_run_with_a_mistyped_card_parameter_stops_before_any_work_naming_key_and_card(
    tiny, lumbar, tmp_path, monkeypatch, capsys
):
    from spineseg_training.export import update_card_hashes

    res = shutil.copytree(tiny, tmp_path / "Resources")
    card = _edit_card(res, "segmentation", treshold=0.7)
    update_card_hashes(res / "models" / "manifest.json")  # as if re-registered: the card's own check is next
    monkeypatch.setenv("SPINESEG_RESOURCES", str(res))
    out = tmp_path / "out"
    rc, _, err = cli(capsys, "run", lumbar, "-o", out, "--device", "cpu", "--progress", "none")
    assert rc == 2
    assert f"{card}: unknown segmentation parameter(s) 'treshold'" in err and "Traceback" not in err
    assert not list(out.glob("*"))  # stages 1 and 2 did not run first


def test_run_names_the_pipelines_and_stages_it_accepts(tiny, lumbar, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPINESEG_RESOURCES", str(tiny))
    rc, _, err = cli(capsys, "run", lumbar, "-o", tmp_path, "--pipeline", "ct-lumbar")
    assert rc == 2 and "unknown pipeline 'ct-lumbar'; available: ct-full-spine" in err
    rc, _, err = cli(capsys, "run", lumbar, "-o", tmp_path, "--stages", "vertebra")
    assert rc == 2 and "the stages of payer are spine, vertebrae, segmentation" in err


def test_default_stages_come_from_the_method_and_give_the_same_result_as_naming_them(
    tiny, lumbar, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SPINESEG_RESOURCES", str(tiny))
    outs = []
    for i, extra in enumerate(((), ("--stages", "spine,vertebrae,segmentation"))):
        out = tmp_path / str(i)
        rc, _, err = cli(capsys, "run", lumbar, "-o", out, "--device", "cpu", "--progress", "none", *extra)
        assert rc == 0, err
        outs.append(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "sub-lumbar_seg-vert_msk.nii.gz"))))
        assert json.loads((out / "sub-lumbar_timings.json").read_text())["stages"] == list(
            get_method("payer").stage_names
        )
    assert np.array_equal(*outs) and set(np.unique(outs[0]).tolist()) == {0, 20, 21, 22, 23, 24}


def test_pipelines_lists_method_modality_and_training_data(capsys):
    rc, out, _ = cli(capsys, "pipelines", "--manifest", REPO / "Resources" / "models" / "manifest.json")
    assert rc == 0 and out.startswith(f"{DEFAULT_PIPELINE} (default): ")
    assert "method payer" in out and "modality ct" in out and "segmentation: ct-full-spine-segmentation" in out
    rc, out, _ = cli(capsys, "pipelines", "--json", "--manifest", REPO / "Resources" / "models" / "manifest.json")
    rows = json.loads(out)
    cards = {st["stage"]: st for st in rows[0]["stages"]}
    assert rows[0]["method"] == "payer" and set(cards) == set(get_method("payer").stage_names)
    for stage, st in cards.items():
        card = ModelCard.read(REPO / "Resources" / "models" / f"ct-full-spine-{stage}.json")
        assert st["training_data"] == card.training_data and st["real_cases"] == card.real_cases


def test_a_manifest_pipeline_of_an_unregistered_method_is_an_error_naming_the_manifest(tmp_path, capsys):
    manifest = json.loads((REPO / "Resources" / "models" / "manifest.json").read_text())
    manifest["pipelines"]["mr-spine"] = {"title": "MR", "method": "nnunet", "stages": {}}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="pipeline 'mr-spine': unknown method 'nnunet'") as info:
        open_pipeline("mr-spine", device="cpu", manifest=Manifest.load(path))
    assert info.value.path == str(path)
    rc, _, err = cli(capsys, "pipelines", "--manifest", path)
    assert rc == 2 and "unknown method 'nnunet'" in err


def test_export_registers_the_method_and_modality_and_refuses_mixing_methods(tmp_path):
    from spineseg_training.export import register

    weights, card = tmp_path / "w.safetensors", tmp_path / "w.json"
    weights.write_bytes(b"0123")
    card.write_text("{}")
    manifest = tmp_path / "manifest.json"
    register(manifest, "ct-new", "spine", weights, card, "ab" * 32)
    entry = json.loads(manifest.read_text())["pipelines"]["ct-new"]
    assert (entry["method"], entry["modality"], entry["stages"]["spine"]["size_bytes"]) == ("payer", "ct", 4)
    assert entry["title"] == get_method("payer").title
    data = json.loads(manifest.read_text())
    data["pipelines"]["ct-new"]["method"] = "other"
    manifest.write_text(json.dumps(data))
    with pytest.raises(SpineSegError, match="runs 'other', not 'payer'"):
        register(manifest, "ct-new", "vertebrae", weights, card, "ab" * 32)


def test_a_changed_card_or_a_mistyped_resources_folder_stops_the_run(tiny, lumbar, tmp_path, monkeypatch, capsys):
    res = shutil.copytree(tiny, tmp_path / "Resources")
    card = _edit_card(res, "segmentation", threshold=0.05)  # a plausible edit, but not the card the manifest names
    monkeypatch.setenv("SPINESEG_RESOURCES", str(res))
    rc, _, err = cli(capsys, "run", lumbar, "-o", tmp_path / "out", "--device", "cpu", "--progress", "none")
    assert rc == 2 and f"{card}: sha256" in err and "does not match the model manifest" in err
    monkeypatch.setenv("SPINESEG_RESOURCES", str(tmp_path / "Resorces"))
    rc, _, err = cli(capsys, "run", lumbar, "-o", tmp_path / "out", "--device", "cpu")
    assert rc == 2 and "SPINESEG_RESOURCES names a folder without models/manifest.json" in err
