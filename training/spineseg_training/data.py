"""VerSe-layout datasets: find the cases, and cache each one as an LPS 1 mm volume.

A case is an image (``rawdata/sub-*/*_ct.nii.gz`` or ``_T2w``) with its vertebra mask
(``derivatives/sub-*/*_seg-vert_msk.nii.gz``) and centroid file (``*_ctd.json``, VerSe
format), and where there is one its subregion mask (``*_seg-subreg_msk.nii.gz``, SPINEPS ids: the
structures the MR method learns). ``spineseg phantom`` writes exactly this layout. Training crops are sampled from a
cache: the case resampled once onto an LPS-aligned 1 mm grid and stored as ``.npy``, so
that workers memory-map it and read only the block a crop needs. The cache also keeps the
image and mask on their own grid: segmentation crops are sampled from those, once, as
inference samples the image (a second interpolation would blur the input and shift the
mask boundary by up to half a voxel).

SimpleITK and the readers are imported where a case is read, so that :class:`CachedCase`
serves training packs on machines without SimpleITK (:mod:`.packed`).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from SpineSegLib.bids import case_name, strip_image_extension
from SpineSegLib.centroids import Centroids
from SpineSegLib.errors import SpineSegError
from SpineSegLib.geometry import Grid, axis_aligned_grid, resample_to_grid

if TYPE_CHECKING:
    import SimpleITK as sitk

IMAGE_SUFFIXES = {"ct": ("_ct",), "mr": ("_t2w", "_t1w")}
CACHE_VERSION = 2


@dataclass(frozen=True)
class CaseFiles:
    name: str
    image: Path
    mask: Path
    centroids: Path
    subregions: Path | None = None


def find_cases(root: str | Path, modality: str = "ct") -> list[CaseFiles]:
    """Every case under a VerSe/BIDS ``root`` that has an image and a vertebra mask, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise SpineSegError(f"{root}: dataset folder not found")
    masks: dict[str, Path] = {}
    ctds: dict[str, Path] = {}
    subregs: dict[str, Path] = {}
    for p in sorted((root / "derivatives").rglob("*")) if (root / "derivatives").is_dir() else []:
        n = p.name
        if n.endswith("_seg-vert_msk.nii.gz"):
            masks[n.split("_seg-vert_msk")[0].split("_")[0]] = p
        elif n.endswith("_seg-subreg_msk.nii.gz"):
            subregs[n.split("_")[0]] = p
        elif n.endswith("_ctd.json"):
            ctds.setdefault(n.split("_")[0], p)
    cases = []
    raw = root / "rawdata"
    for p in sorted(raw.rglob("*")) if raw.is_dir() else []:
        stem = strip_image_extension(p.name)
        if stem == p.name or not stem.lower().endswith(IMAGE_SUFFIXES[modality]):
            continue
        subject = stem.split("_")[0]
        if subject in masks and subject in ctds:
            cases.append(CaseFiles(case_name(p), p, masks[subject], ctds[subject], subregs.get(subject)))
        elif subject in masks:
            # Centroids from the mask would be whole-vertebra centres, not the vertebral-body
            # centres the localisation networks learn: leave such cases out, loudly.
            warnings.warn(f"{p}: no *_ctd.json centroid file for {subject}; case left out", stacklevel=2)
    if not cases:
        raise SpineSegError(f"{root}: no {modality} cases with rawdata images and derivatives *_seg-vert_msk.nii.gz")
    return cases


@dataclass
class CachedCase:
    """A case on its LPS 1 mm cache grid: memory-mapped arrays, centroids in LPS mm."""

    name: str
    grid: Grid
    image: np.ndarray  # int16 / float32 [k, j, i], memory-mapped
    labels: np.ndarray  # uint8 [k, j, i], memory-mapped
    centroids: Centroids
    source: CaseFiles | None  # None: an item of a training pack
    native_image: np.ndarray  # the image on its own grid (any spacing and direction), memory-mapped
    native_image_grid: Grid
    native_labels: np.ndarray  # the vertebra mask on its own grid, memory-mapped
    native_labels_grid: Grid
    subregions: np.ndarray | None = None  # uint8 SPINEPS ids on the cache grid, memory-mapped; None: no subregion mask

    @property
    def vertebra_labels(self) -> list[int]:
        return [lab for lab in self.centroids.labels if lab not in {26, 27}]


def _cache_key(files: CaseFiles, spacing: float) -> str:
    paths = (files.image, files.mask, files.centroids) + ((files.subregions,) if files.subregions else ())
    stats = [os.stat(p).st_mtime_ns for p in paths]
    return json.dumps({"v": CACHE_VERSION, "spacing": spacing, "mtimes": stats})


def cache_case(files: CaseFiles, cache_dir: str | Path, spacing: float = 1.0, pad_value: float = -1024.0) -> CachedCase:
    """Load ``files`` from the cache, building the cache entry first when it is missing or stale."""
    folder = Path(cache_dir) / files.name
    meta_path = folder / "meta.json"
    key = _cache_key(files, spacing)
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            return _load_cached(files, folder, meta)
    import SimpleITK as sitk

    from SpineSegLib.io import read_centroids, read_image, read_labelmap

    image = read_image(files.image)
    mask = read_labelmap(files.mask)
    centroids = read_centroids(files.centroids, reference=mask)
    grid = axis_aligned_grid(image, spacing=spacing)
    if "unsigned" in image.GetPixelIDTypeAsString():
        pad_value = max(pad_value, 0.0)  # an MR stored unsigned: -1024 would wrap round to 64512
    img = resample_to_grid(image, grid, interpolator="linear", default_value=pad_value)
    lab = resample_to_grid(mask, grid, interpolator="nearest", default_value=0, pixel_type=sitk.sitkUInt8)
    folder.mkdir(parents=True, exist_ok=True)
    _save_atomic(folder / "image.npy", _image_array(img))
    _save_atomic(folder / "labels.npy", sitk.GetArrayFromImage(lab))
    _save_atomic(folder / "native_image.npy", _image_array(image))
    _save_atomic(folder / "native_labels.npy", sitk.GetArrayFromImage(mask).astype(np.uint8))
    if files.subregions:
        sub = resample_to_grid(
            read_labelmap(files.subregions), grid, interpolator="nearest", default_value=0, pixel_type=sitk.sitkUInt8
        )
        _save_atomic(folder / "subregions.npy", sitk.GetArrayFromImage(sub))
    meta = {
        "key": key,
        "grid": grid_to_json(grid),
        "native_image_grid": grid_to_json(Grid.of(image)),
        "native_labels_grid": grid_to_json(Grid.of(mask)),
        "centroids": {str(k): v.tolist() for k, v in centroids.items()},
    }
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, meta_path)
    return _load_cached(files, folder, meta)


def _image_array(image: sitk.Image) -> np.ndarray:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(image)
    fits_int16 = np.issubdtype(arr.dtype, np.integer) and (
        arr.size == 0 or (arr.min() >= -32768 and arr.max() <= 32767)
    )
    return arr.astype(np.int16) if fits_int16 else arr.astype(np.float32)


def grid_to_json(grid: Grid) -> dict:
    return {"size": grid.size, "spacing": grid.spacing, "origin": grid.origin, "direction": grid.direction}


def grid_from_json(g: dict) -> Grid:
    return Grid(tuple(g["size"]), tuple(g["spacing"]), tuple(g["origin"]), tuple(g["direction"]))


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _load_cached(files: CaseFiles, folder: Path, meta: dict) -> CachedCase:
    return CachedCase(
        name=files.name,
        grid=grid_from_json(meta["grid"]),
        image=np.load(folder / "image.npy", mmap_mode="r"),
        labels=np.load(folder / "labels.npy", mmap_mode="r"),
        centroids=Centroids({int(k): v for k, v in meta["centroids"].items()}),
        source=files,
        native_image=np.load(folder / "native_image.npy", mmap_mode="r"),
        native_image_grid=grid_from_json(meta["native_image_grid"]),
        native_labels=np.load(folder / "native_labels.npy", mmap_mode="r"),
        native_labels_grid=grid_from_json(meta["native_labels_grid"]),
        subregions=np.load(folder / "subregions.npy", mmap_mode="r") if files.subregions else None,
    )


def split_cases(cases: list[CaseFiles], n_val: int, seed: int = 0) -> tuple[list[CaseFiles], list[CaseFiles]]:
    """Deterministic train/validation split by name."""
    order = sorted(cases, key=lambda c: c.name)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(order))
    val = {int(i) for i in idx[: max(0, min(n_val, len(order) - 1))]}
    return [c for i, c in enumerate(order) if i not in val], [c for i, c in enumerate(order) if i in val]
