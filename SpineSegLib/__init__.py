"""SpineSegLib: vertebra localisation, identification and segmentation (pure Python).

Never imports slicer, qt or vtk. Points cross module boundaries as LPS millimetres.
"""

__version__ = "0.1.0"
