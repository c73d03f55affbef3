"""Static checks of the Slicer module files and .ui files, the module classes under import stubs, and the
SpineSeg self-test ("Reload and Test") run headless on the synthetic CT with the tiny models."""

from __future__ import annotations

import ast
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import slicer_headless as H

REPO = H.REPO_ROOT
MODULES = {
    "SpineSeg": (REPO / "SpineSeg" / "SpineSeg.py", REPO / "SpineSeg" / "Resources" / "UI" / "SpineSeg.ui"),
    "SpineSegMetrics": (
        REPO / "SpineSegMetrics" / "SpineSegMetrics.py",
        REPO / "SpineSegMetrics" / "Resources" / "UI" / "SpineSegMetrics.ui",
    ),
}
LIBRARIES = (REPO / "SpineSeg" / "SpineSegSlicerLib", REPO / "SpineSegMetrics" / "SpineSegMetricsLib")
#: The Qt side of a module besides its module file (the panel's controller, the self-test).
GUI_PACKAGES = {"SpineSeg": REPO / "SpineSeg" / "SpineSegGui", "SpineSegMetrics": None}


def gui_sources(module: str) -> list[Path]:
    """The module file and the files of its Qt package: where widgets, tr() and the parameter node are used."""
    package = GUI_PACKAGES[module]
    return [MODULES[module][0], *(sorted(package.glob("*.py")) if package else [])]


def gui_text(module: str) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in gui_sources(module))


def ui_widgets(path: Path) -> dict[str, str]:
    """name -> class of every widget in a Qt Designer file."""
    root = ET.parse(path).getroot()
    return {w.get("name"): w.get("class") for w in root.iter("widget")}


def ui_parameter_names(path: Path) -> dict[str, str]:
    """widget name -> SlicerParameterName dynamic property."""
    out = {}
    for w in ET.parse(path).getroot().iter("widget"):
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                out[w.get("name")] = prop.find("string").text
    return out


def parameter_fields(source: Path) -> set[str]:
    """Annotated fields of the @parameterNodeWrapper class of a module file."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list
        ):
            return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError(f"no @parameterNodeWrapper class in {source}")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_ui_widget_the_code_uses_exists_in_the_ui_file(module):
    _, ui = MODULES[module]
    widgets = ui_widgets(ui)
    used = set(re.findall(r"(?:self\.ui|\bui)\.(\w+)", gui_text(module)))
    assert used, "the module uses no widget?"
    assert sorted(used - set(widgets)) == []
    assert ET.parse(ui).getroot().find("widget").get("name") == module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_parameter_names_of_the_ui_and_the_code_exist_in_the_parameter_node(module):
    source, ui = MODULES[module]
    fields = parameter_fields(source)
    bound = ui_parameter_names(ui)
    assert bound, "no widget is bound to the parameter node"
    assert sorted(set(bound.values()) - fields) == []
    text = gui_text(module)
    used = set(re.findall(r"self\._parameterNode\.(\w+)", text)) | set(re.findall(r"\bp\.(\w+)", text))
    used -= {"connectGui", "disconnectGui"}
    assert sorted(used - fields) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_custom_widgets_are_declared_and_standard_ones_are_qt(module):
    _, ui = MODULES[module]
    root = ET.parse(ui).getroot()
    declared = {c.find("class").text for c in root.iter("customwidget")}
    for cls in set(ui_widgets(ui).values()):
        assert cls in declared or re.fullmatch(r"Q[A-Z]\w+", cls), cls


@pytest.mark.parametrize("module", sorted(MODULES))
def test_user_text_goes_through_tr_and_the_main_window_is_guarded(module):
    for source in gui_sources(module):
        text = source.read_text(encoding="utf-8")
        # no bare string literal with words put on a widget or in a dialog
        assert not re.findall(r"\.(?:text|toolTip|labelText)\s*=\s*[\"'](?!\\)[^\"'\n]*[A-Za-z]{2}", text), source
        assert not re.findall(r"(?:errorDisplay|infoDisplay|warningDisplay|confirmOkCancelDisplay)\(\s*[\"'f]", text), (
            source
        )
        if re.search(r"\.(?:text|labelText)\s*=|(?:error|info|warning|confirmOkCancel)Display\(|addItem\(", text):
            assert "from slicer.i18n import tr as _" in text, source
        for line in text.splitlines():
            if "mainWindow()" in line:
                assert "if " in line and "is not None" in line, line  # loads and runs with --no-main-window
        assert not re.search(r"^\s*import imp\b|^\s*from imp import", text, re.M)


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda p: p.name)
def test_module_logic_libraries_never_import_qt(library):
    for path in sorted(library.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("qt", "ctk", "imp"), f"{path.name} imports {name}"


# ----------------------------------------------------------------------------------------------
# Module classes under the import stubs (needs the Slicer core libraries)


@pytest.fixture(scope="module")
def stubs():
    pytest.importorskip("slicer", reason="the Slicer core libraries (pip install slicer-core vtk==9.6.2) are needed")
    H.init()
    H.install_stubs()


def test_module_files_import_and_describe_themselves(stubs):
    from unittest import mock

    from SpineSegSlicerLib import logic

    import SpineSeg
    import SpineSegMetrics

    parent = mock.MagicMock()
    SpineSeg.SpineSeg(parent)
    assert parent.title == "SpineSeg" and parent.categories == ["Segmentation"]
    assert "user guide" in parent.helpText
    SpineSegMetrics.SpineSegMetrics(parent)
    assert parent.title == "SpineSeg Metrics"
    module_logic = SpineSeg.SpineSegLogic()
    assert isinstance(module_logic, logic.SpineSegLogic)
    parameters = module_logic.getParameterNode()
    assert parameters.parameterNode.GetAttribute("ModuleName") == "SpineSeg"
    assert (parameters.pipeline, parameters.device, parameters.heatmapOpacity) == ("ct-full-spine", "auto", 0.5)


def test_spineseg_self_test_passes_headless_on_the_synthetic_ct(stubs, tmp_path, monkeypatch):
    """The module's "Reload and Test" workflow, with the synthetic CT in place of the phantom."""
    import slicer
    from slicer_fixtures import synthetic_lumbar_ct, write_tiny_resources
    from SpineSegSlicerLib import nodes

    import SpineSeg

    monkeypatch.setenv("SPINESEG_RESOURCES", str(write_tiny_resources(tmp_path)))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the module logic's work folder

    class HeadlessSpineSegTest(SpineSeg.SpineSegTest):
        def loadTestVolume(self):
            return nodes.volume_from_sitk(slicer.mrmlScene, synthetic_lumbar_ct().image, "synthetic")

    messages = []
    test = HeadlessSpineSegTest("test_SpineSeg_workflow")
    test.delayDisplay = lambda message, msec=0: messages.append(message)
    test.runTest()
    assert messages[-1] == "SpineSeg workflow test passed", messages


def test_the_spineseg_module_file_is_a_thin_shell():
    """Issue 14: the module file holds the classes Slicer looks for and no panel behaviour (SpineSegGui has it)."""
    source = MODULES["SpineSeg"][0]
    text = source.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 300
    classes = {n.name for n in ast.parse(text).body if isinstance(n, ast.ClassDef)}
    assert classes == {"SpineSeg", "SpineSegParameterNode", "SpineSegWidget", "SpineSegLogic", "SpineSegTest"}
    assert "self.ui." not in text.split("class SpineSegWidget", 1)[1].split("def setup", 1)[1].split("def cleanup")[1]
