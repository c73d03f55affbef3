"""Atomic file writes: a reader sees the old file or the complete new one, never half a file.

A batch run can be killed at any moment and resumed; an output that exists is complete. Every
writer goes through :func:`atomic_path`: write to a hidden temporary file in the target's own
folder (same file system, so :func:`os.replace` is atomic), fsync it, then replace the target.
If writing fails, the temporary file is removed and an existing target is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import InputError

#: Multi-part extensions kept at the end of temporary names, so that writers which pick the
#: format from the name (SimpleITK) still see it: ``.L1.tmp-ab12.nii.gz``.
_DOUBLE_SUFFIXES = (".nii.gz", ".mrk.json", ".seg.nrrd", ".tar.gz")


def full_suffix(path: str | os.PathLike) -> str:
    """The extension that names the format: ``.nii.gz`` for ``a.nii.gz``, ``.nrrd`` for ``b.nrrd``."""
    name = Path(path).name.lower()
    for s in _DOUBLE_SUFFIXES:
        if name.endswith(s) and len(name) > len(s):
            return Path(path).name[-len(s) :]
    return Path(path).suffix


def _new_file_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give (mkstemp makes 0600 files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The caller writes the whole file to the yielded path (with any library); the temporary
    name ends with the same extension(s) as ``path``. On an exception the temporary file is
    removed, the exception propagates and an existing ``path`` is unchanged.
    """
    target = Path(path).expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(target, f"cannot write: folder {folder} does not exist")
    if target.is_dir():
        raise InputError(target, "cannot write: a folder of that name exists")
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name[: -len(full_suffix(target)) or None]}.tmp-",
            suffix=full_suffix(target),
            dir=folder,
        )
    except OSError as e:
        raise InputError(target, f"cannot write in folder {folder}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        mode = target.stat().st_mode & 0o7777 if target.exists() else _new_file_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(folder)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """``open(path, mode)`` that only replaces ``path`` once the ``with`` block completes.

    ``mode`` is ``"w"`` (text, UTF-8, ``\\n`` line ends) or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        if mode == "w":
            with open(tmp, "w", encoding=encoding, newline="\n") as f:
                yield f
                f.flush()
        else:
            with open(tmp, "wb") as f:
                yield f
                f.flush()


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8); returns the path."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_json_atomic(obj: Any, path: str | os.PathLike, *, indent: int | None = 2, allow_nan: bool = False) -> Path:
    """Write ``obj`` as JSON atomically; returns the path.

    The object is serialised before the file is touched, so an object that cannot be written
    never leaves a file behind. NaN and infinity are not JSON and are refused (``ValueError``)
    unless ``allow_nan``: write ``None`` (null) for a missing value instead.
    """
    text = json.dumps(obj, indent=indent, allow_nan=allow_nan) + "\n"
    return write_text_atomic(text, path)
