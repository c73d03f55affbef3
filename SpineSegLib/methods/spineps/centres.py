"""Vertebral-body centres from the semantic mask: where the instance network's cutouts go.

SPINEPS takes the body interior (50) where the semantic network gives it, else the body border
class (49) eroded by two voxels, so that touching bodies separate; each connected component of
it that is large enough to be a body is one centre, ordered top to bottom.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .semantic_ids import CORPUS, CORPUS_BORDER

#: Smallest body piece (mm3) that gets a centre: an L5 body is ~30 000 mm3, a C3 one ~3 000 mm3;
#: pieces under 300 mm3 are border fragments.
MIN_BODY_MM3 = 300.0


def body_seeds(semantic: np.ndarray) -> np.ndarray:
    """The voxels whose components are bodies: the interior class, else the eroded border class."""
    interior = semantic == CORPUS
    if interior.any():
        return interior
    return ndimage.binary_erosion(semantic == CORPUS_BORDER, iterations=2)


def corpus_centres(
    semantic: np.ndarray, spacing_kji: Sequence[float], min_mm3: float = MIN_BODY_MM3
) -> list[np.ndarray]:
    """Centre of mass (array index, float) of each body component, top to bottom (axis 0 descending)."""
    seeds = body_seeds(np.asarray(semantic))
    comp, n = ndimage.label(seeds)
    if n == 0:
        return []
    voxel_mm3 = float(np.prod(spacing_kji))
    sizes = np.bincount(comp.ravel(), minlength=n + 1)[1:] * voxel_mm3
    keep = [i + 1 for i in range(n) if sizes[i] >= min_mm3]
    centres = [np.asarray(c) for c in ndimage.center_of_mass(seeds, comp, keep)] if keep else []
    return sorted(centres, key=lambda c: -c[0])
