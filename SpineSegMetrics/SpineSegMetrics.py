"""SpineSegMetrics: per-vertebra Dice, surface distances, point error and identification against a ground truth.

This file only wires the GUI; the logic is SpineSegMetricsLib (Qt-free) and the numbers come from
SpineSegLib.metrics.evaluate, the same function as ``spineseg evaluate``.
"""

import importlib
import logging
from typing import Annotated

import qt
import slicer
import vtk
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SpineSegMetricsLib import logic

#
# SpineSegMetrics
#


class SpineSegMetrics(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SpineSeg Metrics")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineSeg team"]
        self.parent.helpText = _(
            "Compares a vertebra segmentation (and its vertebra points) with a ground truth: Dice, false "
            "negative/positive Dice, Hausdorff distances, surface distance, point error and identification per "
            "vertebra, and the means, identification rate and panoptic quality."
        )
        self.parent.acknowledgementText = _("Metrics as defined by the VerSe challenge (Sekuboyina et al. 2021).")


#
# Parameter node
#


@parameterNodeWrapper
class SpineSegMetricsParameterNode:
    """prediction/groundTruth: segmentation or label map; *Points: optional point lists;
    idThreshold: identification distance (mm); resamplePrediction: resample onto the ground-truth grid."""

    prediction: vtkMRMLSegmentationNode | vtkMRMLLabelMapVolumeNode | None  # None: the wrapper needs it in unions
    predictionPoints: vtkMRMLMarkupsFiducialNode
    groundTruth: vtkMRMLSegmentationNode | vtkMRMLLabelMapVolumeNode | None
    groundTruthPoints: vtkMRMLMarkupsFiducialNode
    idThreshold: Annotated[float, WithinRange(1.0, 100.0)] = 20.0
    resamplePrediction: bool = False
    vertebraTable: vtkMRMLTableNode
    summaryTable: vtkMRMLTableNode


#
# SpineSegMetricsWidget
#


class SpineSegMetricsWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._evaluation = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineSegMetrics.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SpineSegMetricsLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.exportCsvButton.connect("clicked(bool)", self.onExportCsv)
        self.ui.groundTruthFilePathLineEdit.connect("currentPathChanged(QString)", self._checkCanApply)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onReload(self) -> None:
        importlib.reload(logic)
        ScriptedLoadableModuleWidget.onReload(self)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        hasGroundTruth = bool(p and (p.groundTruth or self.ui.groundTruthFilePathLineEdit.currentPath))
        self.ui.applyButton.enabled = bool(p and p.prediction and hasGroundTruth)
        self.ui.exportCsvButton.enabled = self._evaluation is not None

    def onApplyButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the metrics."), waitCursor=True):
            gtFile = self.ui.groundTruthFilePathLineEdit.currentPath if not p.groundTruth else None
            gtPointsFile = (
                self.ui.groundTruthPointsFilePathLineEdit.currentPath if not p.groundTruthPoints else None
            ) or None
            result = self.logic.process(
                p.prediction,
                vertebraTable=p.vertebraTable,
                summaryTable=p.summaryTable,
                groundTruth=p.groundTruth,
                predictionPoints=p.predictionPoints,
                groundTruthPoints=p.groundTruthPoints,
                groundTruthFile=gtFile or None,
                groundTruthPointsFile=gtPointsFile,
                resamplePrediction=p.resamplePrediction,
                idThresholdMm=p.idThreshold,
            )
            p.vertebraTable, p.summaryTable = result.vertebra_table, result.summary_table
            self._evaluation = result.evaluation
            self.ui.vertebraTableView.setMRMLTableNode(result.vertebra_table)
            self.ui.summaryTableView.setMRMLTableNode(result.summary_table)
            s = result.evaluation.summary
            self.ui.statusLabel.text = _("Dice mean {dice:.3f}, identification rate {rate:.0%}").format(
                dice=s.dice_mean, rate=s.id_rate
            )
            if slicer.util.mainWindow() is not None:
                slicer.modules.plots.logic().ShowChartInLayout(result.chart)
        self._checkCanApply()

    def onExportCsv(self) -> None:
        path = qt.QFileDialog.getSaveFileName(None, _("Export metrics"), "metrics.csv", "CSV (*.csv)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to export the metrics."), waitCursor=True):
            self.logic.export_csv(self._evaluation, path)
            logging.info(f"SpineSeg metrics written to {path}")


#
# SpineSegMetricsLogic
#


class SpineSegMetricsLogic(ScriptedLoadableModuleLogic, logic.SpineSegMetricsLogic):
    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SpineSegMetricsParameterNode(super().getParameterNode())


#
# SpineSegMetricsTest
#


class SpineSegMetricsTest(ScriptedLoadableModuleTest):
    """A perfect prediction has Dice 1; removing one vertebra's segment makes it a miss."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SpineSegMetrics_perfect_and_missed()

    def test_SpineSegMetrics_perfect_and_missed(self):
        import numpy as np

        ijkToRas = np.diag([-2.0, -2.0, 2.0, 1.0])
        labels = np.zeros((60, 24, 24), np.uint8)
        for n, label in enumerate((20, 21, 22)):
            labels[8 + 16 * n : 18 + 16 * n, 6:18, 6:18] = label
        gt = slicer.util.addVolumeFromArray(labels, ijkToRas, "gt", "vtkMRMLLabelMapVolumeNode")
        pred = slicer.util.addVolumeFromArray(labels, ijkToRas, "pred", "vtkMRMLLabelMapVolumeNode")
        metrics = SpineSegMetricsLogic()
        result = metrics.process(pred, groundTruth=gt)
        self.assertEqual(logic.table_column(result.vertebra_table, "Vertebra"), ["L1", "L2", "L3"])
        self.assertTrue(np.allclose(logic.table_column(result.vertebra_table, "Dice"), 1.0))
        missed = labels.copy()
        missed[missed == 21] = 0
        slicer.util.updateVolumeFromArray(pred, missed)
        result = metrics.process(pred, groundTruth=gt)
        dice = dict(
            zip(
                logic.table_column(result.vertebra_table, "Vertebra"), logic.table_column(result.vertebra_table, "Dice")
            )
        )
        self.assertEqual(dice["L2"], 0.0)
        self.assertEqual(result.evaluation.summary.n_missed, 1)
        self.delayDisplay("SpineSegMetrics test passed")
