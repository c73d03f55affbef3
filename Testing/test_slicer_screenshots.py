"""The docs screenshots render headless (EGL) with the Slicer core libraries and show the spine, not a blank view."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("slicer", reason="the Slicer core libraries (pip install slicer-core vtk==9.6.2) are needed")

import slicer_headless as H

_EGL, _WHY = H.has_egl()
pytestmark = pytest.mark.skipif(not _EGL, reason=_WHY or "no EGL")


def _load_script():
    path = H.REPO_ROOT / "docs" / "make_screenshots.py"
    spec = importlib.util.spec_from_file_location("make_screenshots", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _chromaticity(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(float)
    return rgb / np.maximum(rgb.sum(axis=-1, keepdims=True), 1.0)


def test_screenshots_show_segments_labels_and_heatmaps(tmp_path):
    from PIL import Image

    from SpineSegLib import labels as L

    script = _load_script()
    slices, view3d = script.make_screenshots(tmp_path, size=256, spacing=2.0)
    assert slices.name == "screenshot_slices.png" and view3d.name == "screenshot_3d.png"
    for path, size in ((slices, (256, 256)), (view3d, (256, 256))):
        image = np.asarray(Image.open(path).convert("RGB"))
        assert image.shape[:2] == size[::-1]
        background = image[0, 0]
        differs = np.any(np.abs(image.astype(int) - background) > 12, axis=-1)
        assert differs.mean() > 0.05, f"{path.name} is (nearly) blank"
        assert image.std() > 10
    # 3D: lit surfaces keep their segment's hue; most lumbar vertebrae must show up in their own colours
    image = _chromaticity(np.asarray(Image.open(view3d).convert("RGB")))
    seen = 0
    for label in (20, 21, 22, 23, 24):
        target = _chromaticity(np.array(L.get(label).color))
        seen += int(np.count_nonzero(np.linalg.norm(image - target, axis=-1) < 0.03) > 30)
    assert seen >= 4
    # slices: the segment fill/outline colours appear, blended over the grey CT
    image = np.asarray(Image.open(slices).convert("RGB")).astype(int)
    coloured = np.abs(image - image.mean(axis=-1, keepdims=True)).max(axis=-1) > 25
    assert coloured.mean() > 0.02
