"""Checks of a MetaImage (.mha/.mhd) header before ITK reads it.

ITK's MetaIO reader hung on some malformed headers the fuzzer wrote (numeric fields with absurd counts
or values), so SpineSeg reads the text header first and refuses what no scanner writes: a dimension
count outside 1-7, sizes that are not positive whole numbers, non-finite or absurd spacing, origin or
direction values, an absurd number of channels. A header that is not text is left to ITK (it refuses it).
Hand-written: no library we ship validates MetaImage headers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_HEADER_BYTES = 1 << 16
#: Largest absolute origin (mm) and direction-matrix entry a header may hold.
_ORIGIN_LIMIT, _DIRECTION_LIMIT = 1e6, 1e3


def _fields(path: Path) -> dict[str, str] | None:
    with open(path, "rb") as f:
        head = f.read(_HEADER_BYTES)
    fields: dict[str, str] = {}
    for raw in head.split(b"\n"):
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return fields or None
        if "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        fields[key] = value
        if key == "ElementDataFile":
            break
    return fields or None


def _numbers(text: str) -> list[float] | None:
    try:
        return [float(v) for v in text.split()]
    except ValueError:
        return None


def metaimage_problem(path: str | os.PathLike) -> str | None:
    """A sentence saying what is wrong with the MetaImage header at ``path``, or None."""
    try:
        fields = _fields(Path(path))
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    if not fields:
        return None
    ndims_text = fields.get("NDims", "")
    if not ndims_text.isdigit() or not 1 <= int(ndims_text) <= 7:
        return f"has an invalid NDims ({ndims_text!r}) in its MetaImage header"
    n = int(ndims_text)
    checks = (
        ("DimSize", n, lambda v: v >= 1 and v == int(v)),
        ("ElementSpacing", n, lambda v: math.isfinite(v) and abs(v) <= _ORIGIN_LIMIT),
        ("ElementSize", n, lambda v: math.isfinite(v) and abs(v) <= _ORIGIN_LIMIT),
        ("Offset", n, lambda v: math.isfinite(v) and abs(v) <= _ORIGIN_LIMIT),
        ("Position", n, lambda v: math.isfinite(v) and abs(v) <= _ORIGIN_LIMIT),
        ("Origin", n, lambda v: math.isfinite(v) and abs(v) <= _ORIGIN_LIMIT),
        ("TransformMatrix", n * n, lambda v: math.isfinite(v) and abs(v) <= _DIRECTION_LIMIT),
        ("Rotation", n * n, lambda v: math.isfinite(v) and abs(v) <= _DIRECTION_LIMIT),
        ("Orientation", n * n, lambda v: math.isfinite(v) and abs(v) <= _DIRECTION_LIMIT),
        ("ElementNumberOfChannels", 1, lambda v: 1 <= v <= 1000 and v == int(v)),
    )
    for key, count, ok in checks:
        if key not in fields:
            continue
        values = _numbers(fields[key])
        if values is None or len(values) != count or not all(ok(v) for v in values):
            return f"has an invalid {key} ({fields[key][:40]!r}) in its MetaImage header"
    return None
