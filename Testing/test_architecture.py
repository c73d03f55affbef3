"""House rules that keep SpineSegLib usable everywhere: no Slicer/Qt/VTK, light modules stay torch-free."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import SpineSegLib

ROOT = Path(__file__).resolve().parent.parent
#: What the Slicer GUI process imports before torch may even be installed.
TORCH_FREE = [
    "SpineSegLib.labels",
    "SpineSegLib.centroids",
    "SpineSegLib.geometry",
    "SpineSegLib.labelmap",
    "SpineSegLib.io",
    "SpineSegLib.sequence",
    "SpineSegLib.heatmaps",
    "SpineSegLib.metrics",
    "SpineSegLib.models",
    "SpineSegLib.methods",
    "SpineSegLib.bids",
    "SpineSegLib.report",
    "SpineSegLib.cli",
]


def _all_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(SpineSegLib.__path__, "SpineSegLib.") if "__main__" not in m.name
    )


def _imported_after(modules: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return {line.split(".")[0] for line in out.stdout.split()}


def test_spineseglib_never_imports_slicer_qt_or_vtk():
    loaded = _imported_after(_all_modules())
    assert not loaded & {"slicer", "qt", "vtk", "vtkmodules", "ctk", "PythonQt"}


def test_light_modules_do_not_import_torch():
    loaded = _imported_after(TORCH_FREE)
    assert "torch" not in loaded and "monai" not in loaded


def test_no_forbidden_import_statements_in_the_library_source():
    bad = []
    for path in (ROOT / "SpineSegLib").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            s = line.strip()
            if s.startswith(("import ", "from ")) and s.split()[1].split(".")[0] in {
                "slicer",
                "qt",
                "vtk",
                "ctk",
                "imp",
            }:
                bad.append(f"{path.relative_to(ROOT)}:{n}: {s}")
    assert not bad, bad
