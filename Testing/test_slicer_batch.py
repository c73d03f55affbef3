"""Saving and reloading SpineSeg's outputs, and the headless batch script, on the real Slicer core libraries."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="the Slicer core libraries (pip install slicer-core vtk==9.6.2) are needed")

import slicer_headless as H
from slicer_fixtures import synthetic_lumbar_ct, tiny_models, write_tiny_resources

H.add_module_paths()

import slicer  # noqa: E402
from SpineSegSlicerLib import editing, results, terminology  # noqa: E402
from SpineSegSlicerLib import logic as LG  # noqa: E402
from SpineSegSlicerLib import nodes as N  # noqa: E402

from SpineSegLib import labels as L  # noqa: E402
from SpineSegLib.io import read_centroids  # noqa: E402
from SpineSegLib.pipeline import Pipeline  # noqa: E402

BATCH_SCRIPT = H.REPO_ROOT / "SpineSeg" / "Resources" / "Scripts" / "spineseg_batch.py"


@pytest.fixture(scope="module")
def scene():
    return H.init()


@pytest.fixture(scope="module")
def models():
    return tiny_models()


@pytest.fixture(scope="module")
def outputs(scene, models):
    """SpineSeg outputs of a synthetic CT (imported from an in-process pipeline run), with a T13 relabel."""
    synthetic = synthetic_lumbar_ct(spacing=(2.0, 2.2, 2.5), direction=(0, 1, 0, -1, 0, 0, 0, 0, 1))
    volume = N.volume_from_sitk(scene, synthetic.image, "CT")
    direct = Pipeline(device="cpu", models=models).run(N.sitk_from_volume(volume))
    segmentation, _ = results.import_segmentation(volume, direct.labelmap)
    markups = results.import_centroids(volume, direct.centroids, {k: 0.5 for k in direct.centroids})
    markups.SetNthControlPointLabel(0, "T13")  # a transitional vertebra: terminology with a region
    editing.rename_segments(segmentation, {20: 28})
    return volume, segmentation, markups, direct


def test_seg_nrrd_round_trip_keeps_names_colours_terminology_masks(tmp_path, scene, outputs):
    volume, segmentation, _, _ = outputs
    path = tmp_path / "vertebrae.seg.nrrd"
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(segmentation)
    loaded = slicer.modules.segmentations.logic().LoadSegmentationFromFile(str(path), False)
    assert N.segment_names(loaded) == ["T13", "L2", "L3", "L4", "L5"]
    for name in N.segment_names(loaded):
        a = segmentation.GetSegmentation().GetSegment(N.segment_id_by_name(segmentation, name))
        b = loaded.GetSegmentation().GetSegment(N.segment_id_by_name(loaded, name))
        assert b.GetTerminology() == a.GetTerminology() == terminology.terminology_entry(L.id_of(name))
        np.testing.assert_allclose(b.GetColor(), a.GetColor(), atol=1e-6)
        assert terminology.get_tag(b, results.FINGERPRINT_TAG) == terminology.get_tag(a, results.FINGERPRINT_TAG)
    t13 = terminology.parse_entry(terminology.terminology_entry(28))
    assert t13["region"] == ("SCT", "122495006", "Thoracic spine")
    np.testing.assert_array_equal(
        N.labelmap_array_from_segmentation(loaded, volume), N.labelmap_array_from_segmentation(segmentation, volume)
    )
    # a reloaded, untouched segment is still recognised as SpineSeg's own (not edited by hand)
    assert not editing.is_hand_edited(loaded, N.segment_id_by_name(loaded, "L3"), volume)


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_mrk_json_round_trip_keeps_labels_descriptions_positions(tmp_path, scene, outputs, system):
    _, _, markups, _ = outputs
    path = tmp_path / f"vertebrae_{system}.mrk.json"
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    storage.SetFileName(str(path))
    storage.SetCoordinateSystem(getattr(slicer.vtkMRMLStorageNode, f"CoordinateSystem{system}"))
    assert storage.WriteData(markups)
    loaded = scene.GetNodeByID(slicer.modules.markups.logic().LoadMarkups(str(path), "loaded"))
    assert [p[1] for p in N.markups_points(loaded)] == [p[1] for p in N.markups_points(markups)]
    for (_, _, a), (_, _, b) in zip(N.markups_points(loaded), N.markups_points(markups)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert loaded.GetNthControlPointDescription(2) == "heatmap response 0.500"
    # SpineSegLib reads the file Slicer wrote into the same LPS centroids
    theirs = read_centroids(path)
    ours, problems = N.centroids_from_markups(markups)
    assert problems == [] and theirs.labels == ours.labels
    np.testing.assert_allclose(theirs.array(), ours.array(), atol=1e-6)


def _load_batch_module():
    spec = importlib.util.spec_from_file_location("spineseg_batch", BATCH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batch_script_processes_every_input_and_reports_failures(tmp_path, scene, models, capsys):
    resources = write_tiny_resources(tmp_path / "tiny")
    inputs = tmp_path / "in"
    inputs.mkdir()
    a = synthetic_lumbar_ct()
    b = synthetic_lumbar_ct(direction=(0, 1, 0, -1, 0, 0, 0, 0, 1), spacing=(2.0, 2.0, 2.4))
    sitk.WriteImage(a.image, str(inputs / "case-a_ct.nii.gz"))
    sitk.WriteImage(b.image, str(inputs / "case-b.nrrd"))
    (inputs / "broken.nii.gz").write_bytes(b"not an image")
    batch = _load_batch_module()
    logic = LG.SpineSegLogic(environment={"SPINESEG_RESOURCES": str(resources)}, work_root=tmp_path / "work")
    out = tmp_path / "out"
    cases = [str(inputs / "case-a_ct.nii.gz"), str(inputs / "case-b.nrrd")]
    assert batch.main(["--input", *cases, "--output", str(out), "--device", "cpu"], scene=scene, logic=logic) == 0
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0  # each case is cleared after saving
    for name, synthetic in (("case-a", a), ("case-b", b)):
        paths = batch.output_paths(out, name)
        seg = slicer.modules.segmentations.logic().LoadSegmentationFromFile(str(paths["segmentation"]), False)
        assert N.segment_names(seg) == ["L1", "L2", "L3", "L4", "L5"]
        direct = Pipeline(device="cpu", models=models).run(synthetic.image)
        reference = N.volume_from_sitk(scene, synthetic.image, f"{name} reference")
        np.testing.assert_array_equal(
            N.labelmap_array_from_segmentation(seg, reference), sitk.GetArrayFromImage(direct.labelmap)
        )
        points = read_centroids(paths["centroids"])
        np.testing.assert_allclose(points.array(), direct.centroids.array(), atol=0.01)
        assert json.loads(paths["centroids"].read_text())["markups"][0]["coordinateSystem"] == "LPS"
        heat = sitk.ReadImage(str(paths["heatmap"]))
        np.testing.assert_allclose(
            sitk.GetArrayFromImage(heat), sitk.GetArrayFromImage(direct.heatmaps).max(axis=-1), atol=1e-6
        )
    capsys.readouterr()
    # finished cases are skipped; a broken input fails alone with exit code 1
    broken = str(inputs / "broken.nii.gz")
    assert batch.main(["--input", *cases, broken, "--output", str(out)], scene=scene, logic=logic) == 1
    printed = capsys.readouterr()
    assert "case-a: already done" in printed.out and "case-b: already done" in printed.out
    assert "broken: FAILED" in printed.err
    assert batch.main(["--output", str(out)], scene=scene, logic=logic) == 2
    # missing Python packages: one message and exit code 2 before any case is touched
    from SpineSegSlicerLib.dependencies import Installer

    missing = Installer(None, requirements=(("spineseg-not-real", "spineseg_not_real", ">=1"),))
    logic = LG.SpineSegLogic(installer=missing, work_root=tmp_path / "work2")
    assert batch.main(["--input", *cases, "--output", str(tmp_path / "out2")], scene=scene, logic=logic) == 2
    assert "spineseg-not-real>=1" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())
