"""The Qt side of the SpineSeg module: the panel's controller, the models box and the self-test.

SpineSegSlicerLib stays Qt-free (logic usable without a widget, tested on the Slicer core libraries);
what needs Qt lives here, so that the module file is only the shell Slicer loads.
"""

import SpineSegSlicerLib  # noqa: F401  (puts SpineSegLib on sys.path, as for the module file)
