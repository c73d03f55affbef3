"""Qt-free logic of the SpineSegMetrics module (see :mod:`.logic`).

It shares SpineSeg's node conversions (SpineSegSlicerLib) and SpineSegLib. Installed, all three sit in
the same scripted-modules folder; in the source tree SpineSegSlicerLib is in the sibling ``SpineSeg``
folder, which is put on sys.path here when Python cannot find it yet.
"""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("SpineSegSlicerLib") is None:
    _source_tree_module = Path(__file__).resolve().parent.parent.parent / "SpineSeg"
    if (_source_tree_module / "SpineSegSlicerLib" / "__init__.py").is_file():
        sys.path.append(str(_source_tree_module))

import SpineSegSlicerLib  # noqa: F401  (makes SpineSegLib importable)
