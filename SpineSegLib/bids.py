"""VerSe/BIDS file names: where a case's image, masks and centroids live.

VerSe layout (and what ``spineseg phantom`` writes)::

    ROOT/rawdata/sub-<id>/sub-<id>_ct.nii.gz            (MR: _T2w.nii.gz)
    ROOT/derivatives/sub-<id>/sub-<id>_seg-vert_msk.nii.gz
    ROOT/derivatives/sub-<id>/sub-<id>_seg-subreg_msk.nii.gz
    ROOT/derivatives/sub-<id>/sub-<id>_seg-subreg_ctd.json   (vertebral-body centroids, VerSe format)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
#: BIDS modality suffixes of images we read, lower case.
MODALITY_SUFFIXES = ("ct", "t2w", "t1w", "mr", "mri")

_SUFFIX_RE = re.compile(r"_(?:" + "|".join(MODALITY_SUFFIXES) + r")$", re.IGNORECASE)


def strip_image_extension(name: str) -> str:
    low = name.lower()
    for ext in IMAGE_EXTENSIONS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_EXTENSIONS)


def case_name(path: str | Path) -> str:
    """Case name of an input: ``sub-verse004_ct.nii.gz`` -> ``sub-verse004``; a folder -> its name."""
    p = Path(path)
    stem = strip_image_extension(p.name)
    return _SUFFIX_RE.sub("", stem) or stem


@dataclass(frozen=True)
class CasePaths:
    """The files of one case in a VerSe/BIDS tree."""

    image: Path
    vertebra_mask: Path
    subregion_mask: Path
    centroids: Path
    sidecar: Path


def case_paths(root: str | Path, subject: str, modality: str = "ct") -> CasePaths:
    """Paths of subject ``subject`` (without ``sub-``) under ``root``; modality "ct" or "mr" (T2w)."""
    root = Path(root)
    sub = subject if subject.startswith("sub-") else f"sub-{subject}"
    suffix = {"ct": "ct", "mr": "T2w"}[modality]
    raw = root / "rawdata" / sub
    der = root / "derivatives" / sub
    return CasePaths(
        image=raw / f"{sub}_{suffix}.nii.gz",
        vertebra_mask=der / f"{sub}_seg-vert_msk.nii.gz",
        subregion_mask=der / f"{sub}_seg-subreg_msk.nii.gz",
        centroids=der / f"{sub}_seg-subreg_ctd.json",
        sidecar=der / f"{sub}_phantom.json",
    )


def output_names(case: str) -> dict[str, str]:
    """File names SpineSeg writes for a processed case (VerSe naming)."""
    return {
        "labels": f"{case}_seg-vert_msk.nii.gz",
        "semantic": f"{case}_seg-spine_msk.nii.gz",  # methods with a semantic stage (SPINEPS ids)
        "centroids": f"{case}_ctd.json",
        "snapshot": f"{case}_snp.png",
        "timings": f"{case}_timings.json",
        "heatmaps": f"{case}_heatmaps.nii.gz",
        "measurements": f"{case}_measurements.json",
        "measurements_csv": f"{case}_measurements.csv",
        "measurements_sr": f"{case}_measurements.dcm",
    }
