"""Overlapping tiles along one axis, merged by maximum.

Payer et al. merge heatmap tiles by taking the maximum response (a landmark seen well in
one tile must not be averaged down by a tile where it sits at the border); MONAI's
sliding-window inferer only blends by averaging, hence this small tiler.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of ``tile`` covering ``length`` with at most ``step`` between starts."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return sorted(set(starts))


def run_tiled_max(
    volume: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    tile: int,
    step: int,
    axis: int = -3,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Apply ``predict`` (C_in, ... -> C_out, ...) to tiles of ``volume`` along ``axis`` and max-merge.

    ``volume`` has shape (C_in, K, J, I); the output has (C_out, K, J, I). ``axis`` indexes
    the spatial axes (default the K = slice axis).
    """
    ax = axis % volume.ndim
    length = volume.shape[ax]
    starts = tile_starts(length, tile, step)
    out = None
    for n, s in enumerate(starts):
        sl = [slice(None)] * volume.ndim
        sl[ax] = slice(s, min(s + tile, length))
        pred = predict(volume[tuple(sl)])
        if out is None:
            shape = list(pred.shape)
            shape[ax] = length
            out = np.full(shape, -np.inf, dtype=pred.dtype)
        view = out[tuple(sl)]
        np.maximum(view, pred, out=view)
        if on_tile:
            on_tile(n + 1, len(starts))
    return out
