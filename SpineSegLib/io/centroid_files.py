"""Read and write vertebra centroid files; inside SpineSeg they are always :class:`Centroids` (LPS mm).

Formats, chosen by file name on writing and by name plus content on reading:

* VerSe ``*_ctd.json`` (:mod:`.verse_ctd`): voxel indices of the image's grid, so reading
  and writing need that image (``reference``: a ``sitk.Image`` or a :class:`Grid`).
* 3D Slicer markups ``*.mrk.json`` (:mod:`.markups_json`): LPS (default) or RAS mm.
* ``*.csv`` (:mod:`.centroid_csv`): LPS (default) or RAS mm, declared in a comment line.

A ``.json`` file is read as a Slicer markups file when it is an object with a "markups"
list, as a VerSe file when it is a list, whatever its exact name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from .. import labels as L
from ..centroids import Centroids
from ..errors import InputError
from ..geometry import Grid
from .atomic import write_json_atomic, write_text_atomic
from .centroid_csv import csv_text, parse_csv
from .markups_json import markups_document, parse_markups
from .verse_ctd import parse_verse, verse_document

_KINDS = "*_ctd.json (VerSe), *.mrk.json (3D Slicer markups) or *.csv"


def _grid_of(reference: sitk.Image | Grid | None) -> Grid | None:
    if reference is None or isinstance(reference, Grid):
        return reference
    if isinstance(reference, sitk.Image):
        return Grid.of(reference)
    raise TypeError(f"reference must be a SimpleITK image or a Grid, got {type(reference).__name__}")


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".mrk.json"):
        return "markups"
    if name.endswith(".json"):
        return "verse"
    if name.endswith(".csv"):
        return "csv"
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "is not a text file (not UTF-8)") from None
    except OSError as e:
        raise InputError(path, f"cannot be read: {e.strerror or e}") from None


def _load_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON: line {e.lineno} column {e.colno} ({e.msg})") from None


def _check_system(coordinate_system: str) -> str:
    system = str(coordinate_system).upper()
    if system not in ("LPS", "RAS"):
        raise ValueError(f"coordinate_system must be 'LPS' or 'RAS', got {coordinate_system!r}")
    return system


def read_centroids(path: str | os.PathLike, reference: sitk.Image | Grid | None = None) -> Centroids:
    """Read a centroid file as LPS millimetres.

    ``reference`` (the image the centroids belong to, or its grid) is required for VerSe
    files, which store voxel indices; Slicer markups and CSV files are in mm and ignore it.
    Raises :class:`InputError` naming the file and the entry for anything malformed.
    """
    p = Path(path).expanduser()
    grid = _grid_of(reference)
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, f"is a folder, not a centroid file ({_KINDS})")
    kind = _kind(p)
    if kind is None:
        raise InputError(p, f"unknown centroid file type; SpineSeg reads {_KINDS}")
    if kind == "csv":
        return parse_csv(_read_text(p), p)
    document = _load_json(p)
    if isinstance(document, dict) and "markups" in document:
        return parse_markups(document, p)
    if isinstance(document, list):
        if grid is None:
            raise InputError(
                p,
                "is a VerSe centroid file, which stores voxel indices of its image: "
                "reading it needs that image (reference) to convert them to millimetres",
            )
        return parse_verse(document, p, grid)
    if kind == "markups":
        return parse_markups(document, p)
    keys = ", ".join(repr(k) for k in list(document)[:5]) if isinstance(document, dict) else ""
    raise InputError(
        p,
        "is neither a VerSe centroid list nor a Slicer markups file"
        + (f" (a JSON object with keys {keys})" if keys else f" (a JSON {type(document).__name__})"),
    )


def write_centroids(
    centroids: Centroids,
    path: str | os.PathLike,
    reference: sitk.Image | Grid | None = None,
    coordinate_system: str = "LPS",
    flags: Mapping[int, Sequence[str]] | None = None,
) -> Path:
    """Write ``centroids`` atomically in the format the file name says; returns the path.

    ``flags`` (plausibility flags per label) are stored in VerSe files (an extra key per entry).

    VerSe files (``*.json`` but not ``*.mrk.json``) need ``reference`` and are written in its
    own axcodes; ``coordinate_system`` ("LPS" or "RAS") applies to markups and CSV files.
    """
    p = Path(path).expanduser()
    grid = _grid_of(reference)
    system = _check_system(coordinate_system)
    unknown = [k for k in centroids.labels if not L.is_known(k)]
    if unknown:
        raise ValueError(f"cannot write centroids of labels that are not VerSe vertebra ids: {unknown}")
    kind = _kind(p)
    if kind == "markups":
        return write_json_atomic(markups_document(centroids, system), p, indent=4)
    if kind == "csv":
        return write_text_atomic(csv_text(centroids, system), p)
    if kind == "verse":
        if grid is None:
            raise InputError(
                p, "the VerSe centroid format stores voxel indices: writing it needs the reference image or grid"
            )
        return write_json_atomic(verse_document(centroids, grid, flags), p, indent=None)
    raise InputError(p, f"unknown centroid file type; SpineSeg writes {_KINDS}")
