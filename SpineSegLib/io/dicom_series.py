"""The series of a DICOM folder: what each holds, which one a run takes and why, and whether its
slices make one regular volume.

A folder from a PACS export often holds several series (a scout, thin and thick reconstructions, a
dose report, an MR's other sequences). Taking "the largest" without a word can pick a blank or
derived series, and ITK stacks slices as if they were evenly spaced, so a missing slice moves every
vertebra below it. Here a folder's series are listed with their headers, one is chosen by rules a
user can read (``--series UID`` overrides them), and the chosen one is refused when its slices are
missing, duplicated, unreadable, sheared (gantry tilt) or irregularly spaced.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

#: A step between slice positions further than this share from the series' usual step is irregular.
STEP_TOLERANCE = 0.1
#: Slices closer than this (mm) along the slice normal are duplicates.
DUPLICATE_MM = 1e-3
#: In-plane drift (mm) of consecutive slice origins beyond which the series is sheared (gantry tilt).
SHEAR_MM = 0.05

_TAGS = {
    "uid": "0020|000e",
    "modality": "0008|0060",
    "image_type": "0008|0008",
    "description": "0008|103e",
    "number": "0020|0011",
    "position": "0020|0032",
    "orientation": "0020|0037",
    "rows": "0028|0010",
    "cols": "0028|0011",
}


@dataclass(frozen=True)
class Slice:
    """The header fields of one file that place it in its volume."""

    file: str
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    shape: tuple[int, int]


@dataclass(frozen=True)
class Series:
    """One series of a folder: its identity, what it is, and its slices sorted along the slice normal.

    Args:
        uid: the series id the folder's reader groups by (the Series Instance UID where the files have one).
        modality: the Modality tag (``"CT"``, ``"MR"``, ...), upper case; ``""`` when absent.
        image_type: the Image Type tag (e.g. ``ORIGINAL\\PRIMARY\\AXIAL``), upper case.
        description: the Series Description tag.
        number: the Series Number tag, or None.
        slices: the slices, sorted by position along the slice normal where every slice has one.
    """

    uid: str
    modality: str
    image_type: str
    description: str
    number: int | None
    slices: tuple[Slice, ...]

    @property
    def files(self) -> list[str]:
        return [s.file for s in self.slices]

    @property
    def original(self) -> bool:
        return self.image_type.startswith("ORIGINAL")

    @property
    def localizer(self) -> bool:
        return "LOCALIZER" in self.image_type or "SCOUT" in self.image_type

    def summary(self) -> str:
        """One line for messages: number, description, modality, slice count, UID."""
        parts = [f"series {self.number}" if self.number is not None else "series"]
        if self.description:
            parts.append(repr(self.description))
        kind = ", ".join(x for x in (self.modality or "no modality", self.image_type.replace("\\", "/")) if x)
        uid = f"UID {self.uid}" if self.uid else "no Series Instance UID"
        return f"{' '.join(parts)} ({kind}, {len(self.slices)} slices, {uid})"


def _floats(text: str, n: int) -> tuple[float, ...] | None:
    try:
        values = tuple(float(v) for v in text.split("\\"))
    except ValueError:
        return None
    return values if len(values) == n and all(np.isfinite(values)) else None


def _header(reader: sitk.ImageFileReader, key: str) -> str:
    tag = _TAGS[key]
    return reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""


def _read_slice(path: str) -> tuple[Slice, dict[str, str]] | None:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    fields = {key: _header(reader, key) for key in ("modality", "image_type", "description", "number")}
    size = reader.GetSize()
    return (
        Slice(
            file=path,
            position=_floats(_header(reader, "position"), 3),
            orientation=_floats(_header(reader, "orientation"), 6),
            shape=(int(size[1]), int(size[0])),
        ),
        fields,
    )


def _normal(orientation: tuple[float, ...]) -> np.ndarray:
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    n = np.cross(row, col)
    return n / max(float(np.linalg.norm(n)), 1e-12)


def _sorted(slices: list[Slice]) -> list[Slice]:
    """Slices by position along the normal (file order where a position or orientation is missing)."""
    if not slices or any(s.position is None or s.orientation is None for s in slices):
        return slices
    n = _normal(slices[0].orientation)
    return sorted(slices, key=lambda s: float(np.dot(s.position, n)))


def _signature(folder: Path) -> tuple:
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()))


def list_series(folder: str | os.PathLike) -> list[Series]:
    """Every series in ``folder`` (not its subfolders), largest first, slices sorted along the normal.

    Cached per folder content (names, sizes, times): a run asks several times (pipeline, reading, DICOM SEG).
    """
    folder = Path(folder).resolve()
    return list(_list_series(str(folder), _signature(folder)))


@functools.lru_cache(maxsize=8)
def _list_series(folder: str, signature: tuple) -> tuple[Series, ...]:
    out = []
    for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)):
        slices, first = [], None
        for name in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid):
            read = _read_slice(name)
            if read is None:
                continue
            slices.append(read[0])
            first = first or read[1]
        if not slices or first is None:
            continue
        try:
            number = int(float(first["number"])) if first["number"] else None
        except ValueError:
            number = None
        out.append(
            Series(
                uid=uid,
                modality=first["modality"].upper(),
                image_type=first["image_type"].upper(),
                description=first["description"],
                number=number,
                slices=tuple(_sorted(slices)),
            )
        )
    return tuple(sorted(out, key=lambda s: -len(s.slices)))


def unreadable_files(folder: str | os.PathLike, series: list[Series]) -> list[str]:
    """Files of ``folder`` that are DICOM (Part 10 preamble) but belong to none of ``series`` (damaged)."""
    from .images import _is_dicom_file

    listed = {os.path.realpath(f) for s in series for f in s.files}
    return sorted(
        p.name
        for p in Path(folder).iterdir()
        if p.is_file() and os.path.realpath(p) not in listed and _is_dicom_file(p)
    )


def slice_problem(series: Series) -> str | None:
    """Why the slices of ``series`` do not make one regular volume (None when they do)."""
    slices = series.slices
    if len(slices) < 2:
        return None
    if len({s.shape for s in slices}) > 1:
        sizes = sorted({f"{c}x{r}" for r, c in {s.shape for s in slices}})
        return f"its slices have different sizes ({', '.join(sizes)})"
    missing = [s for s in slices if s.position is None or s.orientation is None]
    if missing:
        return f"slice {Path(missing[0].file).name} has no valid Image Position/Orientation (Patient)"
    o0 = np.asarray(slices[0].orientation)
    if any(np.abs(np.asarray(s.orientation) - o0).max() > 1e-4 for s in slices):
        return "its slices have different orientations (a mixed or tilted series)"
    n = _normal(slices[0].orientation)
    pos = np.array([s.position for s in slices])
    along = pos @ n
    steps = np.diff(along)
    dup = np.nonzero(steps < DUPLICATE_MM)[0]
    if dup.size:
        i = int(dup[0])
        return (
            f"has {dup.size} duplicate slice position(s), e.g. {Path(slices[i].file).name} and "
            f"{Path(slices[i + 1].file).name} at {along[i]:.2f} mm"
        )
    drift = np.diff(pos - np.outer(along, n), axis=0)
    if np.linalg.norm(drift, axis=1).max() > SHEAR_MM:
        return "its slices are sheared (gantry tilt): SpineSeg needs slices stacked along their normal"
    step = float(np.median(steps))
    off = np.abs(steps - step) > STEP_TOLERANCE * step
    if not off.any():
        return None
    i = int(np.nonzero(off)[0][0])
    lost = round(float(np.sum(np.rint(steps[off] / step) - 1)))
    multiples = np.all(np.abs(steps[off] / step - np.rint(steps[off] / step)) <= STEP_TOLERANCE) and lost > 0
    if multiples:
        return (
            f"has {lost} missing slice(s): a gap of {steps[i]:.2f} mm between {Path(slices[i].file).name} and "
            f"{Path(slices[i + 1].file).name} where the slices are {step:.2f} mm apart"
        )
    return f"has irregular slice spacing: steps from {steps.min():.2f} to {steps.max():.2f} mm (usual {step:.2f} mm)"


def _listing(series: list[Series]) -> str:
    return "; ".join(s.summary() for s in series)


def choose_series(folder: str | os.PathLike, uid: str | None = None, modality: str | None = None) -> tuple[Series, str]:
    """The series a run takes from ``folder`` and why (one line).

    ``uid`` picks one by its UID (an error lists the folder's series when none has it). Otherwise, among
    the series of more than one slice that are not localizers: those of ``modality`` (e.g. ``"CT"``)
    first, then ORIGINAL before DERIVED, then those whose slices make a regular volume, then the most
    slices. Raises :class:`InputError` when the folder holds no usable series or the chosen one has
    missing, duplicate, unreadable or irregular slices.
    """
    folder = Path(folder)
    found = list_series(folder)
    if not found:
        raise InputError(
            folder, "folder holds no DICOM series (subfolders are not searched; pass the folder with the slices)"
        )
    if uid is not None:
        chosen = [s for s in found if s.uid == uid]
        if not chosen:
            raise InputError(folder, f"has no series with UID {uid}; its series: {_listing(found)}")
        series, why = chosen[0], "chosen with --series"
    else:
        volumes = [s for s in found if len(s.slices) > 1 and not s.localizer]
        if not volumes:
            raise InputError(
                folder,
                f"holds no DICOM series with more than one slice (SpineSeg needs a 3D volume): {_listing(found)}",
            )
        want = (modality or "").upper()
        problems = {s.uid: slice_problem(s) for s in volumes}

        def rank(s: Series) -> tuple:
            return (bool(want) and s.modality != want, not s.original, problems[s.uid] is not None, -len(s.slices))

        series = min(volumes, key=rank)
        if len(found) == 1:
            why = "the only series in the folder"
        else:
            rules = [f"{want} first" if want else "", "ORIGINAL first", "regular slices first", "most slices"]
            why = f"of {len(found)} series ({', '.join(r for r in rules if r)}; another with --series UID)"
    problem = slice_problem(series)
    damaged = unreadable_files(folder, found)
    if problem is not None and damaged:
        problem += f"; {len(damaged)} DICOM file(s) of the folder cannot be read (e.g. {damaged[0]})"
    if problem is not None:
        raise InputError(folder, f"its {series.summary()} {problem}; SpineSeg does not guess the missing geometry")
    return series, why


def read_series(folder: str | os.PathLike, series: Series) -> sitk.Image:
    """The volume of ``series`` (checked with :func:`slice_problem` by :func:`choose_series`)."""
    from .images import _itk_reason

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series.files)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise InputError(folder, f"its {series.summary()} cannot be read: {_itk_reason(e)}") from None
    if image.GetDimension() == 3 and image.GetSize()[2] == 1:
        raise InputError(folder, f"its {series.summary()} is a single slice; SpineSeg needs a 3D volume")
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    if stats.GetMinimum() == stats.GetMaximum():
        raise InputError(folder, f"its {series.summary()} is blank (every voxel is {stats.GetMinimum():g})")
    return image
