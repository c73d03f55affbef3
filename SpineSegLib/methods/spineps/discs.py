"""Discs and endplates named by level: disc 100+X lies below vertebra X, endplate 200+X belongs to X.

SPINEPS gives each disc the id of the vertebra whose body centre is the nearest one above it. An
endplate is part of a vertebra, so it takes the id of the vertebra instance that covers it most.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from .semantic_ids import BODY_IDS, DISC, ENDPLATE, ENDPLATE_INF, ENDPLATE_SUP

DISC_OFFSET, ENDPLATE_OFFSET = 100, 200


def body_centres(instances: np.ndarray, semantic: np.ndarray) -> dict[int, np.ndarray]:
    """Instance id -> body centre (array index, float): the instance's body voxels, else all of it."""
    body = np.isin(semantic, BODY_IDS)
    out = {}
    for lab, sl in enumerate(ndimage.find_objects(instances), start=1):
        if sl is None:
            continue
        m = instances[sl] == lab
        b = m & body[sl]
        out[lab] = np.asarray(ndimage.center_of_mass(b if b.any() else m)) + [s.start for s in sl]
    return out


def level_mask(
    instances: np.ndarray,
    semantic: np.ndarray,
    verse_ids: Mapping[int, int],
    spacing_kji: Sequence[float],
    centres: Mapping[int, np.ndarray] | None = None,
) -> np.ndarray:
    """The instance output: vertebrae by VerSe id, discs 100+X, endplates 200+X (uint16, 0 elsewhere).

    ``centres``: :func:`body_centres` of ``instances`` when the caller has them already.
    """
    out = np.zeros(instances.shape, np.uint16)
    for inst, vid in verse_ids.items():
        out[instances == inst] = vid
    spacing = np.asarray(spacing_kji, float)
    centres = body_centres(instances, semantic) if centres is None else centres
    centres_mm = {verse_ids[i]: c * spacing for i, c in centres.items() if i in verse_ids}
    # Endplates: the vertebra covering most of each piece.
    plates, n = ndimage.label(np.isin(semantic, (ENDPLATE, ENDPLATE_SUP, ENDPLATE_INF)))
    for i, sl in enumerate(ndimage.find_objects(plates), start=1):
        piece = plates[sl] == i
        ids = out[sl][piece]
        ids = ids[(ids > 0) & (ids < DISC_OFFSET)]
        if ids.size:
            out[sl][piece] = ENDPLATE_OFFSET + np.bincount(ids).argmax()
    # Discs: the nearest vertebra above (larger axis-0 position) by body centre.
    discs, n = ndimage.label(semantic == DISC)
    for i, sl in enumerate(ndimage.find_objects(discs), start=1):
        piece = discs[sl] == i
        c = (np.asarray(ndimage.center_of_mass(piece)) + [s.start for s in sl]) * spacing
        above = {v: float(np.linalg.norm(p - c)) for v, p in centres_mm.items() if p[0] > c[0]}
        if above:
            out[sl][piece] = DISC_OFFSET + min(above, key=above.get)
    return out
