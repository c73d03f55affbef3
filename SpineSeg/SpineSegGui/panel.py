"""The SpineSeg panel's controller: runs, cancel, review and heatmaps, between the widgets and the logic.

The module widget owns the Slicer life cycle (scene events, the parameter node); this class gets the
widgets (``ui``), the logic and a way to read the current parameter node, so it is built and tested
without the module file.
"""

import logging

import qt
import slicer
from slicer.i18n import tr as _
from SpineSegSlicerLib import logic, results

from SpineSegLib import labels

from .models_box import ModelsBox


class SpineSegPanel:
    """Wires the panel's buttons to ``logic`` (a SpineSegSlicerLib.logic.SpineSegLogic).

    Args:
        ui: the widgets of Resources/UI/SpineSeg.ui (``slicer.util.childWidgetVariables``).
        logic: runs the pipeline, updates segmentations, shifts labels.
        parameters: returns the module's current parameter node (None while the scene closes).
    """

    def __init__(self, ui, logic, parameters) -> None:
        self.ui, self.logic, self._parameters = ui, logic, parameters
        self._run = None
        self.models = ModelsBox(ui, self.addLog)
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onTimer)
        for text, device in ((_("Automatic (GPU if available)"), "auto"), (_("CPU"), "cpu"), (_("GPU (CUDA)"), "cuda")):
            self.ui.deviceComboBox.addItem(text, device)
        self.models.fillPipelines()
        self._fillHeatmapChannels()
        self._showStageButtons()
        self._connect()

    @property
    def _parameterNode(self):
        return self._parameters()

    def _connect(self) -> None:
        ui = self.ui
        ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        ui.runSpineButton.connect("clicked(bool)", lambda: self._startRun(self._actions().run_first))
        ui.runVertebraeButton.connect("clicked(bool)", lambda: self._startRun(self._actions().run_points))
        ui.runSegmentationButton.connect("clicked(bool)", lambda: self._startRun(self._actions().segment_from_points))
        ui.updateSegmentationButton.connect("clicked(bool)", self.onUpdateSegmentation)
        ui.shiftUpButton.connect("clicked(bool)", lambda: self.onShiftLabels(-1))
        ui.shiftDownButton.connect("clicked(bool)", lambda: self.onShiftLabels(+1))
        ui.heatmapChannelComboBox.connect("currentIndexChanged(int)", self.onHeatmapChannelChanged)
        ui.heatmapOpacitySliderWidget.connect("valueChanged(double)", self.onHeatmapOpacityChanged)
        ui.pipelineComboBox.connect("currentIndexChanged(int)", self.onPipelineChanged)
        ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        ui.downloadModelsButton.connect("clicked(bool)", self.models.onDownload)
        ui.installModelsButton.connect("clicked(bool)", self.models.onInstall)
        ui.openModelsFolderButton.connect("clicked(bool)", self.models.onOpenFolder)

    # Life cycle (called by the module widget) ---------------------------------------------------

    def parameterNodeChanged(self) -> None:
        """Show the new parameter node's pipeline and device."""
        if self._parameterNode:
            self._selectComboData(self.ui.pipelineComboBox, self._parameterNode.pipeline)
            self._selectComboData(self.ui.deviceComboBox, self._parameterNode.device)
            self._fillHeatmapChannels()
            self.checkCanApply()

    def cancel(self) -> None:
        if self._run is not None:
            self._run.cancel()

    def close(self) -> None:
        self.cancel()
        self._timer.stop()

    def checkCanApply(self, caller=None, event=None) -> None:
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
        pipeline = self.models.selectedPipeline()
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

    def _runOptions(self) -> dict:
        """What every run started from the panel shares: pipeline and device, in the background, with feedback."""
        return dict(
            pipeline=self._parameterNode.pipeline,
            device=self._parameterNode.device,
            waitForCompletion=False,
            interactive=True,
            progressCallback=self.onProgress,
            logCallback=self.addLog,
        )

    def _startRun(self, stages) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start SpineSeg."), waitCursor=True):
            self.ui.progressBar.value = 0
            self._run = self.logic.process(self._parameterNode.inputVolume, stages=stages, **self._runOptions())
            self._timer.start()
        self.checkCanApply()

    def onUpdateSegmentation(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to update the segmentation."), waitCursor=True):
            started = self.logic.update_segmentation(
                self._parameterNode.inputVolume,
                overwriteEdited=self._parameterNode.overwriteEdited,
                **self._runOptions(),
            )
            if isinstance(started, logic.PipelineRun):
                self._run = started
                self._timer.start()
            else:
                self._showOutcome(started)
        self.checkCanApply()

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
            self.checkCanApply()

    def onProgress(self, fraction, message) -> None:
        self.ui.progressBar.value = round(100 * fraction)
        self.ui.statusLabel.text = message

    def _showOutcome(self, outcome) -> None:
        for message in outcome.messages:
            self.addLog(message)
        if outcome.merge is not None:
            self.addLog(_("Segmentation update: {report}").format(report=outcome.merge.describe()))
        if outcome.heatmap is not None:
            results.show_overlay(self._parameterNode.inputVolume, outcome.heatmap, self._parameterNode.heatmapOpacity)
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

    def _heatmapLabels(self) -> list[int]:
        """The channels of the volume's heatmap node where it has one (what the run produced), else all."""
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        heat = results.find_output(volume, results.ROLE_HEATMAP) if volume is not None else None
        channels = results.channels_of(heat) if heat is not None else None
        return list(channels.labels) if channels is not None else list(labels.HEATMAP_LABELS)

    def _fillHeatmapChannels(self) -> None:
        combo = self.ui.heatmapChannelComboBox
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(_("All vertebrae (maximum)"), 0)
        for label in labels.anatomical_order(self._heatmapLabels()):
            combo.addItem(labels.name_of(label), label)
        combo.blockSignals(False)

    # Settings ---------------------------------------------------------------------------------

    def onPipelineChanged(self, index) -> None:
        if self._parameterNode:
            self._parameterNode.pipeline = self.ui.pipelineComboBox.itemData(index) or logic.DEFAULT_PIPELINE
        self.models.updateStatus()
        self._showStageButtons()

    def onDeviceChanged(self, index) -> None:
        if self._parameterNode:
            self._parameterNode.device = self.ui.deviceComboBox.itemData(index) or "auto"

    @staticmethod
    def _selectComboData(combo, data) -> None:
        index = combo.findData(data)
        if index >= 0:
            combo.setCurrentIndex(index)

    def addLog(self, text) -> None:
        logging.info(text)
        self.ui.logTextEdit.appendPlainText(text)
