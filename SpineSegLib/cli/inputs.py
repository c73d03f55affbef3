"""What ``spineseg run`` accepts as INPUT: image files, DICOM folders, folders of images, VerSe/BIDS trees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..bids import case_name, is_image_file
from ..errors import InputError


@dataclass(frozen=True)
class InputCase:
    name: str
    path: Path  # an image file or a DICOM series folder


def _looks_like_dicom_folder(folder: Path) -> bool:
    for p in folder.iterdir():
        if p.is_file() and not p.name.startswith("."):
            if p.suffix.lower() == ".dcm":
                return True
            try:
                with open(p, "rb") as f:
                    head = f.read(132)
                if head[128:132] == b"DICM":
                    return True
            except OSError:
                continue
    return False


def discover(paths: list[Path]) -> list[InputCase]:
    """Expand the command-line inputs into cases, in a stable order, each case name unique."""
    cases: list[InputCase] = []
    for path in paths:
        if not path.exists():
            raise InputError(path, "input not found")
        if not (path.is_file() or path.is_dir()):
            raise InputError(path, "is not a regular file or folder (a device, pipe or socket); pass an image file")
        if path.is_file():
            if not is_image_file(path):
                from ..io.images import _is_dicom_file

                if _is_dicom_file(path):
                    raise InputError(path, "is a single DICOM file; pass the folder that holds the DICOM series")
                raise InputError(path, "not an image file SpineSeg reads (.nii.gz, .nii, .nrrd, .mha, .mhd)")
            cases.append(InputCase(case_name(path), path))
        elif _looks_like_dicom_folder(path):
            cases.append(InputCase(path.name, path))
        else:
            raw = path / "rawdata"
            root = raw if raw.is_dir() else path
            found = sorted(p for p in root.rglob("*") if is_image_file(p) and "derivatives" not in p.parts)
            dicom_dirs = sorted({p for p in root.rglob("*") if p.is_dir() and _looks_like_dicom_folder(p)})
            if not found and not dicom_dirs:
                raise InputError(path, "folder holds no image files and no DICOM series")
            cases += [InputCase(case_name(p), p) for p in found]
            cases += [InputCase(d.name, d) for d in dicom_dirs]
    seen: dict[str, Path] = {}
    for c in cases:
        if c.name in seen and seen[c.name] != c.path:
            raise InputError(c.path, f"case name {c.name!r} is also the name of {seen[c.name]}; outputs would collide")
        seen[c.name] = c.path
    return list({c.name: c for c in cases}.values())
