"""Training packs, the reading side: the index, and each item as a :class:`CachedCase`, without SimpleITK.

A pack (written by :mod:`.pack`) is a folder: ``index.json`` (stage, config, split, and per item
its grids and centroids) and one ``<item>.npz`` per item (``image``: int16 HU; ``labels``: uint8,
segmentation only). The .npz files are LZMA-compressed zips, which ``np.load`` reads; training
unpacks them once into a scratch folder and memory-maps them there, so that every sampling
worker reads the same pages instead of decompressing its own copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from SpineSegLib.centroids import Centroids
from SpineSegLib.errors import SpineSegError

from .data import CachedCase, grid_from_json

INDEX = "index.json"
FORMAT = "spineseg-pack"
VERSION = 1


def read_index(pack: str | Path) -> dict:
    path = Path(pack) / INDEX
    if not path.is_file():
        raise SpineSegError(f"{pack}: no {INDEX}; make a pack with 'spineseg-train pack'")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise SpineSegError(f"{path}: not a {FORMAT} version {VERSION} index")
    return index


def unpack(pack: str | Path, scratch: str | Path | None = None) -> Path:
    """Unpack every item to ``.npy`` files once per pack content; return their folder.

    The folder, ``<scratch>/spineseg-pack-<hash of the index>`` (default scratch: the system's
    temporary directory), is reused by later calls on the same machine with the same pack.
    """
    pack = Path(pack)
    digest = hashlib.sha256((pack / INDEX).read_bytes()).hexdigest()[:16]
    folder = Path(scratch or tempfile.gettempdir()) / f"spineseg-pack-{digest}"
    done = folder / "unpacked.json"
    if done.is_file() and json.loads(done.read_text()).get("index_sha256") == digest:
        return folder
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for item in read_index(pack)["items"]:
        with np.load(pack / item["file"]) as arrays:
            for key in arrays.files:
                np.save(tmp / f"{item['name']}.{key}.npy", arrays[key])
    (tmp / "unpacked.json").write_text(json.dumps({"index_sha256": digest}))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def load_item(scratch: str | Path, item: dict) -> CachedCase:
    """An unpacked item as the samplers read it (the image serves as the 'native' one as well)."""
    scratch = Path(scratch)
    grid = grid_from_json(item["grid"])
    image = np.load(scratch / f"{item['name']}.image.npy", mmap_mode="r")
    labels, labels_grid = None, grid
    if "labels_grid" in item:
        labels = np.load(scratch / f"{item['name']}.labels.npy", mmap_mode="r")
        labels_grid = grid_from_json(item["labels_grid"])
    return CachedCase(
        name=item["name"],
        grid=grid,
        image=image,
        labels=labels,
        centroids=Centroids({int(k): v for k, v in item["centroids"].items()}),
        source=None,
        native_image=image,
        native_image_grid=grid,
        native_labels=labels,
        native_labels_grid=labels_grid,
    )
