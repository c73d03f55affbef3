"""SpineSeg: vertebra localisation, identification and segmentation in 3D Slicer.

This file only wires the GUI; the logic is in SpineSegSlicerLib (Qt-free, works on MRML nodes) and
the computation in SpineSegLib, which runs in a PythonSlicer subprocess.
"""

import importlib
import logging
import os
from typing import Annotated

import qt
import slicer
import SpineSegSlicerLib  # noqa: F401  (puts SpineSegLib on sys.path)
import vtk
from slicer import vtkMRMLScalarVolumeNode
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
from SpineSegSlicerLib import dependencies, editing, logic, models, nodes, process, results, terminology

from SpineSegLib import labels

_LIB_MODULES = (nodes, terminology, process, results, editing, dependencies, models, logic)


#
# SpineSeg
#


class SpineSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SpineSeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineSeg team"]
        self.parent.helpText = _(
            "Finds the spine, identifies every vertebra (C1 to L5, T13 and L6 when present) and segments "
            "each one, in CT and MR. Vertebra points and segments can be corrected and updated. "
            'See the <a href="https://github.com/spineseg/SlicerSpineSeg/blob/main/docs/SLICER.md">user guide</a>.'
        )
        self.parent.acknowledgementText = _(
            "Method: Payer et al., Coarse to fine vertebrae localization and segmentation with "
            "SpatialConfiguration-Net and U-Net (VISAPP 2020), re-implemented."
        )


#
# Parameter node
#


@parameterNodeWrapper
class SpineSegParameterNode:
    """inputVolume: the volume to process. pipeline/device: how to run. heatmapOpacity: overlay opacity.
    overwriteEdited: let "Update segmentation" replace segments edited by hand."""

    inputVolume: vtkMRMLScalarVolumeNode
    pipeline: str = logic.DEFAULT_PIPELINE
    device: str = "auto"
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    overwriteEdited: bool = False


#
# SpineSegWidget
#


class SpineSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        installer = dependencies.Installer(slicer, confirm=self._confirm, log=self.addLog)
        self.logic = SpineSegLogic(installer=installer)

        for text, device in ((_("Automatic (GPU if available)"), "auto"), (_("CPU"), "cpu"), (_("GPU (CUDA)"), "cuda")):
            self.ui.deviceComboBox.addItem(text, device)
        self._fillPipelines()
        self._fillHeatmapChannels()
        self._showStageButtons()

        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.runSpineButton.connect("clicked(bool)", lambda: self._startRun(self._actions().run_first))
        self.ui.runVertebraeButton.connect("clicked(bool)", lambda: self._startRun(self._actions().run_points))
        self.ui.runSegmentationButton.connect(
            "clicked(bool)", lambda: self._startRun(self._actions().segment_from_points)
        )
        self.ui.updateSegmentationButton.connect("clicked(bool)", self.onUpdateSegmentation)
        self.ui.shiftUpButton.connect("clicked(bool)", lambda: self.onShiftLabels(-1))
        self.ui.shiftDownButton.connect("clicked(bool)", lambda: self.onShiftLabels(+1))
        self.ui.heatmapChannelComboBox.connect("currentIndexChanged(int)", self.onHeatmapChannelChanged)
        self.ui.heatmapOpacitySliderWidget.connect("valueChanged(double)", self.onHeatmapOpacityChanged)
        self.ui.pipelineComboBox.connect("currentIndexChanged(int)", self.onPipelineChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.downloadModelsButton.connect("clicked(bool)", self.onDownloadModels)
        self.ui.installModelsButton.connect("clicked(bool)", self.onInstallModels)
        self.ui.openModelsFolderButton.connect("clicked(bool)", self.onOpenModelsFolder)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._run is not None:
            self._run.cancel()
        if self._timer is not None:
            self._timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onReload(self) -> None:
        for module in _LIB_MODULES:
            importlib.reload(module)
        ScriptedLoadableModuleWidget.onReload(self)

    def onSceneStartClose(self, caller, event) -> None:
        if self._run is not None:
            self._run.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # Parameter node ---------------------------------------------------------------------------

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._selectComboData(self.ui.pipelineComboBox, self._parameterNode.pipeline)
            self._selectComboData(self.ui.deviceComboBox, self._parameterNode.device)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        running = self._run is not None
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        self.ui.applyButton.enabled = running or volume is not None
        self.ui.applyButton.text = _("Cancel") if running else _("Run all stages")
        hasPoints = volume is not None and results.find_output(volume, results.ROLE_CENTROIDS) is not None
        for button in (self.ui.runSpineButton, self.ui.runVertebraeButton):
            button.enabled = not running and volume is not None
        for button in (
            self.ui.runSegmentationButton,
            self.ui.updateSegmentationButton,
            self.ui.shiftUpButton,
            self.ui.shiftDownButton,
        ):
            button.enabled = not running and hasPoints

    # Running ----------------------------------------------------------------------------------

    def onApplyButton(self) -> None:
        if self._run is not None:
            self.addLog(_("Cancelling..."))
            self._run.cancel()
            return
        self._startRun(None)

    def _actions(self) -> logic.StageActions:
        """The buttons the selected pipeline's method supports (SpineSegSlicerLib.logic.stage_actions)."""
        pipeline = self.ui.pipelineComboBox.currentData or logic.DEFAULT_PIPELINE
        try:
            return logic.stage_actions(self.logic.method_of(pipeline))
        except Exception as exc:  # an unreadable manifest: the default method's buttons, the run reports it
            logging.warning(f"SpineSeg: method of {pipeline} unknown: {exc}")
            return logic.stage_actions(logic.METHOD)

    def _showStageButtons(self) -> None:
        """Hide the buttons the selected method does not support (not left to fail)."""
        actions = self._actions()
        self.ui.runSpineButton.visible = actions.run_first is not None
        self.ui.runVertebraeButton.visible = actions.run_points is not None
        self.ui.runSegmentationButton.visible = actions.segment_from_points is not None
        self.ui.updateSegmentationButton.visible = actions.resegment_edited
        self.ui.heatmapChannelComboBox.visible = actions.heatmaps

    def _startRun(self, stages) -> None:
        volume = self._parameterNode.inputVolume
        with slicer.util.tryWithErrorDisplay(_("Failed to start SpineSeg."), waitCursor=True):
            self.ui.progressBar.value = 0
            self._run = self.logic.process(
                volume,
                stages=stages,
                pipeline=self._parameterNode.pipeline,
                device=self._parameterNode.device,
                waitForCompletion=False,
                interactive=True,
                progressCallback=self.onProgress,
                logCallback=self.addLog,
            )
            self._timer.start()
        self._checkCanApply()

    def onUpdateSegmentation(self) -> None:
        volume = self._parameterNode.inputVolume
        with slicer.util.tryWithErrorDisplay(_("Failed to update the segmentation."), waitCursor=True):
            started = self.logic.update_segmentation(
                volume,
                pipeline=self._parameterNode.pipeline,
                device=self._parameterNode.device,
                overwriteEdited=self._parameterNode.overwriteEdited,
                waitForCompletion=False,
                interactive=True,
                progressCallback=self.onProgress,
                logCallback=self.addLog,
            )
            if isinstance(started, logic.PipelineRun):
                self._run = started
                self._timer.start()
            else:
                self._showOutcome(started)
        self._checkCanApply()

    def onTimer(self) -> None:
        if self._run is None or not self._run.poll():
            return
        self._timer.stop()
        run, self._run = self._run, None
        try:
            outcome = self.logic.finish(run)
            self.ui.progressBar.value = 100
            self._showOutcome(outcome)
        except logic.CancelledRun as exc:
            self.ui.statusLabel.text = _("Cancelled; nothing was changed.")
            self.addLog(str(exc))
        except Exception as exc:
            logging.exception("SpineSeg run failed")
            self.ui.statusLabel.text = _("Failed.")
            slicer.util.errorDisplay(_("SpineSeg failed: {error}").format(error=str(exc)))
        finally:
            self._checkCanApply()

    def onProgress(self, fraction, message) -> None:
        self.ui.progressBar.value = round(100 * fraction)
        self.ui.statusLabel.text = message

    def _showOutcome(self, outcome) -> None:
        volume = self._parameterNode.inputVolume
        for message in outcome.messages:
            self.addLog(message)
        if outcome.merge is not None:
            self.addLog(_("Segmentation update: {report}").format(report=outcome.merge.describe()))
        if outcome.heatmap is not None:
            results.show_overlay(volume, outcome.heatmap, self._parameterNode.heatmapOpacity)
        if outcome.segmentation is not None:
            outcome.segmentation.SetDisplayVisibility(True)
        found = ", ".join(outcome.vertebrae) or _("none")
        self.ui.statusLabel.text = _("Vertebrae: {found}").format(found=found)
        self._showChainProblems(outcome.chain_problems)
        self._fillHeatmapChannels()

    def _showChainProblems(self, problems) -> None:
        if problems:
            text = _("Check the vertebra chain: {problems}").format(problems="; ".join(problems))
            self.ui.chainStatusLabel.text = text
            self.addLog(text)
        else:
            self.ui.chainStatusLabel.text = _("Vertebra spacing and order are plausible.")

    # Review -----------------------------------------------------------------------------------

    def onShiftLabels(self, steps) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot shift the labels."), waitCursor=True):
            report = self.logic.shift_labels(self._parameterNode.inputVolume, steps)
            self.addLog(_("Labels shifted: {report}").format(report=report.describe()))
            self._showChainProblems(report.problems)

    def onHeatmapChannelChanged(self, index) -> None:
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        if volume is None or results.find_output(volume, results.ROLE_HEATMAP) is None:
            return
        label = self.ui.heatmapChannelComboBox.itemData(index)
        with slicer.util.tryWithErrorDisplay(_("Cannot show this heatmap."), waitCursor=True):
            self.logic.show_heatmap(volume, int(label) if label else None)

    def onHeatmapOpacityChanged(self, value) -> None:
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        heat = results.find_output(volume, results.ROLE_HEATMAP) if volume else None
        if heat is not None:
            results.show_overlay(volume, heat, value)

    def _fillHeatmapChannels(self) -> None:
        combo = self.ui.heatmapChannelComboBox
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(_("All vertebrae (maximum)"), 0)
        for label in labels.anatomical_order(labels.HEATMAP_LABELS):
            combo.addItem(labels.name_of(label), label)
        combo.blockSignals(False)

    # Settings ---------------------------------------------------------------------------------

    def _fillPipelines(self) -> None:
        combo = self.ui.pipelineComboBox
        combo.clear()
        try:
            manager = models.ModelManager()
            for name, title in manager.pipelines():
                combo.addItem(title, name)
        except Exception as exc:  # no manifest yet (models not installed): keep the default entry
            logging.warning(f"SpineSeg model manifest not available: {exc}")
            combo.addItem(logic.DEFAULT_PIPELINE, logic.DEFAULT_PIPELINE)
        self._updateModelStatus()

    def onPipelineChanged(self, index) -> None:
        if self._parameterNode:
            self._parameterNode.pipeline = self.ui.pipelineComboBox.itemData(index) or logic.DEFAULT_PIPELINE
        self._updateModelStatus()
        self._showStageButtons()

    def onDeviceChanged(self, index) -> None:
        if self._parameterNode:
            self._parameterNode.device = self.ui.deviceComboBox.itemData(index) or "auto"

    @staticmethod
    def _selectComboData(combo, data) -> None:
        index = combo.findData(data)
        if index >= 0:
            combo.setCurrentIndex(index)

    def _updateModelStatus(self) -> None:
        pipeline = self.ui.pipelineComboBox.currentData or logic.DEFAULT_PIPELINE
        try:
            states = models.ModelManager().status(pipeline, verify=False)
            self.ui.modelsStatusLabel.text = "\n".join(s.describe() for s in states)
            self.ui.downloadModelsButton.enabled = any(not s.ready and s.url for s in states)
        except Exception as exc:
            self.ui.modelsStatusLabel.text = _("Models not available: {error}").format(error=str(exc))
            self.ui.downloadModelsButton.enabled = False

    def onDownloadModels(self) -> None:
        pipeline = self.ui.pipelineComboBox.currentData or logic.DEFAULT_PIPELINE
        progressDialog = slicer.util.createProgressDialog(labelText=_("Downloading models..."), maximum=100)
        try:
            with slicer.util.tryWithErrorDisplay(_("Model download failed."), waitCursor=True):

                def progress(fraction, message):
                    progressDialog.value = int(100 * fraction)
                    progressDialog.labelText = message
                    slicer.app.processEvents()

                models.ModelManager().download(pipeline, progress, cancel=lambda: progressDialog.wasCanceled)
        finally:
            progressDialog.close()
            self._updateModelStatus()

    def onInstallModels(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(None, _("Folder with SpineSeg model files"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Model installation failed."), waitCursor=True):
            installed = models.ModelManager().install_from_folder(folder)
            self.addLog(_("Installed models: {models}").format(models=", ".join(s.describe() for s in installed)))
        self._updateModelStatus()

    def onOpenModelsFolder(self) -> None:
        folder = models.ModelManager().cache_dir
        os.makedirs(folder, exist_ok=True)
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(folder)))

    # Helpers ----------------------------------------------------------------------------------

    def addLog(self, text) -> None:
        logging.info(text)
        self.ui.logTextEdit.appendPlainText(text)

    def _confirm(self, message) -> bool:
        return slicer.util.confirmOkCancelDisplay(message, windowTitle=_("SpineSeg"))


#
# SpineSegLogic
#


class SpineSegLogic(ScriptedLoadableModuleLogic, logic.SpineSegLogic):
    """The module's logic: the parameter node plus SpineSegSlicerLib.logic.SpineSegLogic (usable without GUI)::

    outcome = SpineSegLogic().process(volumeNode)   # blocks, never opens a dialog
    """

    def __init__(self, **kwargs) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        logic.SpineSegLogic.__init__(self, **kwargs)

    def getParameterNode(self):
        return SpineSegParameterNode(super().getParameterNode())


#
# SpineSegTest
#


class SpineSegTest(ScriptedLoadableModuleTest):
    """Runs the whole workflow on a synthetic lumbar CT with the installed models ("Reload and Test")."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SpineSeg_workflow()

    def modelsReady(self):
        """(ready, reason): whether the default pipeline's models are installed."""
        try:
            return models.ModelManager().ready(
                logic.DEFAULT_PIPELINE
            ), "the default pipeline's models are not installed"
        except Exception as exc:
            return False, str(exc)

    def loadTestVolume(self):
        """A synthetic lumbar CT from SpineSegLib's phantom generator (None when it is not available)."""
        try:
            from SpineSegLib.phantom import PhantomConfig, generate_phantom
        except ImportError:
            return None
        phantom = generate_phantom(1, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.0)))
        return nodes.volume_from_sitk(slicer.mrmlScene, phantom.image, "phantom")

    def test_SpineSeg_workflow(self):
        import numpy as np

        from SpineSegLib import labels as L

        ready, why = self.modelsReady()
        if not ready:
            self.delayDisplay(f"SpineSeg workflow test skipped: {why}")
            return
        self.delayDisplay("Loading a synthetic lumbar CT")
        volume = self.loadTestVolume()
        if volume is None:
            self.delayDisplay("SpineSeg workflow test skipped: SpineSegLib.phantom is not available")
            return

        self.delayDisplay("Running all stages")
        core = SpineSegLogic()
        outcome = core.process(volume)
        segmentation, markups, heat = outcome.segmentation, outcome.centroids, outcome.heatmap
        self.assertIsNotNone(heat)
        self.assertIsNotNone(markups)
        self.assertGreater(markups.GetNumberOfControlPoints(), 1)
        _, problems = nodes.centroids_from_markups(markups)
        self.assertEqual(problems, [])

        self.delayDisplay("Checking the segments")
        self.assertIsNotNone(segmentation)
        self.assertIs(nodes.reference_volume(segmentation), volume)
        names = nodes.segment_names(segmentation)
        self.assertGreater(len(names), 0)
        pointLabels = [markups.GetNthControlPointLabel(i) for i in range(markups.GetNumberOfControlPoints())]
        self.assertTrue(set(names) <= set(pointLabels), "every segment belongs to a vertebra point")
        for name in names:
            label = L.id_of(name)
            segment = segmentation.GetSegmentation().GetSegment(nodes.segment_id_by_name(segmentation, name))
            self.assertEqual(segment.GetTerminology(), terminology.terminology_entry(label))
            self.assertTrue(np.allclose(segment.GetColor(), L.get(label).color_float, atol=1e-6))

        self.delayDisplay("Moving one point and updating the segmentation")
        moved = markups.GetNthControlPointLabel(0)
        before = {n: nodes.segment_mask(segmentation, nodes.segment_id_by_name(segmentation, n), volume) for n in names}
        p = [0.0, 0.0, 0.0]
        markups.GetNthControlPointPosition(0, p)
        markups.SetNthControlPointPosition(0, p[0] + 3.0, p[1], p[2])
        update = core.update_segmentation(volume)
        self.assertEqual(update.edit.moved, [L.id_of(moved)])
        for name, mask in before.items():
            if name != moved:
                after = nodes.segment_mask(segmentation, nodes.segment_id_by_name(segmentation, name), volume)
                self.assertTrue(np.array_equal(mask, after), f"segment {name} changed")

        self.delayDisplay("Shifting labels one way and back")
        pointNames = [markups.GetNthControlPointLabel(i) for i in range(markups.GetNumberOfControlPoints())]
        step = -1 if pointNames[-1] == "L6" else +1  # L6 cannot move further down
        core.shift_labels(volume, step)
        self.assertNotEqual(
            pointNames, [markups.GetNthControlPointLabel(i) for i in range(markups.GetNumberOfControlPoints())]
        )
        core.shift_labels(volume, -step)
        self.assertEqual(
            pointNames, [markups.GetNthControlPointLabel(i) for i in range(markups.GetNumberOfControlPoints())]
        )
        self.assertEqual(nodes.segment_names(segmentation), names)
        self.delayDisplay("SpineSeg workflow test passed")
