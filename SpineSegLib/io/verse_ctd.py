"""VerSe ``*_ctd.json`` centroid files: voxel indices in, LPS millimetres out (and back).

Format (current VerSe release, anjany/verse ``data_utilities.py``): a JSON list whose first
entry is ``{"direction": ["P", "I", "R"]}``, the nibabel axcodes of the coordinate axes, then
``{"label": L, "X": x, "Y": y, "Z": z}`` with continuous 0-based voxel indices (scipy
centre-of-mass convention) of the image's own grid *in that axis order*. Not millimetres:
reading and writing need the image (or its :class:`Grid`).

Axcodes name the anatomical direction each axis points *to*. ITK's orientation code
(:func:`SpineSegLib.geometry.orientation_code`, e.g. "LPS" for the identity direction)
uses the same letters for the same axes, so the two compare directly. When the file's
direction differs from the image's own, its indices refer to the image reoriented to that
direction: axes are permuted, and a flipped axis of ``n`` voxels maps index ``c`` to
``n - 1 - c`` (VerSe's own ``reorient_centroids_to`` uses ``n - c``, half a voxel off
either way of the exact flip; we use the exact one).

Entries with NaN coordinates are skipped with a warning, as VerSe's ``load_centroids`` does.
We write the reference image's own axcodes and round indices to 0.001 voxel (VerSe rounds to
0.1), so that a write/read round trip moves a point by at most 0.0005 voxel.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import labels as L
from ..centroids import Centroids
from ..errors import InputError
from ..geometry import Grid, orientation_code

_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
_AXIS_OF = {"L": 0, "R": 0, "A": 1, "P": 1, "S": 2, "I": 2}
#: Decimals of the voxel indices we write.
INDEX_DECIMALS = 3


def image_axcodes(grid: Grid) -> str:
    """nibabel-style axcodes of the grid's axes (ITK's orientation code has the same letters)."""
    return orientation_code(grid.direction)


def _parse_direction(entry: Any, path: Path) -> str:
    hint = (
        "first entry must be {'direction': [...]} with three axcodes such as ['P', 'I', 'R']"
        " (files without it come from the older VerSe'19/'20 challenge releases, in mm: not supported)"
    )
    if not isinstance(entry, dict) or "direction" not in entry:
        raise InputError(path, hint)
    d = entry["direction"]
    if isinstance(d, str):
        d = list(d)
    if not isinstance(d, (list, tuple)) or len(d) != 3 or not all(isinstance(c, str) and len(c) == 1 for c in d):
        raise InputError(path, f"entry 1: direction {d!r} is not three axcodes such as ['P', 'I', 'R']")
    codes = "".join(c.upper() for c in d)
    if any(c not in _AXIS_OF for c in codes) or len({_AXIS_OF[c] for c in codes}) != 3:
        raise InputError(path, f"entry 1: direction {d!r} is not a valid orientation (one of L/R, A/P, S/I each)")
    return codes


def _number(value: Any) -> float | None:
    """float of a JSON number (or the string 'nan'); None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower() == "nan":
        return math.nan
    return None


def _label_of(value: Any, where: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise InputError(path, f"{where}: label {value!r} is not an integer VerSe vertebra id")
    label = int(value)
    if not L.is_known(label):
        raise InputError(path, f"{where}: label {label} is not a VerSe vertebra id (1..28)")
    return label


def file_to_image_index(coords: np.ndarray, file_codes: str, image_codes: str, size: tuple[int, ...]) -> np.ndarray:
    """(N, 3) indices along the file's axes -> (N, 3) ITK indices (i, j, k) of the image."""
    coords = np.atleast_2d(np.asarray(coords, dtype=float))
    out = np.empty_like(coords)
    for a, c in enumerate(file_codes):
        b = next(b for b, ic in enumerate(image_codes) if ic in (c, _OPPOSITE[c]))
        out[:, b] = coords[:, a] if image_codes[b] == c else (size[b] - 1) - coords[:, a]
    return out


def parse_verse(document: Any, path: Path, grid: Grid) -> Centroids:
    """Centroids (LPS mm) of a parsed VerSe centroid list, on the reference ``grid``."""
    if not isinstance(document, list):
        raise InputError(path, f"a VerSe centroid file must be a JSON list, got a JSON {type(document).__name__}")
    if not document:
        raise InputError(path, "file is an empty list; first entry must be {'direction': [...]}")
    file_codes = _parse_direction(document[0], path)
    labels: list[int] = []
    coords: list[list[float]] = []
    confidence: dict[int, float] = {}
    seen: dict[int, int] = {}
    for n, entry in enumerate(document[1:], start=2):
        where = f"entry {n}"
        if not isinstance(entry, dict):
            raise InputError(path, f"{where}: expected an object like {{'label': 20, 'X': .., 'Y': .., 'Z': ..}}")
        if "direction" in entry:
            raise InputError(path, f"{where}: a second 'direction' entry (only the first entry may hold one)")
        if "label" not in entry:
            raise InputError(path, f"{where}: missing 'label'")
        label = _label_of(entry["label"], where, path)
        where = f"entry {n} (label {label}, {L.name_of(label)})"
        xyz = []
        for key in ("X", "Y", "Z"):
            if key not in entry:
                raise InputError(path, f"{where}: missing {key!r}")
            v = _number(entry[key])
            if v is None:
                raise InputError(path, f"{where}: {key!r} is not a number ({entry[key]!r})")
            xyz.append(v)
        if any(math.isnan(v) for v in xyz):
            warnings.warn(f"{path}: {where} has NaN coordinates; skipped", UserWarning, stacklevel=3)
            continue
        if any(math.isinf(v) for v in xyz):
            raise InputError(path, f"{where}: coordinates must be finite, got {xyz}")
        if label in seen:
            raise InputError(path, f"{where}: label {label} appears twice (also entry {seen[label]})")
        seen[label] = n
        labels.append(label)
        coords.append(xyz)
        conf = _number(entry.get("confidence"))
        if conf is not None and math.isfinite(conf):
            confidence[label] = conf
    if not labels:
        return Centroids()
    index = file_to_image_index(np.asarray(coords), file_codes, image_axcodes(grid), grid.size)
    points = grid.index_to_physical(index)
    outside = [L.name_of(lab) for lab, ok in zip(labels, grid.contains(points, margin_vox=-0.5)) if not ok]
    if outside:
        warnings.warn(
            f"{path}: centroids of {', '.join(outside)} lie outside the reference image "
            f"({'x'.join(map(str, grid.size))} voxels); is it the image this file belongs to?",
            UserWarning,
            stacklevel=3,
        )
    return Centroids(dict(zip(labels, points)), confidence)


def verse_document(
    centroids: Centroids, grid: Grid, flags: Mapping[int, Sequence[str]] | None = None
) -> list[dict[str, Any]]:
    """The VerSe centroid list of ``centroids`` on ``grid`` (the grid's own axcodes and indices).

    ``flags`` (plausibility flags per label) go into the entries as an extra ``flags`` list.
    """
    doc: list[dict[str, Any]] = [{"direction": list(image_axcodes(grid))}]
    if len(centroids):
        index = grid.physical_to_index(centroids.array())
        for label, ijk in zip(centroids.labels, index):
            x, y, z = (round(float(v), INDEX_DECIMALS) for v in ijk)
            entry: dict[str, Any] = {"label": int(label), "X": x, "Y": y, "Z": z}
            conf = centroids.confidence_of(label)
            if conf is not None:  # an extra key: VerSe readers use label/X/Y/Z only
                entry["confidence"] = round(float(conf), 4)
            if flags and flags.get(int(label)):
                entry["flags"] = [str(f) for f in flags[int(label)]]
            doc.append(entry)
    return doc


def verse_flags(document: Any) -> dict[int, list[str]]:
    """The plausibility flags a SpineSeg VerSe centroid list carries per label (empty for other files)."""
    out: dict[int, list[str]] = {}
    if isinstance(document, list):
        for entry in document:
            if isinstance(entry, dict) and isinstance(entry.get("flags"), list) and "label" in entry:
                try:
                    label = int(entry["label"])
                except (TypeError, ValueError):
                    continue
                out[label] = [str(f) for f in entry["flags"]]
    return out
