"""Instances made consistent with the semantic mask (SPINEPS post-processing, 2.5).

Vertebra instances may only cover the semantic vertebra classes. Semantic vertebra voxels that no
instance covers (a spinous process the cutout cut off, a transverse process split off) are given to
the instance that reaches them when grown two voxels inside the semantic mask; a still orphaned
piece goes to the instance with most contact around it, and a piece touching none is removed
from the semantic mask as well: it is not part of any vertebra found.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .semantic_ids import VERTEBRA_IDS

_SIX = ndimage.generate_binary_structure(3, 1)
_EIGHTEEN = ndimage.generate_binary_structure(3, 2)


def vertebra_mask(semantic: np.ndarray) -> np.ndarray:
    return np.isin(semantic, VERTEBRA_IDS)


def _grow(instances: np.ndarray, allowed: np.ndarray, steps: int) -> np.ndarray:
    """Each instance grown ``steps`` 6-connected voxels into unlabelled ``allowed`` voxels (largest id wins ties)."""
    out = instances.copy()
    for _ in range(steps):
        free = allowed & (out == 0)
        if not free.any():
            break
        grown = ndimage.grey_dilation(out, footprint=_SIX)  # the largest neighbour id: a fixed tie rule
        take = free & (grown > 0)
        out[take] = grown[take]
    return out


def assign_orphans(instances: np.ndarray, semantic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(instances restricted to and completed over the semantic vertebra mask, semantic without unclaimed pieces)."""
    vert = vertebra_mask(semantic)
    inst = np.where(vert, instances, 0).astype(instances.dtype)
    inst = _grow(inst, vert, 2)
    sem = semantic.copy()
    orphans, n = ndimage.label(vert & (inst == 0))
    for i, sl in enumerate(ndimage.find_objects(orphans), start=1):
        if sl is None:
            continue
        pad = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        piece = orphans[pad] == i
        rim = ndimage.binary_dilation(piece, _EIGHTEEN) & ~piece
        ids = inst[pad][rim]
        ids = ids[ids > 0]
        if ids.size:
            inst[pad][piece] = np.bincount(ids).argmax()
        else:
            sem[pad][piece] = 0
    return inst, sem
