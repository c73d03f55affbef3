"""``spineseg series FOLDER``: the DICOM series of a folder, what each is, and which a run would take.

Reads headers only (no pixel data, no torch), so a user can pick ``--series UID`` before a long run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", type=Path, help="folder holding DICOM files (subfolders are not searched)")
    p.add_argument("--modality", default="CT", help="the modality a run's pipeline wants (default CT; MR for mr-t2w)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per series) instead of text")


def describe(folder: Path, modality: str | None) -> list[dict[str, Any]]:
    """One record per series: UID, number, description, modality, image type, slices, problem, taken."""
    from ..io.dicom_series import choose_series, list_series, slice_problem

    try:
        taken, why = choose_series(folder, None, modality)
    except InputError as exc:
        taken, why = None, str(exc)
    return [
        {
            "uid": s.uid,
            "number": s.number,
            "description": s.description,
            "modality": s.modality,
            "image_type": s.image_type,
            "slices": len(s.slices),
            "problem": slice_problem(s),
            "taken": taken is not None and s.uid == taken.uid,
            "why": why if taken is not None and s.uid == taken.uid else None,
        }
        for s in list_series(folder)
    ]


def run(args: argparse.Namespace) -> int:
    folder = args.folder.expanduser()
    if not folder.is_dir():
        raise InputError(folder, "is not a folder; pass the folder that holds the DICOM files")
    rows = describe(folder, args.modality)
    if not rows:
        raise InputError(folder, "folder holds no DICOM series (subfolders are not searched)")
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        mark = "*" if row["taken"] else " "
        desc = f" {row['description']!r}" if row["description"] else ""
        number = f"series {row['number']}" if row["number"] is not None else "series"
        print(
            f"{mark} {row['uid'] or '(no UID)'}: {number}{desc}, {row['modality'] or '?'}, "
            f"{row['image_type'] or '?'}, {row['slices']} slices"
        )
        if row["problem"]:
            print(f"    refused: {row['problem']}")
        if row["why"]:
            print(f"    taken by `spineseg run` for {args.modality.upper()}: {row['why']}")
    if not any(r["taken"] for r in rows):
        print("  none would be taken; choose one with --series UID")
    return 0
