"""Intensity normalisation of network inputs, described by a JSON spec in the model card.

The same function runs in training and inference, so a model card fully says what the
network expects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Payer et al.: clip(max(HU, -1024) / 2048, -1, 1), i.e. [-0.5, 1] for CT.
CT_NORMALIZATION: dict[str, Any] = {"type": "ct", "min_hu": -1024.0, "divisor": 2048.0}
#: Robust MR scaling: (x - p1) / (p99 - p1) on the whole input, clipped to [0, 1.5].
MR_NORMALIZATION: dict[str, Any] = {"type": "percentile", "low": 1.0, "high": 99.0, "clip": [0.0, 1.5]}

#: Lu et al. 2023: the bone window (level 400, width 1800 HU) mapped to [0, 1].
BONE_WINDOW: dict[str, Any] = {"type": "window", "level": 400.0, "width": 1800.0}
#: Masuzawa et al. 2020: HU clipped to [-512, 1024] and mapped to [-1, 1] (a window with an output range).
MASUZAWA_WINDOW: dict[str, Any] = {"type": "window", "level": 256.0, "width": 1536.0, "out": [-1.0, 1.0]}

#: Fill value (in input units) for parts of a crop outside the image, per normalisation type.
PAD_VALUE = {"ct": -1024.0, "percentile": 0.0, "window": -1024.0}


def normalize(array: np.ndarray, spec: dict[str, Any], reference: np.ndarray | None = None) -> np.ndarray:
    """float32 network input from raw intensities.

    ``reference`` is the array the percentile statistics come from (the whole image rather
    than one crop, so that every crop of a case is scaled the same way); default ``array``.
    """
    kind = spec["type"]
    if kind == "ct":
        out = np.maximum(array.astype(np.float32, copy=False), spec["min_hu"]) / np.float32(spec["divisor"])
        return np.clip(out, -1.0, 1.0, out=out)
    if kind == "window":  # [level - width/2, level + width/2] HU -> ``out`` (default [0, 1]), clipped
        lo = np.float32(spec["level"] - spec["width"] / 2.0)
        out = (array.astype(np.float32, copy=False) - lo) / np.float32(spec["width"])
        out = np.clip(out, 0.0, 1.0, out=out)
        a, b = spec.get("out", (0.0, 1.0))
        if (a, b) != (0.0, 1.0):
            out = (out * np.float32(b - a) + np.float32(a)).astype(np.float32, copy=False)
        return out
    if kind == "percentile":
        lo, hi = percentile_range(array if reference is None else reference, spec)
        out = (array.astype(np.float32, copy=False) - lo) / max(hi - lo, 1e-6)
        return np.clip(out, *spec["clip"], out=out).astype(np.float32, copy=False)
    raise ValueError(f"unknown intensity normalisation {kind!r}")


def percentile_range(array: np.ndarray, spec: dict[str, Any]) -> tuple[float, float]:
    sample = array.ravel()[:: max(1, array.size // 2_000_000)]  # a strided sample is plenty for percentiles
    lo, hi = np.percentile(sample, [spec["low"], spec["high"]])
    return float(lo), float(hi)


def pad_value(spec: dict[str, Any]) -> float:
    return PAD_VALUE[spec["type"]]
