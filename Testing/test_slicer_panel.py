"""The SpineSeg panel's controller (SpineSegGui.panel) with the real module logic and stand-in widgets.

Qt is the external edge here: the widgets are small stand-ins that keep what the controller sets
(enabled, visible, text, combo items); the logic, the manifest, the method registry and the parameter
node are the real ones (Slicer core libraries, tiny models with a second pipeline, ct-lumbar).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import slicer_headless as H


class Combo:
    """What the controller uses of a QComboBox."""

    def __init__(self):
        self.items: list[tuple[str, object]] = []
        self.currentIndex = -1
        self.visible = True

    def addItem(self, text, data=None):
        self.items.append((text, data))
        self.currentIndex = max(self.currentIndex, 0)

    def clear(self):
        self.items, self.currentIndex = [], -1

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self.items) if d == data), -1)

    def setCurrentIndex(self, index):
        self.currentIndex = index

    def itemData(self, index):
        return self.items[index][1]

    @property
    def currentData(self):
        return self.items[self.currentIndex][1] if self.currentIndex >= 0 else None

    def blockSignals(self, blocked):
        return False

    def connect(self, signal, slot):
        pass


class Ui:
    """Widgets by name, made on first use: combos for ``*ComboBox``, plain attribute holders otherwise."""

    def __getattr__(self, name):
        widget = Combo() if name.endswith("ComboBox") else SimpleNamespace(connect=lambda *a: None, text="")
        setattr(self, name, widget)
        return widget


@pytest.fixture
def panel(tmp_path, monkeypatch):
    pytest.importorskip("slicer", reason="the Slicer core libraries (pip install slicer-core vtk==9.6.2) are needed")
    H.init()
    H.install_stubs()
    from slicer_fixtures import write_tiny_resources

    monkeypatch.setenv("SPINESEG_RESOURCES", str(write_tiny_resources(tmp_path, lumbar=True)))
    from SpineSegGui.panel import SpineSegPanel

    import SpineSeg

    logic = SpineSeg.SpineSegLogic()
    node = logic.getParameterNode()
    node.pipeline, node.device = "ct-full-spine", "auto"
    ui = Ui()
    yield SpineSegPanel(ui, logic, parameters=lambda: node), ui, node
    import slicer

    slicer.mrmlScene.RemoveNode(node.parameterNode)  # a singleton left behind loses its attributes on Clear()


def test_the_pipeline_and_device_lists_come_from_the_manifest_and_the_parameter_node(panel):
    p, ui, node = panel
    assert [d for _, d in ui.pipelineComboBox.items] == ["ct-full-spine", "ct-lumbar"]
    assert [d for _, d in ui.deviceComboBox.items] == ["auto", "cpu", "cuda"]
    from SpineSegLib import labels as L

    channels = [d for _, d in ui.heatmapChannelComboBox.items]
    assert channels[0] == 0 and sorted(channels[1:]) == sorted(L.HEATMAP_LABELS)
    node.pipeline, node.device = "ct-lumbar", "cpu"
    p.parameterNodeChanged()
    assert ui.pipelineComboBox.currentData == "ct-lumbar" and ui.deviceComboBox.currentData == "cpu"


def test_stage_buttons_follow_the_selected_pipelines_method(panel):
    p, ui, node = panel
    assert ui.runVertebraeButton.visible and ui.updateSegmentationButton.visible and ui.heatmapChannelComboBox.visible
    ui.pipelineComboBox.setCurrentIndex(1)
    p.onPipelineChanged(1)
    assert node.pipeline == "ct-lumbar"
    # Lu et al.: no vertebra heatmaps, no segmentation from edited points
    assert not ui.heatmapChannelComboBox.visible and not ui.updateSegmentationButton.visible
    assert not ui.runSegmentationButton.visible
    ui.pipelineComboBox.setCurrentIndex(0)
    p.onPipelineChanged(0)
    assert ui.heatmapChannelComboBox.visible and ui.updateSegmentationButton.visible


def test_buttons_are_enabled_by_what_the_scene_holds(panel):
    import slicer
    from SpineSegSlicerLib import nodes

    p, ui, node = panel
    p.checkCanApply()
    assert not ui.applyButton.enabled and not ui.runSpineButton.enabled and not ui.runSegmentationButton.enabled
    image = sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16))
    node.inputVolume = nodes.volume_from_sitk(slicer.mrmlScene, image, "ct")
    p.checkCanApply()
    assert ui.applyButton.enabled and ui.applyButton.text == "Run all stages"
    assert ui.runSpineButton.enabled and ui.runVertebraeButton.enabled
    # no vertebra points yet: nothing to segment from, update or shift
    assert not any(
        b.enabled for b in (ui.runSegmentationButton, ui.updateSegmentationButton, ui.shiftUpButton, ui.shiftDownButton)
    )


def test_the_heatmap_channel_list_is_what_the_volumes_heatmap_holds(panel):
    import slicer
    from SpineSegSlicerLib import nodes, results

    from SpineSegLib import labels as L

    p, ui, node = panel
    image = sitk.GetImageFromArray(np.zeros((6, 7, 8), np.int16))
    node.inputVolume = nodes.volume_from_sitk(slicer.mrmlScene, image, "ct2")
    heat = sitk.GetImageFromArray(np.random.default_rng(0).random((6, 7, 8, 3)).astype(np.float32), isVector=True)
    channels = results.HeatmapChannels.from_image(heat, [22, 20, 21])
    results.import_heatmaps(node.inputVolume, channels)
    p.parameterNodeChanged()
    assert [d for _, d in ui.heatmapChannelComboBox.items] == [0, 20, 21, 22]
    assert [t for t, _ in ui.heatmapChannelComboBox.items][1:] == [L.name_of(v) for v in (20, 21, 22)]
