"""Checks of NIfTI files for what ITK's reader hides: truncation, NaN/infinite voxels, zero spacing.

ITK's NIfTI reader fills the missing part of a truncated ``.nii`` / ``.nii.gz`` (an
interrupted download or copy) without complaint, and reads NaN and infinite float voxels as
0; the NRRD and MetaImage readers do neither. So for NIfTI we compare the data size the
header promises with what the file holds, and scan float data for non-finite values. ITK also
reads a zero voxel size (pixdim) as 1 mm, so a broken header gives a silently wrong geometry.
Hand-written because neither ITK nor a library we ship exposes these checks.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CHUNK = 1 << 22
_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 / float64


@dataclass(frozen=True)
class _Header:
    endian: str
    datatype: int
    vox_offset: int
    data_bytes: int
    pixdim: tuple[float, ...] = ()  # the spatial voxel sizes pixdim[1..3] (fewer for 1D/2D data)
    affine_problem: str | None = None  # a qform/sform in use with non-finite or absurd values

    @property
    def total(self) -> int:
        return self.vox_offset + self.data_bytes


class _BadHeader(ValueError):
    """A header field no reader can use (the message says which)."""


def _header(raw: bytes) -> _Header | None:
    """The parts of a NIfTI-1 or NIfTI-2 header we need; None if ``raw`` is not one."""
    for endian in "<>":
        if len(raw) >= 348 and struct.unpack_from(endian + "i", raw, 0)[0] == 348:
            dims = struct.unpack_from(endian + "8h", raw, 40)
            datatype, bitpix = struct.unpack_from(endian + "2h", raw, 70)
            offset = struct.unpack_from(endian + "f", raw, 108)[0]
            if not (np.isfinite(offset) and 0 <= offset < 2**31):
                raise _BadHeader(f"has an invalid data offset (vox_offset {offset:g}) in its NIfTI header")
            vox_offset = int(offset)
            pixdim = struct.unpack_from(endian + "8f", raw, 76)
            codes = struct.unpack_from(endian + "2h", raw, 252)
            quatern = struct.unpack_from(endian + "6f", raw, 256)
            srow = struct.unpack_from(endian + "12f", raw, 280)
            break
        if len(raw) >= 540 and struct.unpack_from(endian + "i", raw, 0)[0] == 540:
            datatype, bitpix = struct.unpack_from(endian + "2h", raw, 12)
            dims = struct.unpack_from(endian + "8q", raw, 16)
            vox_offset = struct.unpack_from(endian + "q", raw, 168)[0]
            pixdim = struct.unpack_from(endian + "8d", raw, 104)
            codes = struct.unpack_from(endian + "2i", raw, 344)
            quatern = struct.unpack_from(endian + "6d", raw, 352)
            srow = struct.unpack_from(endian + "12d", raw, 400)
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0 or any(d < 0 for d in dims[1 : ndim + 1]):
        return None
    n = 1
    for d in dims[1 : ndim + 1]:
        n *= max(int(d), 1)
    spatial = tuple(float(v) for v in pixdim[1 : min(ndim, 3) + 1])
    return _Header(
        endian,
        int(datatype),
        max(int(vox_offset), 348),
        n * bitpix // 8,
        spatial,
        _affine_problem(codes, quatern, srow),
    )


#: Largest absolute value (mm) a qform offset or sform entry may have: beyond it the header is garbage.
_AFFINE_LIMIT = 1e6


def _affine_problem(codes, quatern, srow) -> str | None:
    """Why the orientation in use (qform or sform code > 0) cannot be a scanner's: non-finite or absurd values.

    ITK's NIfTI reader hangs on some of those (an sform with infinite entries), so they are refused first.
    """
    qform_code, sform_code = codes
    for used, name, values in ((sform_code > 0, "sform (srow)", srow), (qform_code > 0, "qform (quatern)", quatern)):
        if used and not all(np.isfinite(v) and abs(v) <= _AFFINE_LIMIT for v in values):
            return f"has an invalid {name} orientation in its NIfTI header (non-finite or absurd values)"
    return None


def _gzip_trailer_size(path: Path) -> int:
    """The gzip trailer's uncompressed size (mod 2**32, last member only)."""
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return struct.unpack("<I", f.read(4))[0]


def _scan(path: Path, gz: bool, header: _Header) -> tuple[int, int]:
    """(bytes in the file, non-finite voxel values) reading the data once."""
    dtype = np.dtype(header.endian + _FLOAT_TYPES[header.datatype]) if header.datatype in _FLOAT_TYPES else None
    size = 0
    bad = 0
    rest = b""
    with gzip.open(path, "rb") if gz else open(path, "rb") as f:
        head = f.read(header.vox_offset)
        size += len(head)
        while chunk := f.read(_CHUNK):
            size += len(chunk)
            if dtype is not None:
                buf = rest + chunk
                usable = len(buf) - len(buf) % dtype.itemsize
                bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(buf[:usable], dtype))))
                rest = buf[usable:]
    return size, bad


def nifti_problem(path: str | os.PathLike) -> str | None:
    """A sentence saying what is wrong with the NIfTI file at ``path``, or None."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"  # by content: ITK reads a plain .nii named .nii.gz too
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            header = _header(f.read(540))
        if header is None:
            return None  # not a header we understand: ITK decides
        if header.affine_problem:
            return header.affine_problem
        if any(not (np.isfinite(v) and v > 0) for v in header.pixdim):
            sizes = ", ".join(f"{v:g}" for v in header.pixdim)
            return f"has a zero or invalid voxel size in its NIfTI header (pixdim {sizes}); ITK would read it as 1 mm"
        if header.datatype in _FLOAT_TYPES:
            size, bad = _scan(path, gz, header)
        else:
            bad = 0
            if not gz:
                size = path.stat().st_size
            else:
                # Trust a matching gzip trailer; only when it differs decompress to find the size.
                size = _gzip_trailer_size(path)
                if size != header.total % (1 << 32):
                    size, _ = _scan(path, gz, header)
    except _BadHeader as e:
        return str(e)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        return f"is truncated or damaged: its gzip stream is broken ({e})"
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    if size < header.total:
        return (
            f"is truncated: it holds {size} bytes but its NIfTI header needs {header.total}"
            " (an interrupted download or copy?)"
        )
    if bad:
        return f"has {bad} NaN or infinite voxel values; SpineSeg needs finite intensities"
    return None
