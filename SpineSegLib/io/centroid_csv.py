"""Centroid CSV files: one row per vertebra, coordinates in millimetres.

::

    # coordinate_system: LPS
    label,name,x,y,z,confidence
    20,L1,12.5,-30.25,101.0,0.93

The ``# coordinate_system`` comment (LPS or RAS) is required on reading: without it a file
in RAS would silently be read mirrored. ``label`` is the numeric VerSe id, ``name`` the
vertebra name; a file may have either or both (then they must agree). ``confidence`` is
optional (empty cell = none). Coordinates are written with ``repr`` so they read back exactly.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np

from .. import labels as L
from ..centroids import LPS_TO_RAS, Centroids
from ..errors import InputError

_SYSTEM_LINE = re.compile(r"^#\s*coordinate[_ ]?system\s*[:=]\s*(\S+)\s*$", re.IGNORECASE)


def _integer(cell: str) -> int | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _row_label(row: dict[str, str], where: str, path: Path) -> int:
    label_cell = row.get("label", "").strip()
    name_cell = row.get("name", "").strip()
    from_label = from_name = None
    if label_cell:
        from_label = _integer(label_cell)
        if from_label is None or not L.is_known(from_label):
            raise InputError(path, f"{where}: label {label_cell!r} is not a VerSe vertebra id (1..28)")
    if name_cell:
        try:
            from_name = L.id_of(name_cell)
        except KeyError:
            raise InputError(path, f"{where}: name {name_cell!r} is not a vertebra name (C1..L6, T13, S)") from None
    if from_label is None and from_name is None:
        raise InputError(path, f"{where}: neither a label nor a name")
    if from_label is not None and from_name is not None and from_label != from_name:
        raise InputError(path, f"{where}: label {from_label} ({L.name_of(from_label)}) and name {name_cell!r} disagree")
    return from_label if from_label is not None else from_name  # type: ignore[return-value]


def parse_csv(text: str, path: Path) -> Centroids:
    """Centroids (LPS mm) of the text of a centroid CSV file."""
    system: str | None = None
    header: list[str] | None = None
    points: dict[int, np.ndarray] = {}
    confidence: dict[int, float] = {}
    seen: dict[int, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            m = _SYSTEM_LINE.match(stripped)
            if m and header is None:
                system = m.group(1).upper()
                if system not in ("LPS", "RAS"):
                    raise InputError(path, f"line {line_no}: coordinate system {m.group(1)!r} is not LPS or RAS")
            continue
        cells = next(csv.reader([line]))
        if header is None:
            if system is None:
                raise InputError(
                    path,
                    "missing the '# coordinate_system: LPS' (or RAS) line before the header; "
                    "without it LPS and RAS coordinates cannot be told apart",
                )
            header = [c.strip().lower() for c in cells]
            missing = [c for c in ("x", "y", "z") if c not in header]
            if missing or not ({"label", "name"} & set(header)):
                need = ", ".join(repr(c) for c in missing) or "'label' or 'name'"
                raise InputError(path, f"line {line_no}: header {cells} lacks {need} (expected label,name,x,y,z)")
            if len(set(header)) != len(header):
                raise InputError(path, f"line {line_no}: header {cells} repeats a column")
            continue
        where = f"line {line_no}"
        if len(cells) != len(header):
            raise InputError(path, f"{where}: expected {len(header)} values ({','.join(header)}), got {len(cells)}")
        row = dict(zip(header, cells))
        label = _row_label(row, where, path)
        where = f"line {line_no} ({L.name_of(label)})"
        xyz = []
        for key in ("x", "y", "z"):
            try:
                xyz.append(float(row[key]))
            except ValueError:
                raise InputError(path, f"{where}: {key} is not a number ({row[key]!r})") from None
        if not all(math.isfinite(v) for v in xyz):
            raise InputError(path, f"{where}: coordinates must be finite numbers, got {xyz}")
        if label in seen:
            raise InputError(path, f"{where}: vertebra {L.name_of(label)} appears twice (also line {seen[label]})")
        seen[label] = line_no
        p = np.asarray(xyz)
        points[label] = LPS_TO_RAS @ p if system == "RAS" else p
        conf_cell = row.get("confidence", "").strip()
        if conf_cell:
            try:
                confidence[label] = float(conf_cell)
            except ValueError:
                raise InputError(path, f"{where}: confidence is not a number ({conf_cell!r})") from None
    if header is None:
        raise InputError(path, "has no header line (expected label,name,x,y,z)")
    return Centroids(points, confidence)


def csv_text(centroids: Centroids, coordinate_system: str = "LPS") -> str:
    """The CSV text of ``centroids`` (a confidence column only if some centroid has one)."""
    system = coordinate_system.upper()
    points = centroids.ras() if system == "RAS" else dict(centroids.items())
    with_conf = bool(centroids.confidence)
    lines = [f"# coordinate_system: {system}", "label,name,x,y,z" + (",confidence" if with_conf else "")]
    for label in centroids.labels:
        cells = [str(label), L.name_of(label), *(repr(float(v)) for v in points[label])]
        if with_conf:
            conf = centroids.confidence_of(label)
            cells.append("" if conf is None else repr(conf))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"
