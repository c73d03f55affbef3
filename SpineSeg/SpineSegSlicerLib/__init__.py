"""The Slicer side of SpineSeg: Qt-free logic that works on MRML nodes.

Nothing here imports qt (the module widget does), so the logic runs in ``Slicer --no-main-window``,
in the module's self-test and, through the real Slicer core libraries of the ``slicer-core`` wheel,
in CI. The computations stay in :mod:`SpineSegLib`, which runs in a ``PythonSlicer`` subprocess.

Submodules: ``paths`` (where SpineSegLib lives), ``nodes`` (MRML <-> SimpleITK / Centroids),
``terminology`` (segment names, colours, SNOMED CT), ``process`` (the pipeline subprocess),
``results`` (output files -> nodes), ``editing`` (edited centroids, label shifts),
``logic`` (the run API), ``dependencies`` (first-run install), ``models`` (model manager).
"""

from .paths import ensure_spineseglib_importable

ensure_spineseglib_importable()

__all__ = ["ensure_spineseglib_importable"]
