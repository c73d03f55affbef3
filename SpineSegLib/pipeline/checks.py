"""Plausibility checks of an input volume before it goes through a pipeline."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def ct_intensity_warning(image: sitk.Image) -> str | None:
    """A warning when ``image`` does not look like CT in Hounsfield units (e.g. an MR), else None.

    CT has air near -1000 HU and bone above +300 HU; MR and other modalities are mostly
    non-negative with arbitrary units.
    """
    arr = sitk.GetArrayViewFromImage(image)
    sample = arr.ravel()[:: max(1, arr.size // 1_000_000)].astype(np.float32)
    p1, p99 = np.percentile(sample, [1, 99.5])
    if p1 > -500 or p99 < 200 or p99 > 4000:
        return (
            f"intensities (1st percentile {p1:.0f}, 99.5th {p99:.0f}) do not look like CT in Hounsfield units "
            "(air about -1000, bone above 300): this CT pipeline will likely fail on MR or rescaled data"
        )
    return None
