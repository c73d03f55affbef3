"""``spineseg-train pack``: one stage's training data, resampled once and compressed, for a GPU machine.

A lent GPU machine has no SimpleITK and takes at most 64 MiB per command (the repository, about
22 MiB, included), so a pack holds only what the stage's sampler reads, from the 1 mm cache
(:func:`.data.cache_case`), per training case:

* spine: the whole image on an 8 mm grid (the stage's spacing);
* vertebrae: the box of the centroids + ``VERTEBRAE_MARGIN_MM`` on a 2 mm grid (the stage's);
* segmentation: ``vertebrae_per_case`` adjacent vertebrae (a region-balanced draw), in the box
  of their training crops + ``SEGMENTATION_MARGIN_MM``; the image on its native grid where
  that takes no more voxels (exact), else from the 1 mm cache; the vertebra mask on its
  native grid (the exact partial-volume targets of :mod:`.samples`).

Crops reaching past a box see the pad value, as they do on the tight-FOV training cases.

Images are int16 HU, masks uint8, in LZMA-compressed ``.npz`` (``np.load`` reads them);
grids and centroids go to ``index.json`` (see :mod:`.packed`). CT noise leaves 5-7 bits of
entropy per voxel, so lossless packs of 60 cases take 80-110 MiB: a pack keeps to
``max_mib`` by rounding each item's HU to the finest step of ``HU_STEPS`` whose compressed
size fits the item's share of the budget left (by voxels; smallest items first, so that what
they leave goes to the larger). Rounding to step s adds
s / sqrt(12) HU of noise (9 HU at 32), below the 15-80 HU of CT noise and the noise that the
appearance augmentation adds; index.json records each item's step.
"""

from __future__ import annotations

import dataclasses
import json
import lzma
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.errors import SpineSegError
from SpineSegLib.geometry import Grid
from SpineSegLib.pipeline.intensity import pad_value
from SpineSegLib.pipeline.params import SegmentationParams

from .config import StageConfig, stage_config
from .data import CachedCase, CaseFiles, cache_case, grid_to_json
from .packed import FORMAT, INDEX, VERSION
from .samples import _balanced_choice
from .spatial import SpatialTransform, sample_array

HU_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
SEGMENTATION_MARGIN_MM = 5.0  # around the crop box: half the translation range
VERTEBRAE_MARGIN_MM = 80.0  # past it crops see the pad value, as they do on the tight-FOV training cases
DEFAULT_MAX_MIB = 36.0  # + the repository's ~22 MiB stays under the 64 MiB a command may take


@dataclass
class _Item:
    name: str
    centroids: Centroids
    voxels: int
    arrays: Callable[[], tuple[dict[str, np.ndarray], dict[str, Grid]]]  # image (HU) [+ labels], their grids


def _grid_over(lo: np.ndarray, hi: np.ndarray, spacing) -> Grid:
    """An LPS grid at ``spacing`` whose voxel centres cover the box [lo, hi]."""
    size = np.ceil((hi - lo) / np.asarray(spacing, float)).astype(int) + 1
    return Grid.centered((lo + hi) / 2.0, size, spacing)


def _resampled(case: CachedCase, grid: Grid, cfg: StageConfig, slab: int = 8) -> np.ndarray:
    """The 1 mm image on ``grid`` (linear), ``slab`` slices at a time: only their block is read into memory."""
    t = SpatialTransform.identity(grid.center)
    out = np.empty(grid.shape_kji, np.float32)
    for k in range(0, grid.size[2], slab):
        n = min(slab, grid.size[2] - k)
        origin = tuple(grid.index_to_physical([0, 0, k])[0].tolist())
        part = Grid((grid.size[0], grid.size[1], n), grid.spacing, origin, grid.direction)
        out[k : k + n] = sample_array(case.image, case.grid, part, t, order=1, cval=pad_value(cfg.intensity))
    return out


def _index_box(grid: Grid, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index range [a, b) of the voxels of ``grid`` (any direction) that sampling in the LPS box [lo, hi] reads."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    idx = grid.physical_to_index(corners)
    a = np.clip(np.floor(idx.min(0)).astype(int) - 1, 0, grid.size)
    return a, np.clip(np.ceil(idx.max(0)).astype(int) + 2, 0, grid.size)


def _crop(array: np.ndarray, grid: Grid, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, Grid]:
    """The block of ``array`` (on ``grid``) that covers the LPS box [lo, hi], and its grid."""
    a, b = _index_box(grid, lo, hi)
    block = np.array(array[a[2] : b[2], a[1] : b[1], a[0] : b[0]])
    origin = grid.index_to_physical(a)[0]
    return block, Grid(tuple(int(n) for n in b - a), grid.spacing, tuple(origin.tolist()), grid.direction)


def _image_box(case: CachedCase) -> tuple[np.ndarray, np.ndarray]:
    corners = case.grid.index_to_physical([[0, 0, 0], np.asarray(case.grid.size) - 1])
    return corners.min(0), corners.max(0)


def _resampled_item(case: CachedCase, cfg: StageConfig, lo: np.ndarray, hi: np.ndarray) -> _Item:
    grid = _grid_over(lo, hi, cfg.spacing_mm)
    return _Item(
        case.name,
        case.centroids,
        int(np.prod(grid.size)),
        lambda: ({"image": _resampled(case, grid, cfg)}, {"image": grid}),
    )


def _spine_items(case: CachedCase, cfg: StageConfig) -> list[_Item]:
    lo, hi = _image_box(case)  # the sampler centres crops on the image's centre, which this box keeps
    return [_resampled_item(case, cfg, lo, hi)]


def _vertebrae_items(case: CachedCase, cfg: StageConfig) -> list[_Item]:
    pts = case.centroids.subset(cfg.labels or L.HEATMAP_LABELS).array()
    box_lo, box_hi = _image_box(case)
    lo = np.maximum(pts.min(0) - VERTEBRAE_MARGIN_MM, box_lo)
    hi = np.minimum(pts.max(0) + VERTEBRAE_MARGIN_MM, box_hi)
    return [_resampled_item(case, cfg, lo, hi)]


def _adjacent_run(labels: list[int], k: int, rng: np.random.Generator) -> list[int]:
    """``k`` anatomically adjacent labels around a region-balanced draw (the sampler's choice)."""
    order = L.anatomical_order(labels)
    k = max(1, min(k, len(order)))
    start = int(np.clip(order.index(_balanced_choice(labels, rng)) - (k - 1) // 2, 0, len(order) - k))
    return order[start : start + k]


def _segmentation_items(case: CachedCase, cfg: StageConfig, rng: np.random.Generator, per_case: int) -> list[_Item]:
    chosen = _adjacent_run(case.vertebra_labels, per_case, rng)
    shift = np.array([0.0, SegmentationParams.from_mapping(cfg.params, "training config").posterior_shift_mm, 0.0])
    half = np.asarray(cfg.crop_size) * np.asarray(cfg.spacing_mm) / 2.0 + SEGMENTATION_MARGIN_MM
    centres = np.array([case.centroids[lab] for lab in chosen]) + shift
    lo, hi = centres.min(0) - half, centres.max(0) + half
    # The native image where that is no more voxels (exact, one interpolation), else the 1 mm cache.
    voxels = {
        key: int(np.prod(np.subtract(*_index_box(g, lo, hi)[::-1])))
        for key, g in (("native", case.native_image_grid), ("cache", case.grid))
    }
    native = voxels["native"] <= voxels["cache"]
    src, src_grid = (case.native_image, case.native_image_grid) if native else (case.image, case.grid)

    def arrays():
        image, image_grid = _crop(src, src_grid, lo, hi)
        labels, labels_grid = _crop(case.native_labels, case.native_labels_grid, lo, hi)
        return {"image": image, "labels": labels.astype(np.uint8)}, {"image": image_grid, "labels": labels_grid}

    name = f"{case.name}_{L.name_of(chosen[0])}" + (f"-{L.name_of(chosen[-1])}" if len(chosen) > 1 else "")
    return [_Item(name, case.centroids.subset(chosen), min(voxels.values()), arrays)]


def quantize(hu: np.ndarray, step: int) -> np.ndarray:
    """int16 HU rounded to multiples of ``step`` counted from -1024 (air and the pad value stay exact)."""
    q = np.round((np.asarray(hu, np.float32) + 1024.0) / step) * step - 1024.0
    return np.clip(q, -32768, 32767).astype(np.int16)


def _estimate(image: np.ndarray, step: int) -> float:
    """Compressed bytes of the rounded image, from every 4th slice with a faster (so larger) LZMA preset."""
    sub = image[::4]
    return len(lzma.compress(quantize(sub, step).tobytes(), preset=1)) * image.shape[0] / sub.shape[0]


def choose_step(image: np.ndarray, target_bytes: float | None) -> int:
    """The finest of ``HU_STEPS`` whose estimated compressed size fits ``target_bytes`` (None: 1, lossless)."""
    if target_bytes is None:
        return 1
    lo, hi = 0, len(HU_STEPS) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _estimate(image, HU_STEPS[mid]) <= target_bytes:
            hi = mid
        else:
            lo = mid + 1
    return HU_STEPS[lo]


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> int:
    """An LZMA-compressed .npz (about 20 % smaller than ``np.savez_compressed``), atomically; its size."""
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_LZMA) as z:
        for key, a in arrays.items():
            with z.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(a), allow_pickle=False)
    os.replace(tmp, path)
    return path.stat().st_size


def build_pack(
    train: list[CaseFiles],
    validation: list[CaseFiles],
    pack_dir: str | Path,
    stage: str,
    cache_dir: str | Path,
    preset: str = "small",
    seed: int = 0,
    max_mib: float | None = DEFAULT_MAX_MIB,
    vertebrae_per_case: int = 1,
    data: str = "",
) -> dict:
    """Write the pack of ``stage`` for the ``train`` cases to ``pack_dir``; return its index.

    ``max_mib``: size budget of the whole pack (None or 0: lossless). Validation cases are only
    listed: validation runs the inference code, which needs SimpleITK, on the CPU machine.
    """
    cfg = stage_config(stage, preset)
    if cfg.intensity["type"] != "ct":
        raise SpineSegError("packs store CT (int16 HU)")
    pack_dir = Path(pack_dir)
    pack_dir.mkdir(parents=True, exist_ok=True)
    items: list[_Item] = []
    cache_bytes = 0
    for n, files in enumerate(train):
        case = cache_case(files, cache_dir)
        cache_bytes += sum(p.stat().st_size for p in (Path(cache_dir) / files.name).glob("*.npy"))
        if stage == "spine":
            items += _spine_items(case, cfg)
        elif stage == "vertebrae":
            items += _vertebrae_items(case, cfg)
        else:
            items += _segmentation_items(case, cfg, np.random.default_rng([seed, n]), vertebrae_per_case)
    items.sort(key=lambda it: it.voxels)
    budget = max_mib * 2**20 - 4096 * (len(items) + 4) if max_mib else None  # room for index.json
    used, records, left = 0, [], sum(it.voxels for it in items)
    for item in items:
        arrays, grids = item.arrays()
        share = None if budget is None else (budget - used) * item.voxels / left  # the same bits per voxel
        left -= item.voxels
        extra = sum(len(lzma.compress(a.tobytes(), preset=1)) for k, a in arrays.items() if k != "image")
        step = choose_step(arrays["image"], None if share is None else share - extra)
        arrays["image"] = quantize(arrays["image"], step)
        size = write_npz(pack_dir / f"{item.name}.npz", arrays)
        used += size
        record = {"name": item.name, "file": f"{item.name}.npz", "grid": grid_to_json(grids["image"])}
        if "labels" in grids:
            record["labels_grid"] = grid_to_json(grids["labels"])
        record.update(
            centroids={str(k): v.tolist() for k, v in item.centroids.items()},
            hu_step=step,
            bytes=size,
            shape_kji=list(arrays["image"].shape),
        )
        records.append(record)
    records.sort(key=lambda r: r["name"])
    index = {
        "format": FORMAT,
        "version": VERSION,
        "stage": stage,
        "preset": preset,
        "config": dataclasses.asdict(cfg),
        "layout": {
            "image": "int16 HU rounded to hu_step",
            "labels": "uint8",
            "compression": "npz, LZMA",
            "max_mib": max_mib,
            "vertebrae_margin_mm": VERTEBRAE_MARGIN_MM,
            "segmentation_margin_mm": SEGMENTATION_MARGIN_MM,
            "vertebrae_per_case": vertebrae_per_case,
        },
        "data": data,
        "seed": seed,
        "split": {"train": [c.name for c in train], "validation": [c.name for c in validation]},
        "items": records,
        "cache_bytes": cache_bytes,
    }
    index["bytes"] = 0
    while index["bytes"] != used + len(text := json.dumps(index, indent=1)):  # the pack's size, index included
        index["bytes"] = used + len(text)
    tmp = pack_dir / f".{INDEX}.tmp"
    tmp.write_text(text)
    os.replace(tmp, pack_dir / INDEX)
    keep = {r["file"] for r in records}
    for stale in pack_dir.glob("*.npz"):  # items of an earlier pack in this folder
        if stale.name not in keep:
            stale.unlink()
    if max_mib and index["bytes"] > max_mib * 2**20:
        raise SpineSegError(
            f"{pack_dir}: {index['bytes'] / 2**20:.1f} MiB, over --max-mib {max_mib} with HU steps up to "
            f"{max(r['hu_step'] for r in records)}: pack fewer cases or allow more"
        )
    return index


def summary(index: dict, pack_dir: Path) -> str:
    steps = sorted(r["hu_step"] for r in index["items"])
    return (
        f"{pack_dir}: {index['stage']} pack of {len(index['items'])} items from {len(index['split']['train'])} "
        f"training cases, {index['bytes'] / 2**20:.2f} MiB (their 1 mm cache: {index['cache_bytes'] / 2**20:.1f} MiB); "
        f"HU step median {steps[len(steps) // 2]} (min {steps[0]}, max {steps[-1]}); "
        f"validation cases, not packed: {', '.join(index['split']['validation']) or 'none'}"
    )
