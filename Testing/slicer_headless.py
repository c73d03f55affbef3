"""Run SpineSeg's Slicer modules on the real Slicer core libraries (the ``slicer-core`` wheel), without Slicer.

``init()`` builds what the Slicer application would: a scene, the application logic and the module
logics the modules use, as ``slicer.mrmlScene`` and ``slicer.modules.<name>.logic()``.
``install_stubs()`` lets the unmodified module files (``SpineSeg.py``, ``SpineSegMetrics.py``) import:
Qt and CTK become MagicMock modules (there is no GUI headless), and the small pure-Python pieces of
the application that the wheel lacks (``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper``,
``slicer.i18n``) get minimal stand-ins (the parameter-node wrapper keeps the node and the defaults).
The module *logic* runs for real; only the widgets are hollow.

``slicer`` is imported lazily so that a test module can skip cleanly when slicer-core is missing.
"""

from __future__ import annotations

import os
import sys
import types
import unittest
from pathlib import Path
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parent.parent
MODULE_DIRS = (REPO_ROOT / "SpineSeg", REPO_ROOT / "SpineSegMetrics")

# EGL offscreen rendering when a render window is created (must be set before vtk loads its GL classes).
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

_STATE: dict = {}


def add_module_paths() -> None:
    """What Slicer does for a scripted module: its folder goes on sys.path (plus the repo root for SpineSegLib)."""
    for p in (REPO_ROOT, *MODULE_DIRS):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def init():
    """Create (once) the scene and module logics; returns the scene. Later calls clear the scene."""
    import slicer
    from vtkmodules.vtkCommonCore import vtkCollection

    add_module_paths()
    if "scene" in _STATE:
        clear_scene()
        return _STATE["scene"]
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    app.GetColorLogic().SetMRMLScene(scene)
    app.GetColorLogic().AddDefaultColorNodes()
    app.SetSliceLogics(vtkCollection())
    app.SetViewLogics(vtkCollection())

    def register(name, logic):
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app)
        app.SetModuleLogic(name, logic)
        return logic

    logics = {
        "volumes": register("Volumes", slicer.vtkSlicerVolumesLogic()),
        "segmentations": register("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic()),
        "markups": register("Markups", slicer.vtkSlicerMarkupsLogic()),
        "tables": register("Tables", slicer.vtkSlicerTablesLogic()),
        "plots": register("Plots", slicer.vtkSlicerPlotsLogic()),
        "volumerendering": register("VolumeRendering", slicer.vtkSlicerVolumeRenderingLogic()),
        "colors": register("Colors", app.GetColorLogic()),
    }
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(
        **{k: types.SimpleNamespace(logic=lambda lg=lg: lg) for k, lg in logics.items()}
    )
    _STATE.update(scene=scene, app=app, logics=logics)
    return scene


def app_logic():
    return _STATE["app"]


def clear_scene() -> None:
    """Empty the scene between tests (default colour nodes survive)."""
    scene = _STATE.get("scene")
    if scene is not None:
        scene.Clear(0)


# ----------------------------------------------------------------------------------------------
# Import stubs for the module files


class _ScriptedLoadableModule:
    def __init__(self, parent=None):
        self.parent = parent if parent is not None else mock.MagicMock()
        self.moduleName = self.__class__.__name__

    def resourcePath(self, filename):
        return str(Path(sys.modules[self.__class__.__module__].__file__).parent / "Resources" / filename)


class _ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent if parent is not None else mock.MagicMock()
        self.layout = mock.MagicMock()
        self.moduleName = self.__class__.__name__[: -len("Widget")]

    def setup(self):
        pass

    def resourcePath(self, filename):
        return str(Path(sys.modules[self.__class__.__module__].__file__).parent / "Resources" / filename)


class _ScriptedLoadableModuleLogic:
    """Slicer's class, reduced to the parameter-node part (the same code as in Slicer)."""

    def __init__(self, parent=None):
        self.moduleName = self.__class__.__name__[: -len("Logic")] if self.__class__.__name__.endswith("Logic") else ""
        self.isSingletonParameterNode = True

    def getParameterNode(self):
        import slicer

        scene = slicer.mrmlScene
        node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetSingletonTag(self.moduleName)
            node.SetName(scene.GenerateUniqueName(self.moduleName))
            node.SetAttribute("ModuleName", self.moduleName)
            node = scene.AddNode(node)
        return node


class _ScriptedLoadableModuleTest(unittest.TestCase):
    """As Slicer's: a unittest.TestCase with delayDisplay (which only prints here)."""

    def delayDisplay(self, message, msec=0):
        print(message)


def _identity_decorator(obj=None, **kwargs):
    if obj is None:
        return lambda o: o
    return obj


def _parameter_node_wrapper(cls):
    """Stand-in for Slicer's @parameterNodeWrapper: ``Cls(node)`` keeps the node as ``.parameterNode``;
    the typed fields are plain attributes with their defaults (no MRML persistence, no GUI binding)."""

    def __init__(self, parameterNode=None):
        self.parameterNode = parameterNode

    cls.__init__ = __init__
    for name in getattr(cls, "__annotations__", {}):
        if not hasattr(cls, name):
            setattr(cls, name, None)
    cls.connectGui = lambda self, ui: None
    cls.disconnectGui = lambda self, tag: None
    return cls


def install_stubs() -> None:
    """Make ``import qt, ctk`` and the Slicer application's Python modules importable (idempotent)."""
    import slicer

    if _STATE.get("stubs"):
        return
    for name in ("qt", "ctk", "slicer.qSlicerWidgetsPythonQt"):
        sys.modules.setdefault(name, mock.MagicMock(name=name))

    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    slm.ScriptedLoadableModule = _ScriptedLoadableModule
    slm.ScriptedLoadableModuleWidget = _ScriptedLoadableModuleWidget
    slm.ScriptedLoadableModuleLogic = _ScriptedLoadableModuleLogic
    slm.ScriptedLoadableModuleTest = _ScriptedLoadableModuleTest
    slm.__all__ = [
        "ScriptedLoadableModule",
        "ScriptedLoadableModuleWidget",
        "ScriptedLoadableModuleLogic",
        "ScriptedLoadableModuleTest",
    ]
    sys.modules["slicer.ScriptedLoadableModule"] = slm
    slicer.ScriptedLoadableModule = slm

    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper = _parameter_node_wrapper
    pnw.parameterPack = _identity_decorator
    for name in ("Choice", "WithinRange", "Default", "Minimum", "Maximum", "Decimals", "SingleStep"):
        setattr(pnw, name, lambda *a, **k: None)
    sys.modules["slicer.parameterNodeWrapper"] = pnw
    slicer.parameterNodeWrapper = pnw

    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    sys.modules["slicer.i18n"] = i18n
    slicer.i18n = i18n
    _STATE["stubs"] = True


def has_egl() -> tuple[bool, str]:
    """(True, "") when an offscreen EGL render window works here, else (False, why)."""
    if "egl" in _STATE:
        return _STATE["egl"]
    import subprocess

    code = (
        "import os; os.environ['VTK_DEFAULT_OPENGL_WINDOW']='vtkEGLRenderWindow'\n"
        "import vtk\nw=vtk.vtkRenderWindow(); w.SetOffScreenRendering(1); w.SetSize(8,8)\n"
        "r=vtk.vtkRenderer(); w.AddRenderer(r); w.Render(); print(w.GetClassName())"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
        ok = out.returncode == 0 and "vtkEGLRenderWindow" in out.stdout
        why = "" if ok else f"no EGL offscreen rendering (install libegl1 libegl-mesa0): {out.stderr.strip()[-300:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, why = False, f"no EGL offscreen rendering: {exc}"
    _STATE["egl"] = (ok, why)
    return ok, why
