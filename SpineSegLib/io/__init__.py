"""File input and output: images, label maps and centroid files, written atomically.

Everything read is validated once here, with one clear :class:`~SpineSegLib.errors.InputError`
naming the file and the problem; what comes out is a ``SimpleITK.Image`` (LPS geometry) or
:class:`~SpineSegLib.centroids.Centroids` (LPS mm).
"""

from .atomic import atomic_path, atomic_write, write_bytes_atomic, write_json_atomic, write_text_atomic
from .centroid_files import read_centroids, write_centroids
from .images import (
    as_labelmap,
    check_volume,
    describe,
    read_image,
    read_labelmap,
    require_labels,
    write_image,
    write_labelmap,
)

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
