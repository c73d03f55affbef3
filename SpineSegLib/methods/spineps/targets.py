"""The 14 SPINEPS structures from a subregion mask that marks the vertebral body as one piece.

The phantoms (and masks made like VerSe's subregion maps) label the whole body 49. SPINEPS's
semantic network tells three parts of it apart: the endplates (62, the body next to a disc), the
cortical border (49) and the interior (50). Those are derived here by distance, so that training
targets carry all 14 structures; a mask that already has 50 or 62 is left as it is.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .semantic_ids import CORPUS, CORPUS_BORDER, DISC, ENDPLATE, ENDPLATE_INF, ENDPLATE_SUP

#: Body voxels within this distance (mm) of a disc voxel are endplate (the SPINEPS endplate class
#: is a 2-3 voxel slab at 0.75 x 0.75 x 1.65 mm).
ENDPLATE_MM = 2.0
#: Body voxels within this distance (mm) of the outside of the body (and not endplate) are border.
BORDER_MM = 1.5


def fourteen_structures(subregions: np.ndarray, spacing_kji) -> np.ndarray:
    """uint8 SPINEPS ids with the body split into endplate (62), border (49) and interior (50).

    Split endplates (52/53) become 62, the class the semantic network learns. Bodies of a mask
    that already has an interior (50) or endplates (62) are not split again.
    """
    out = np.asarray(subregions).astype(np.uint8, copy=True)
    out[np.isin(out, (ENDPLATE_SUP, ENDPLATE_INF))] = ENDPLATE
    if np.isin(out, (CORPUS, ENDPLATE)).any():
        return out
    body = out == CORPUS_BORDER
    if not body.any():
        return out
    spacing = np.asarray(spacing_kji, float)
    disc = out == DISC
    if disc.any():
        near_disc = ndimage.distance_transform_edt(~disc, sampling=spacing) <= ENDPLATE_MM
        out[body & near_disc] = ENDPLATE
    # Depth inside the whole body (endplates included, so the interior stops short of them too); the
    # border is at least the one voxel layer next to the outside, however coarse the grid.
    depth = ndimage.distance_transform_edt(np.pad(body, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    inner = ndimage.binary_erosion(body, border_value=0) & (depth > BORDER_MM)
    out[inner & (out == CORPUS_BORDER)] = CORPUS
    return out
