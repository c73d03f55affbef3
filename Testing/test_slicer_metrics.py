"""SpineSegMetrics on the real Slicer core libraries: its tables equal SpineSegLib.metrics.evaluate and the CLI's."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="the Slicer core libraries (pip install slicer-core vtk==9.6.2) are needed")

import slicer_headless as H
from slicer_fixtures import synthetic_lumbar_ct

H.add_module_paths()

import slicer  # noqa: E402
from SpineSegMetricsLib import logic as ML  # noqa: E402
from SpineSegSlicerLib import nodes as N  # noqa: E402
from SpineSegSlicerLib import results  # noqa: E402

from SpineSegLib.centroids import Centroids  # noqa: E402
from SpineSegLib.io import write_centroids, write_labelmap  # noqa: E402
from SpineSegLib.metrics import evaluate, resample_prediction  # noqa: E402


def _perturbed(labels: sitk.Image) -> sitk.Image:
    """A plausible prediction: L2 grown by one voxel, L3 shifted by two voxels, L5 missed."""
    a = sitk.GetArrayFromImage(labels)
    out = a.copy()
    out[a == 24] = 0
    out[a == 22] = 0
    out[np.roll(a == 22, 2, axis=2) & (out == 0)] = 22
    grown = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray((a == 21).astype(np.uint8)), [1, 1, 1]))
    out[(grown > 0) & (out == 0)] = 21
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(labels)
    return img


@pytest.fixture(scope="module")
def case():
    scene = H.init()
    synthetic = synthetic_lumbar_ct(spacing=(2.0, 2.0, 2.5), direction=(0, 1, 0, -1, 0, 0, 0, 0, 1))
    volume = N.volume_from_sitk(scene, synthetic.image, "CT")
    pred_image = _perturbed(synthetic.labels)
    segmentation, _ = results.import_segmentation(volume, pred_image)
    pred_points = Centroids(
        {k: v + np.array([1.0, -2.0, 0.5]) * (k - 19) for k, v in synthetic.centroids.items() if k != 24}
    )
    pred_markups = results.import_centroids(volume, pred_points)
    gt_node = N.volume_from_sitk(scene, synthetic.labels, "ground truth", "vtkMRMLLabelMapVolumeNode")
    gt_markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "ground truth points")
    N.set_markups_from_centroids(gt_markups, synthetic.centroids)
    return dict(
        scene=scene,
        volume=volume,
        synthetic=synthetic,
        pred_image=pred_image,
        pred_points=pred_points,
        segmentation=segmentation,
        pred_markups=pred_markups,
        gt_node=gt_node,
        gt_markups=gt_markups,
    )


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return b is not None and float(a) == pytest.approx(float(b), rel=1e-9, abs=1e-12)


def _check_tables(result, expected) -> None:
    names = ML.table_column(result.vertebra_table, "Vertebra")
    assert names == [row.name for row in expected.per_vertebra.values()]
    for title, field, *_ in ML.VERTEBRA_COLUMNS:
        column = ML.table_column(result.vertebra_table, title)
        for value, row in zip(column, expected.per_vertebra.values()):
            assert _same(value, getattr(row, field)), (title, row.name, value, getattr(row, field))
    summary = dict(zip(ML.table_column(result.summary_table, "Metric"), ML.table_column(result.summary_table, "Value")))
    for title, field, _ in ML.SUMMARY_ROWS:
        assert _same(summary[title], getattr(expected.summary, field)), title


def test_tables_equal_spineseglib_evaluate(case):
    result = ML.SpineSegMetricsLogic().process(
        case["segmentation"],
        groundTruth=case["gt_node"],
        predictionPoints=case["pred_markups"],
        groundTruthPoints=case["gt_markups"],
    )
    s = case["synthetic"]
    expected = evaluate(case["pred_image"], s.labels, case["pred_points"], s.centroids)
    _check_tables(result, expected)
    rows = expected.per_vertebra
    assert rows[20].dice == 1.0 and rows[24].dice == 0.0 and 0 < rows[21].dice < 1 and 0 < rows[22].dice < 1
    assert expected.summary.n_missed == 1
    chart = result.chart
    series = chart.GetNthPlotSeriesNode(0)
    assert series.GetTableNodeID() == result.vertebra_table.GetID()
    assert series.GetYColumnName() == "Dice" and series.GetPlotType() == slicer.vtkMRMLPlotSeriesNode.PlotTypeBar
    assert result.vertebra_table.GetColumnUnitLabel("HD95") == "mm"


def test_tables_equal_the_spineseg_evaluate_command(case, tmp_path):
    """Files written from the nodes, evaluated by the CLI in a subprocess, give the module's numbers."""
    pred_file, gt_file = tmp_path / "pred.nii.gz", tmp_path / "gt.nii.gz"
    write_labelmap(N.labelmap_from_segmentation(case["segmentation"]), pred_file)
    write_labelmap(case["synthetic"].labels, gt_file)
    pred_ctd, gt_ctd = tmp_path / "pred.mrk.json", tmp_path / "gt_ctd.json"
    write_centroids(N.centroids_from_markups(case["pred_markups"])[0], pred_ctd)
    write_centroids(case["synthetic"].centroids, gt_ctd, reference=case["synthetic"].labels)
    out_json, out_csv = tmp_path / "metrics.json", tmp_path / "metrics.csv"
    cmd = [sys.executable, "-m", "SpineSegLib", "evaluate", "--pred", str(pred_file), "--gt", str(gt_file)]
    cmd += ["--pred-ctd", str(pred_ctd), "--gt-ctd", str(gt_ctd), "--json", str(out_json), "--csv", str(out_csv)]
    done = subprocess.run(
        cmd, capture_output=True, encoding="utf-8", errors="replace", check=False, cwd=H.REPO_ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    cli = json.loads(out_json.read_text())

    logic = ML.SpineSegMetricsLogic()
    result = logic.process(
        case["segmentation"],
        groundTruthFile=gt_file,
        predictionPoints=case["pred_markups"],
        groundTruthPointsFile=gt_ctd,
    )
    names = ML.table_column(result.vertebra_table, "Vertebra")
    assert names == list(cli["per_vertebra"])
    for title, field, *_ in ML.VERTEBRA_COLUMNS:
        for name, value in zip(names, ML.table_column(result.vertebra_table, title)):
            assert _same(value, cli["per_vertebra"][name][field]), (title, name)
    summary = dict(zip(ML.table_column(result.summary_table, "Metric"), ML.table_column(result.summary_table, "Value")))
    for title, field, _ in ML.SUMMARY_ROWS:
        assert _same(summary[title], cli["summary"][field]), title
    exported = logic.export_csv(result.evaluation, tmp_path / "module.csv")
    assert exported.read_text() == out_csv.read_text()


def test_segmentation_as_ground_truth_and_labelmap_as_prediction(case):
    """Both node kinds on both sides: a labelmap prediction against a segmentation ground truth."""
    scene = case["scene"]
    pred_node = N.volume_from_sitk(scene, case["pred_image"], "prediction", "vtkMRMLLabelMapVolumeNode")
    gt_seg, _ = results.import_segmentation(
        N.volume_from_sitk(scene, case["synthetic"].image, "CT copy"), case["synthetic"].labels
    )
    result = ML.SpineSegMetricsLogic().process(pred_node, groundTruth=gt_seg)
    _check_tables(result, evaluate(case["pred_image"], case["synthetic"].labels))


def test_different_grids_need_resampling(case):
    scene = case["scene"]
    coarse = sitk.Resample(
        case["pred_image"],
        [20, 20, 40],
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        case["pred_image"].GetOrigin(),
        [4.0, 4.0, 5.0],
        case["pred_image"].GetDirection(),
    )
    node = N.volume_from_sitk(scene, coarse, "coarse prediction", "vtkMRMLLabelMapVolumeNode")
    logic = ML.SpineSegMetricsLogic()
    with pytest.raises(ValueError, match="different voxel grids"):
        logic.evaluate(node, groundTruth=case["gt_node"])
    evaluation = logic.evaluate(node, groundTruth=case["gt_node"], resamplePrediction=True)
    expected = evaluate(resample_prediction(coarse, case["synthetic"].labels), case["synthetic"].labels)
    assert evaluation.to_json() == expected.to_json()


def test_points_with_unknown_labels_are_refused(case):
    scene = case["scene"]
    bad = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "bad points")
    N.set_markups_from_centroids(bad, case["synthetic"].centroids)
    bad.SetNthControlPointLabel(1, "F-1")
    with pytest.raises(ValueError, match="'F-1'"):
        ML.SpineSegMetricsLogic().evaluate(case["segmentation"], groundTruth=case["gt_node"], predictionPoints=bad)


def test_module_self_test_runs_headless():
    """The module's own Slicer self-test (a perfect prediction, then a missed vertebra) passes on slicer-core."""
    H.install_stubs()
    import SpineSegMetrics

    test = SpineSegMetrics.SpineSegMetricsTest("test_SpineSegMetrics_perfect_and_missed")
    test.runTest()
    parameters = SpineSegMetrics.SpineSegMetricsLogic().getParameterNode()
    assert parameters.parameterNode.GetAttribute("ModuleName") == "SpineSegMetrics"
    assert parameters.idThreshold == 20.0
