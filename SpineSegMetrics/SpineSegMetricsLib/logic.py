"""Metrics of a vertebra segmentation against a ground truth, on MRML nodes (Qt-free).

The numbers are :func:`SpineSegLib.metrics.evaluate`'s, the same as ``spineseg evaluate``: nodes are
converted to SimpleITK images in LPS exactly (segmentations through the SpineSeg colour table, so a
segment's label value is the VerSe id of its name) and point lists to Centroids. The results go to two
table nodes (per vertebra; summary) and a bar chart of the Dice per vertebra.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from SpineSegSlicerLib import nodes as N

from SpineSegLib.centroids import Centroids

#: Per-vertebra table columns: (column name, Evaluation field, unit, description).
VERTEBRA_COLUMNS = (
    ("Dice", "dice", "", "Dice coefficient 2TP/(2TP+FP+FN)"),
    ("FND", "fnd", "", "false negative Dice 2FN/(2TP+FP+FN)"),
    ("FPD", "fpd", "", "false positive Dice 2FP/(2TP+FP+FN)"),
    ("HD", "hd", "mm", "Hausdorff distance"),
    ("HD95", "hd95", "mm", "95th percentile Hausdorff distance"),
    ("ASSD", "assd", "mm", "average symmetric surface distance"),
    ("PE", "pe_mm", "mm", "centroid point error"),
    ("Identified", "identified", "", "1 when identified (point error below the threshold, nearest to its own label)"),
)
SUMMARY_ROWS = (
    ("Dice mean", "dice_mean", ""),
    ("FND mean", "fnd_mean", ""),
    ("FPD mean", "fpd_mean", ""),
    ("HD mean", "hd_mean", "mm"),
    ("HD95 mean", "hd95_mean", "mm"),
    ("ASSD mean", "assd_mean", "mm"),
    ("PE mean", "pe_mean_mm", "mm"),
    ("Identification rate", "id_rate", ""),
    ("PQ", "pq", ""),
    ("SQ", "sq", ""),
    ("RQ", "rq", ""),
    ("Dice (all vertebrae as one)", "dice_global", ""),
    ("Ground-truth vertebrae", "n_gt", ""),
    ("Predicted vertebrae", "n_pred", ""),
    ("Missed", "n_missed", ""),
    ("Extra", "n_extra", ""),
)


def label_image_from_node(node, reference=None) -> sitk.Image:
    """A uint8 VerSe-id label map (LPS) of a segmentation node or a labelmap volume node."""
    if node.IsA("vtkMRMLSegmentationNode"):
        return N.labelmap_from_segmentation(node, reference)
    if node.IsA("vtkMRMLVolumeNode"):
        image = N.sitk_from_volume(node)
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError(f"{node.GetName()!r} is not a label map (it has several components)")
        return image
    raise TypeError(f"{node.GetName()!r} is neither a segmentation nor a label map volume")


def centroids_from_node(node) -> Centroids:
    centroids, problems = N.centroids_from_markups(node)
    if problems:
        raise ValueError(f"{node.GetName()}: " + "; ".join(problems))
    return centroids


@dataclass
class MetricsResult:
    evaluation: object  # SpineSegLib.metrics.Evaluation
    vertebra_table: object
    summary_table: object
    chart: object | None


class SpineSegMetricsLogic:
    """Evaluate prediction nodes against ground-truth nodes or files; show and export the numbers."""

    def evaluate(
        self,
        prediction,
        groundTruth=None,
        predictionPoints=None,
        groundTruthPoints=None,
        groundTruthFile: str | os.PathLike | None = None,
        groundTruthPointsFile: str | os.PathLike | None = None,
        predictionReference=None,
        groundTruthReference=None,
        resamplePrediction: bool = False,
        idThresholdMm: float = 20.0,
    ):
        """:class:`SpineSegLib.metrics.Evaluation` of ``prediction`` (node) against a node or a file."""
        from SpineSegLib.geometry import Grid
        from SpineSegLib.io import read_centroids, read_labelmap
        from SpineSegLib.metrics import evaluate, resample_prediction

        if (groundTruth is None) == (groundTruthFile is None):
            raise ValueError("give the ground truth as a node or as a file (one of them)")
        pred = label_image_from_node(prediction, predictionReference)
        gt = (
            read_labelmap(groundTruthFile)
            if groundTruthFile
            else label_image_from_node(groundTruth, groundTruthReference)
        )
        if not Grid.of(pred).same_as(Grid.of(gt)):
            if not resamplePrediction:
                raise ValueError(
                    "the prediction and the ground truth are on different voxel grids; "
                    "tick 'Resample prediction' to resample the prediction onto the ground truth (nearest neighbour)"
                )
            pred = resample_prediction(pred, gt)
        pred_points = centroids_from_node(predictionPoints) if predictionPoints is not None else None
        if groundTruthPointsFile:
            gt_points = read_centroids(groundTruthPointsFile, reference=gt)
        elif groundTruthPoints is not None:
            gt_points = centroids_from_node(groundTruthPoints)
        else:
            gt_points = None
        return evaluate(pred, gt, pred_points, gt_points, id_threshold_mm=idThresholdMm)

    def process(
        self, prediction, scene=None, vertebraTable=None, summaryTable=None, chart=None, **kwargs
    ) -> MetricsResult:
        """Evaluate and fill (or create) the tables and the Dice bar chart."""
        evaluation = self.evaluate(prediction, **kwargs)
        scene = scene or prediction.GetScene()
        name = prediction.GetName()
        vertebraTable = vertebraTable or scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} metrics per vertebra")
        summaryTable = summaryTable or scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} metrics summary")
        fill_vertebra_table(evaluation, vertebraTable)
        fill_summary_table(evaluation, summaryTable)
        chart = dice_chart(vertebraTable, chart)
        return MetricsResult(evaluation, vertebraTable, summaryTable, chart)

    @staticmethod
    def export_csv(evaluation, path: str | os.PathLike) -> Path:
        """The per-vertebra CSV, exactly as ``spineseg evaluate --csv`` writes it."""
        evaluation.to_csv(Path(path))
        return Path(path)


def _value(v) -> float:
    if v is None:
        return float("nan")
    return float(v)


def fill_vertebra_table(evaluation, table) -> None:
    """One row per vertebra: name, then the columns of :data:`VERTEBRA_COLUMNS` (undefined values NaN)."""
    t = vtk.vtkTable()
    names = vtk.vtkStringArray()
    names.SetName("Vertebra")
    t.AddColumn(names)
    label_column = vtk.vtkIntArray()
    label_column.SetName("Label")
    t.AddColumn(label_column)
    columns = []
    for title, *_ in VERTEBRA_COLUMNS:
        col = vtk.vtkDoubleArray()
        col.SetName(title)
        t.AddColumn(col)
        columns.append(col)
    for row in evaluation.per_vertebra.values():
        names.InsertNextValue(row.name)
        label_column.InsertNextValue(int(row.label))
        for col, (_, field, *_) in zip(columns, VERTEBRA_COLUMNS):
            col.InsertNextValue(_value(getattr(row, field)))
    with slicer.util.NodeModify(table):
        table.SetAndObserveTable(t)
        table.SetUseColumnTitleAsColumnHeader(True)
        for title, _, unit, description in VERTEBRA_COLUMNS:
            if unit:
                table.SetColumnUnitLabel(title, unit)
            table.SetColumnDescription(title, description)


def fill_summary_table(evaluation, table) -> None:
    t = vtk.vtkTable()
    metric = vtk.vtkStringArray()
    metric.SetName("Metric")
    value = vtk.vtkDoubleArray()
    value.SetName("Value")
    unit = vtk.vtkStringArray()
    unit.SetName("Unit")
    for col in (metric, value, unit):
        t.AddColumn(col)
    for title, field, u in SUMMARY_ROWS:
        metric.InsertNextValue(title)
        value.InsertNextValue(_value(getattr(evaluation.summary, field)))
        unit.InsertNextValue(u)
    with slicer.util.NodeModify(table):
        table.SetAndObserveTable(t)
        table.SetUseColumnTitleAsColumnHeader(True)


def table_column(table, name: str) -> np.ndarray | list[str]:
    """A column of a table node (numbers as a float array, strings as a list)."""
    col = table.GetTable().GetColumnByName(name)
    if col is None:
        raise KeyError(name)
    if isinstance(col, vtk.vtkStringArray):
        return [col.GetValue(i) for i in range(col.GetNumberOfValues())]
    return np.array([col.GetValue(i) for i in range(col.GetNumberOfTuples())], float)


def dice_chart(vertebra_table, chart=None):
    """A bar chart of the Dice column per vertebra (plot series + chart nodes in the table's scene)."""
    scene = vertebra_table.GetScene()
    series = None
    if chart is not None and chart.GetNumberOfPlotSeriesNodes():
        series = chart.GetNthPlotSeriesNode(0)
    if series is None:
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{vertebra_table.GetName()} Dice")
    series.SetAndObserveTableNodeID(vertebra_table.GetID())
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeBar)
    series.SetXColumnName("")  # bars at the row index, named by the Vertebra column
    series.SetYColumnName("Dice")
    series.SetLabelColumnName("Vertebra")
    series.SetColor(0.85, 0.55, 0.2)
    if chart is None:
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{vertebra_table.GetName()} Dice chart")
    if not chart.HasPlotSeriesNodeID(series.GetID()):
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    chart.SetTitle("Dice per vertebra")
    chart.SetXAxisTitle("Vertebra")
    chart.SetYAxisTitle("Dice")
    chart.SetYAxisRange(0.0, 1.0)
    return chart


__all__ = [
    "SUMMARY_ROWS",
    "VERTEBRA_COLUMNS",
    "MetricsResult",
    "SpineSegMetricsLogic",
    "centroids_from_node",
    "dice_chart",
    "fill_summary_table",
    "fill_vertebra_table",
    "label_image_from_node",
    "table_column",
]
