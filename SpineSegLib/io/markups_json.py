"""3D Slicer markups point lists (``*.mrk.json``) as vertebra centroids.

Schema: markups-schema-v1.0.3 (Slicer's ``vtkMRMLMarkupsJsonStorageNode``). Each control
point's ``label`` is the vertebra name (C1..L5, T13, L6, S, Co), its ``description`` the
confidence if there is one. Positions are in the markup's ``coordinateSystem`` ("LPS", the
schema default, or "RAS") and ``coordinateUnits`` ("mm", or "um"). Points whose
``positionStatus`` is not "defined" (placeholders with no position) are skipped with a warning.

We write one "Fiducial" markup as Slicer writes it: per-point ``orientation`` (identity in
RAS, so ``[-1, -0, -0, -0, -1, -0, 0, 0, 1]`` in an LPS file), ``associatedNodeID`` "" and
``positionStatus`` "defined"; Slicer loads such files as a point list.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .. import labels as L
from ..centroids import LPS_TO_RAS, Centroids
from ..errors import InputError

SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)
_VERTEBRA_NAMES = "C1-C7, T1-T13, L1-L6, S, Co"
# Slicer stores the orientation in the file's frame: identity in RAS, x and y rows negated in LPS.
_ORIENTATION = {
    "RAS": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    "LPS": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
}
_UNITS = {"mm": 1.0, "um": 1e-3}


def _units_scale(markup: dict[str, Any], where: str, path: Path) -> float:
    units = markup.get("coordinateUnits", "mm")
    if isinstance(units, list) and units:
        units = units[0]
    if not isinstance(units, str) or units not in _UNITS:
        raise InputError(path, f"{where}: coordinateUnits {units!r} is not 'mm' or 'um'")
    return _UNITS[units]


def _coordinate_system(markup: dict[str, Any], where: str, path: Path) -> str:
    system = markup.get("coordinateSystem", "LPS")  # the schema's default
    if not isinstance(system, str) or system.upper() not in ("LPS", "RAS"):
        raise InputError(path, f"{where}: coordinateSystem {system!r} is not 'LPS' or 'RAS'")
    return system.upper()


def _confidence(description: Any) -> float | None:
    try:
        value = float(description)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def parse_markups(document: Any, path: Path) -> Centroids:
    """Centroids (LPS mm) of the point-list markups of a parsed ``.mrk.json`` document."""
    if not isinstance(document, dict) or not isinstance(document.get("markups"), list):
        raise InputError(path, "is not a Slicer markups file: it has no 'markups' list")
    markups = document["markups"]
    points: dict[int, np.ndarray] = {}
    confidence: dict[int, float] = {}
    seen: dict[int, str] = {}
    other_types: list[str] = []
    n_lists = 0
    for m, markup in enumerate(markups, start=1):
        mwhere = f"markup {m}" if len(markups) > 1 else "markup"
        if not isinstance(markup, dict):
            raise InputError(path, f"{mwhere}: expected an object")
        mtype = markup.get("type")
        if mtype != "Fiducial":
            other_types.append(str(mtype))
            continue
        n_lists += 1
        system = _coordinate_system(markup, mwhere, path)
        scale = _units_scale(markup, mwhere, path)
        control_points = markup.get("controlPoints", [])
        if not isinstance(control_points, list):
            raise InputError(path, f"{mwhere}: 'controlPoints' must be a list")
        for j, cp in enumerate(control_points, start=1):
            where = f"{mwhere} control point {j}" if len(markups) > 1 else f"control point {j}"
            if not isinstance(cp, dict):
                raise InputError(path, f"{where}: expected an object")
            name = cp.get("label", "")
            try:
                label = L.id_of(name) if isinstance(name, str) else None
            except KeyError:
                label = None
            if label is None:
                raise InputError(path, f"{where}: label {name!r} is not a vertebra name ({_VERTEBRA_NAMES})")
            where = f"{where} ({name})"
            status = cp.get("positionStatus", "defined")
            if status != "defined" or "position" not in cp:
                warnings.warn(
                    f"{path}: {where} has no position (positionStatus {status!r}); skipped", UserWarning, stacklevel=3
                )
                continue
            pos = cp["position"]
            if (
                not isinstance(pos, list)
                or len(pos) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos)
            ):
                raise InputError(path, f"{where}: position must be a list of 3 numbers, got {pos!r}")
            p = np.asarray(pos, dtype=float) * scale
            if not np.all(np.isfinite(p)):
                raise InputError(path, f"{where}: position must be finite, got {pos}")
            if label in seen:
                raise InputError(path, f"{where}: vertebra {L.name_of(label)} appears twice (also {seen[label]})")
            seen[label] = where
            points[label] = LPS_TO_RAS @ p if system == "RAS" else p
            conf = _confidence(cp.get("description"))
            if conf is not None:
                confidence[label] = conf
    if n_lists == 0:
        found = f"; it holds {', '.join(other_types)} markups" if other_types else "; it holds no markups"
        raise InputError(path, f"has no point list (markup type 'Fiducial'){found}")
    return Centroids(points, confidence)


def markups_document(centroids: Centroids, coordinate_system: str = "LPS") -> dict[str, Any]:
    """A Slicer markups document holding one point list with a point per vertebra."""
    system = coordinate_system.upper()
    points = centroids.ras() if system == "RAS" else dict(centroids.items())
    control_points = []
    for n, label in enumerate(centroids.labels, start=1):
        conf = centroids.confidence_of(label)
        control_points.append(
            {
                "id": str(n),
                "label": L.name_of(label),
                "description": "" if conf is None else repr(conf),
                "associatedNodeID": "",
                "position": [float(v) for v in points[label]],
                "orientation": list(_ORIENTATION[system]),
                "selected": True,
                "locked": False,
                "visibility": True,
                "positionStatus": "defined",
            }
        )
    return {
        "@schema": SCHEMA,
        "markups": [
            {
                "type": "Fiducial",
                "coordinateSystem": system,
                "coordinateUnits": "mm",
                "locked": False,
                "fixedNumberOfControlPoints": False,
                "labelFormat": "%N-%d",
                "lastUsedControlPointNumber": len(control_points),
                "controlPoints": control_points,
                "measurements": [],
                "display": {
                    "visibility": True,
                    "opacity": 1.0,
                    "color": [0.4, 1.0, 1.0],
                    "selectedColor": [1.0, 0.5, 0.5],
                    "propertiesLabelVisibility": False,
                    "pointLabelsVisibility": True,
                    "textScale": 3.0,
                    "glyphType": "Sphere3D",
                    "glyphScale": 3.0,
                    "glyphSize": 5.0,
                    "useGlyphScale": True,
                },
            }
        ],
    }
