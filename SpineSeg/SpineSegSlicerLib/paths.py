"""Where the SpineSegLib package lives, for imports here and for the pipeline subprocess.

Installed extension: ``SpineSegLib/`` sits next to ``SpineSegSlicerLib/`` in the ``qt-scripted-modules``
folder (both are shipped there). Source tree (module folder added as an additional module path):
``SpineSegLib/`` is at the repository root, one level above the module folder ``SpineSeg/``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent  # .../SpineSegSlicerLib


def library_root() -> Path:
    """The folder that contains the ``SpineSegLib`` package (goes on the subprocess's PYTHONPATH)."""
    spec = importlib.util.find_spec("SpineSegLib")
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parent.parent
    for candidate in (_HERE.parent, _HERE.parent.parent):
        if (candidate / "SpineSegLib" / "__init__.py").is_file():
            return candidate
    raise ImportError(
        "SpineSegLib not found next to the SpineSeg module or at the repository root; reinstall the extension"
    )


def ensure_spineseglib_importable() -> None:
    """Put the folder holding SpineSegLib on sys.path when Python cannot find it yet."""
    if importlib.util.find_spec("SpineSegLib") is not None:
        return
    try:
        root = str(library_root())
    except ImportError:
        return  # reported with a clear message by the first real use
    if root not in sys.path:
        sys.path.append(root)


def module_dir() -> Path:
    """The folder of ``SpineSeg.py`` (its Resources folder sits there)."""
    return _HERE.parent
