"""SpineSeg: vertebra localisation, identification and segmentation in 3D Slicer.

The shell Slicer loads: module description, parameter node, the widget's life cycle and the test class.
The panel's behaviour is in SpineSegGui (injected: the widgets, the logic, the installer), the logic in
SpineSegSlicerLib (Qt-free, works on MRML nodes) and the computation in SpineSegLib, which runs in a
PythonSlicer subprocess.
"""

import importlib
from typing import Annotated

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
from SpineSegGui import models_box, panel, selftest
from SpineSegSlicerLib import (
    dependencies,
    editing,
    logic,
    measurements_table,
    models,
    nodes,
    process,
    results,
    terminology,
)

_LIB_MODULES = (
    nodes,
    terminology,
    process,
    results,
    measurements_table,
    editing,
    dependencies,
    models,
    logic,
    models_box,
    panel,
    selftest,
)


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
    """Slicer's life cycle of the panel (scene events, parameter node); the panel itself is SpineSegGui.panel."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.panel = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        installer = dependencies.Installer(slicer, confirm=self._confirm, log=self.addLog)
        self.logic = SpineSegLogic(installer=installer)
        self.panel = panel.SpineSegPanel(self.ui, self.logic, parameters=lambda: self._parameterNode)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self.panel is not None:
            self.panel.close()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.panel.checkCanApply)

    def onReload(self) -> None:
        for module in _LIB_MODULES:
            importlib.reload(module)
        ScriptedLoadableModuleWidget.onReload(self)

    def onSceneStartClose(self, caller, event) -> None:
        self.panel.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.panel.checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.panel.checkCanApply)
            self.panel.parameterNodeChanged()

    def addLog(self, text) -> None:
        self.panel.addLog(text)

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


class SpineSegTest(selftest.WorkflowTestMixin, ScriptedLoadableModuleTest):
    """Runs the whole workflow on a synthetic lumbar CT with the installed models ("Reload and Test")."""

    logicClass = SpineSegLogic
