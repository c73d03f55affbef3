"""Read and write 3D images and label maps, with one clear message for every bad input.

Formats: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``,
``.mhd``) and a folder holding a DICOM series. Everything goes through SimpleITK, so the
geometry (origin, spacing, oblique direction) is ITK's, in LPS millimetres. Writing is
atomic (:mod:`.atomic`) and compressed, to single-file formats only (a two-file format such
as ``.mhd``/``.raw`` cannot be replaced atomically).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..geometry import orientation_code
from .atomic import atomic_path, full_suffix
from .metaimage_check import metaimage_problem
from .nifti_check import nifti_problem

READ_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
_FORMAT_NAMES = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}
_SUPPORTED = "NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) or a folder with a DICOM series"
#: Largest distance from an integer that a float-stored label may have (rounding noise).
LABEL_ROUNDING_TOLERANCE = 1e-3
_SLAB = 16  # slices per chunk when converting big float label maps (bounded extra memory)


# ----------------------------------------------------------------------------------------
# Descriptions and checks


def describe(image: sitk.Image) -> str:
    """One line for messages and logs: size, spacing, orientation, pixel type."""
    size = "x".join(str(s) for s in image.GetSize())
    spacing = "x".join(f"{s:.4g}" for s in image.GetSpacing())
    parts = [f"{size} voxels", f"spacing {spacing} mm"]
    if image.GetDimension() == 3:
        parts.append(f"orientation {orientation_code(image)}")
    pixel = image.GetPixelIDTypeAsString()
    if image.GetNumberOfComponentsPerPixel() > 1 and "vector" not in pixel:
        pixel += f" x{image.GetNumberOfComponentsPerPixel()}"
    parts.append(pixel)
    return ", ".join(parts)


def _shape_problem(dimension: int, size: tuple[int, ...], components: int, pixel_id: int) -> str | None:
    """Why an image of this shape is not one 3D scalar volume (None if it is)."""
    size_txt = "x".join(str(s) for s in size)
    if dimension == 2:
        return f"is 2D ({size_txt}); SpineSeg needs a 3D volume"
    if dimension > 3:
        extra = "x".join(str(s) for s in size[3:])
        return (
            f"is {dimension}D ({size_txt}: {extra} volumes, e.g. a time series or several channels); "
            "SpineSeg needs one 3D volume: extract a single volume first"
        )
    if dimension != 3:
        return f"has {dimension} dimensions; SpineSeg needs a 3D volume"
    if components > 1:
        return (
            f"has {components} components per voxel (a vector, RGB or multi-channel image); "
            "SpineSeg needs one 3D volume with one value per voxel"
        )
    if pixel_id in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        return "has complex-valued voxels; SpineSeg needs one 3D volume of real values"
    if 1 in size:
        return f"is a single slice ({size_txt}); SpineSeg needs a 3D volume"
    return None


#: Voxel spacing above this (mm) is refused: a vertebra (20-40 mm tall) would be one or two voxels, and a
#: wrong header (a spacing in cm read as mm, 20 mm) would make every network grid huge.
MAX_SPACING_MM = 10.0
#: A field of view longer than this (mm) along any axis is not one body: the header's spacing is wrong.
MAX_EXTENT_MM = 2500.0


def _spacing_problem(spacing: tuple[float, ...], size: tuple[int, ...] = ()) -> str | None:
    sp = ", ".join(f"{s:g}" for s in spacing)
    if any(not np.isfinite(s) or s <= 0 for s in spacing):
        return f"has zero, negative or invalid voxel spacing ({sp}); the header is broken"
    if max(spacing) > MAX_SPACING_MM:
        return (
            f"has a voxel spacing of {max(spacing):g} mm ({sp}), above {MAX_SPACING_MM:g} mm: a vertebra would be one "
            "or two voxels tall; is the header's spacing wrong (cm instead of mm)?"
        )
    extent = [n * s for n, s in zip(size, spacing)]
    if extent and max(extent) > MAX_EXTENT_MM:
        return (
            f"spans {max(extent):.0f} mm ({' x '.join(f'{e:.0f}' for e in extent)} mm), more than a body "
            f"({MAX_EXTENT_MM:g} mm): is the header's spacing wrong?"
        )
    return None


#: Bytes of working memory per input voxel a run needs (the image, its float copy, the label map, the
#: network grids): the speed benchmark's peak was 2.6 GB for a 512x512x600 CT (17 bytes per voxel); 24 is margin.
BYTES_PER_VOXEL = 24


def machine_memory_bytes() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _memory_problem(size: tuple[int, ...]) -> str | None:
    voxels = int(np.prod([int(s) for s in size], dtype=np.int64))
    need = voxels * BYTES_PER_VOXEL
    have = machine_memory_bytes()
    if have is not None and need > have:
        return (
            f"has {voxels / 1e6:.0f} million voxels ({'x'.join(str(s) for s in size)}): a run would need about "
            f"{need / 2**30:.1f} GiB of memory, more than this machine has ({have / 2**30:.1f} GiB); crop or "
            "resample it first"
        )
    return None


def _finite_problem(image: sitk.Image) -> str | None:
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return None
    arr = sitk.GetArrayViewFromImage(image)
    bad = 0
    for k in range(0, arr.shape[0], _SLAB):
        bad += int(np.count_nonzero(~np.isfinite(arr[k : k + _SLAB])))
    if bad:
        return f"has {bad} NaN or infinite voxel values; SpineSeg needs finite intensities"
    return None


def check_volume(image: sitk.Image, source: str | os.PathLike | None = None) -> sitk.Image:
    """Raise :class:`InputError` naming ``source`` unless ``image`` is one valid 3D scalar volume.

    For images that did not come from :func:`read_image` (e.g. handed over by Slicer).
    Returns the image.
    """
    problem = (
        _shape_problem(image.GetDimension(), image.GetSize(), image.GetNumberOfComponentsPerPixel(), image.GetPixelID())
        or _spacing_problem(image.GetSpacing(), image.GetSize())
        or _finite_problem(image)
    )
    if problem:
        raise InputError(source, problem)
    return image


# ----------------------------------------------------------------------------------------
# Reading


def _dicom_series(folder: Path, series: str | None = None) -> list[str]:
    """File names of the series a run takes from ``folder`` (:func:`.dicom_series.choose_series`), in order."""
    from .dicom_series import choose_series

    return choose_series(folder, series)[0].files


def _is_dicom_file(path: Path) -> bool:
    """A DICOM Part 10 file has "DICM" after its 128-byte preamble."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _itk_reason(err: Exception) -> str:
    """The informative part of an ITK exception text (its last line, without the prefix)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip() and not ln.startswith("Exception thrown")]
    reason = lines[-1] if lines else str(err)
    for prefix in ("sitk::ERROR: ", "ITK ERROR: "):
        reason = reason.split(prefix, 1)[-1]
    return reason


def _read_file(path: Path, suffix: str) -> sitk.Image:
    fmt = _FORMAT_NAMES[suffix.lower()]
    # Before ITK reads the header: some broken NIfTI and MetaImage headers make ITK hang.
    early = nifti_problem(path) if fmt == "NIfTI" else metaimage_problem(path) if fmt == "MetaImage" else None
    if early:
        raise InputError(path, early)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        if "Unable to determine ImageIO reader" in str(e):
            raise InputError(path, f"is not a readable {fmt} image (damaged, empty or not an image file)") from None
        raise InputError(path, f"cannot be read as a {fmt} image: {_itk_reason(e)}") from None
    problem = (
        _shape_problem(reader.GetDimension(), reader.GetSize(), reader.GetNumberOfComponents(), reader.GetPixelID())
        or _spacing_problem(reader.GetSpacing(), reader.GetSize())
        or _memory_problem(reader.GetSize())
    )
    if problem:
        raise InputError(path, problem)
    try:
        return reader.Execute()
    except RuntimeError as e:
        reason = _itk_reason(e)
        # MetaIO reports a short read as "No such file or directory": say what it means.
        detail = "" if "No such file or directory" in reason else f" ({reason})"
        raise InputError(path, f"is damaged or truncated: its {fmt} image data cannot be read{detail}") from None


def dicom_modality(folder: str | os.PathLike, series: str | None = None) -> str | None:
    """The Modality tag (0008,0060) of the series a run takes from ``folder`` ("CT", "MR", ...), or None."""
    from .dicom_series import choose_series

    try:
        return choose_series(Path(folder), series)[0].modality or None
    except (InputError, RuntimeError):
        return None


def _read_dicom(folder: Path, series: str | None = None, modality: str | None = None) -> sitk.Image:
    from .dicom_series import choose_series, read_series

    return read_series(folder, choose_series(folder, series, modality)[0])


def read_image(path: str | os.PathLike, series: str | None = None, modality: str | None = None) -> sitk.Image:
    """Read one 3D scalar volume (any pixel type) with its geometry.

    ``path`` is a NIfTI, NRRD or MetaImage file, or a folder holding DICOM series: the one with UID
    ``series``, else the one :func:`.dicom_series.choose_series` takes (``modality`` first, ORIGINAL,
    regular slices, most slices); missing, duplicate or irregular slices are refused. Raises
    :class:`InputError` naming the file for anything SpineSeg cannot use: missing, unreadable, truncated, 2D, 4D,
    multi-component, zero/negative or implausible spacing (above 10 mm, a field of view longer than a
    body), more voxels than the machine has memory for, NaN/infinite voxels.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        image = _read_dicom(p, series, modality)
    else:
        suffix = full_suffix(p).lower()
        if suffix not in READ_SUFFIXES:
            if _is_dicom_file(p):
                raise InputError(p, "is a single DICOM file; pass the folder that holds the DICOM series")
            raise InputError(p, f"unsupported image format {suffix!r}; SpineSeg reads {_SUPPORTED}")
        image = _read_file(p, suffix)
    return check_volume(image, p)


def _label_pixels(image: sitk.Image) -> tuple[sitk.Image | None, str | None]:
    """(uint8/uint16 label map, None) or (None, why it is not a label map)."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        return None, "has several components per voxel"
    arr = sitk.GetArrayViewFromImage(image)
    if arr.dtype.kind not in "iuf":
        return None, f"has {image.GetPixelIDTypeAsString()} voxels, not integer labels"
    is_float = arr.dtype.kind == "f"
    lo, hi = 0.0, 0.0
    for k in range(0, arr.shape[0], _SLAB):
        slab = arr[k : k + _SLAB]
        if is_float:
            if not np.all(np.isfinite(slab)):
                return None, "has NaN or infinite values; labels must be integers"
            off = np.abs(slab - np.round(slab))
            if off.max(initial=0.0) > LABEL_ROUNDING_TOLERANCE:
                kji = np.unravel_index(int(np.argmax(off)), slab.shape)
                ijk = (int(kji[2]), int(kji[1]), int(kji[0] + k))
                return None, (
                    f"has non-integer values (e.g. {float(slab[kji]):g} at voxel {ijk}); "
                    "labels must be integers (is this an intensity image?)"
                )
        if slab.size:
            lo, hi = min(lo, float(slab.min())), max(hi, float(slab.max()))
    if round(lo) < 0:
        return None, f"has negative labels (minimum {round(lo)}); labels must be 0 (background) or positive"
    if round(hi) > 65535:
        return None, f"has labels up to {round(hi)}; SpineSeg supports label values up to 65535"
    dtype = np.uint8 if round(hi) <= 255 else np.uint16
    if arr.dtype == dtype:
        return image, None
    out = np.empty(arr.shape, dtype)
    for k in range(0, arr.shape[0], _SLAB):
        slab = arr[k : k + _SLAB]
        out[k : k + _SLAB] = np.round(slab) if is_float else slab
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(image)
    return result, None


def as_labelmap(image: sitk.Image) -> sitk.Image:
    """The same label map as uint8 (max label <= 255) or uint16, geometry kept.

    Float-stored masks (VerSe ships float64 ones) are rounded. Raises ``ValueError`` for
    values further than 1e-3 from an integer, negative labels or labels above 65535.
    """
    result, problem = _label_pixels(image)
    if result is None:
        raise ValueError(f"label map {problem}")
    return result


def read_labelmap(path: str | os.PathLike) -> sitk.Image:
    """Read an integer label map (uint8 if all labels <= 255, else uint16); see :func:`as_labelmap`."""
    image = read_image(path)
    result, problem = _label_pixels(image)
    if result is None:
        raise InputError(Path(path).expanduser(), f"is not a label map: it {problem}")
    return result


def require_labels(image: sitk.Image, path: str | os.PathLike | None = None) -> sitk.Image:
    """Raise :class:`InputError` if the label map is empty (all zero); returns the image."""
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    if stats.GetMaximum() == 0 and stats.GetMinimum() == 0:
        raise InputError(path, "label map is empty (all voxels are 0): no vertebra is labelled")
    return image


# ----------------------------------------------------------------------------------------
# Writing


def write_image(image: sitk.Image, path: str | os.PathLike) -> Path:
    """Write ``image`` atomically and compressed to ``.nii.gz``, ``.nii``, ``.nrrd`` or ``.mha``."""
    p = Path(path).expanduser()
    suffix = full_suffix(p).lower()
    if suffix not in WRITE_SUFFIXES:
        raise InputError(p, f"cannot write images as {suffix!r}; use one of {', '.join(WRITE_SUFFIXES)}")
    with atomic_path(p) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=True)
        except RuntimeError as e:
            raise InputError(p, f"cannot be written: {_itk_reason(e)}") from None
    return p


def write_labelmap(image: sitk.Image, path: str | os.PathLike) -> Path:
    """Write a label map as uint8/uint16 (see :func:`as_labelmap`), atomically and compressed."""
    return write_image(as_labelmap(image), path)
