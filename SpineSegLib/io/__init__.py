"""File input and output: images, label maps and centroid files, written atomically.

Everything read is validated once here, with one clear :class:`~SpineSegLib.errors.InputError`
naming the file and the problem; what comes out is a ``SimpleITK.Image`` (LPS geometry) or
:class:`~SpineSegLib.centroids.Centroids` (LPS mm).
The readers and writers (SimpleITK) load on first use: the atomic writers alone import on a
training-only machine without SimpleITK.
"""

from .atomic import atomic_path, atomic_write, write_bytes_atomic, write_json_atomic, write_text_atomic

__all__ = [
    "as_labelmap",
    "atomic_path",
    "atomic_write",
    "check_volume",
    "describe",
    "read_centroids",
    "read_image",
    "read_labelmap",
    "require_labels",
    "write_bytes_atomic",
    "write_centroids",
    "write_image",
    "write_json_atomic",
    "write_labelmap",
    "write_text_atomic",
]

_LAZY = {"read_centroids": "centroid_files", "write_centroids": "centroid_files"}


def __getattr__(name: str):
    if name in __all__:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY.get(name, 'images')}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
