"""Benchmark: end-to-end speed and peak memory of SpineSeg on a 512x512x600 CT, next to a MONAI-Label-style pipeline.

The CT: a full-spine phantom (``generate_phantom(seed, PhantomConfig(spacing=(0.7, 0.7, 1.0),
region="full"))``) cropped/padded without interpolation onto exactly 512x512x600 voxels at
0.7x0.7x1.0 mm, centred on the spine's label box, padded with -1024 HU; cached in ``--data``
with its vertebra labels and body centroids.

Each side runs in a fresh subprocess limited to ``--threads`` (default 2: torch.set_num_threads,
OMP/MKL/OpenBLAS/ITK thread variables), which reports its peak RSS (``VmHWM`` of
/proc/self/status at its end; the parent cross-checks ``ru_maxrss`` from ``os.wait4``):

(a) SpineSeg, per repeat (best of ``--repeat``): read the input (``SpineSegLib.io.read_image``),
    load the three models from the manifest, spine / vertebrae / segmentation stages
    (``Pipeline.run`` timings), write the label map and centroids (.nii.gz, VerSe json).
(b) A MONAI-Label-style vertebra pipeline (radiology app: localization_spine ->
    localization_vertebra -> segmentation_vertebra) with random weights, same volume, MONAI
    transforms and inferers: LoadImage (ITKReader) + Orientation RAS; stage 1 SegResNet
    (1 -> 25 channels, init_filters 32, blocks_down (1,2,2,4), blocks_up (1,1,1), dropout 0.2)
    at 1.3 mm isotropic, ScaleIntensityRange(-1000..1900 -> 0..1, clip),
    SlidingWindowInferer(96^3, sw_batch_size 2, overlap 0.4, gaussian, replicate) on the whole
    volume, softmax/argmax, KeepLargestConnectedComponent, restored (nearest) to the input grid;
    stage 2 the same network type and inferer at 1.3 mm on the volume cropped
    (CropForegroundd, margin 10) to the ground-truth spine (random weights would give a random
    stage-1 box) plus per-label centroids; stage 3 for each ground-truth body centroid (as many
    as SpineSeg segmented) a SegResNet(2 -> 2 channels) on a 96x96x64 crop at 1.0 mm plus a
    Gaussian signal channel, both resized (area) to 128x128x96 as CropAndCreateSignald/Resized
    do, softmax/argmax, resized back (nearest) and placed, then restored to the input grid and
    written. Generous to MONAI: the volume is resampled once for stage 3, where MONAI Label
    reloads and resamples it for every vertebra.

Goals (printed pass/fail): SpineSeg end to end <= 60 s on 2 CPU cores, peak memory <= 4 GB
(10^9 bytes), >= 3x faster than the MONAI-style pipeline. ``--device cuda`` runs both on the GPU.

Run (after training; the MONAI side takes many minutes on 2 cores and about 8 GB of RAM):
``.venv/bin/python Testing/benchmarks/bench_speed.py --out out/benchmarks/speed.json``.
``--quick``: a 128x128x150 lumbar volume at 2 mm, the tiny test models, MONAI side at 4 mm
with narrow networks and small windows (a few windows, 2 vertebrae), for the smoke test.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "Testing"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from machine import machine_info  # noqa: E402

GB = 1e9
GOAL_SECONDS = 60.0
GOAL_MEMORY_GB = 4.0
GOAL_RATIO = 3.0
DEFAULT_SEED = 101_000  # held-out range (>= 100000): never used in training
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
)


@dataclasses.dataclass(frozen=True)
class Volume:
    size: tuple[int, int, int]  # i, j, k voxels
    spacing: tuple[float, float, float]
    region: str
    seed: int


@dataclasses.dataclass(frozen=True)
class MonaiSettings:
    """The MONAI-Label-style pipeline's parameters (the defaults are the radiology app's)."""

    spacing_mm: float = 1.3  # stages 1 and 2
    init_filters: int = 32
    roi_size: tuple[int, int, int] = (96, 96, 96)
    sw_batch_size: int = 2
    overlap: float = 0.4
    crop_margin: int = 10
    seg_spacing_mm: float = 1.0  # stage 3
    seg_crop: tuple[int, int, int] = (96, 96, 64)
    seg_roi: tuple[int, int, int] = (128, 128, 96)
    max_vertebrae: int | None = None


FULL = Volume((512, 512, 600), (0.7, 0.7, 1.0), "full", DEFAULT_SEED)
QUICK = Volume((128, 128, 150), (2.0, 2.0, 2.0), "lumbar", DEFAULT_SEED)
QUICK_MONAI = MonaiSettings(
    spacing_mm=4.0,
    init_filters=8,
    roi_size=(64, 64, 64),
    seg_spacing_mm=2.0,
    seg_crop=(48, 48, 32),
    seg_roi=(64, 64, 48),
    max_vertebrae=2,
)


# ----------------------------------------------------------------------------------------
# The input volume


def volume_paths(data: Path, vol: Volume) -> dict[str, Path]:
    size = "x".join(str(s) for s in vol.size)
    spacing = "x".join(f"{s:g}" for s in vol.spacing)
    stem = data / f"speed_{size}_{spacing}mm_{vol.region}_seed{vol.seed}"
    return {
        "ct": Path(f"{stem}_ct.nii.gz"),
        "labels": Path(f"{stem}_seg-vert_msk.nii.gz"),
        "centroids": Path(f"{stem}_ctd.json"),
        "meta": Path(f"{stem}_meta.json"),  # written last: the cache is complete when it exists
    }


def build_volume(data: Path, vol: Volume) -> dict[str, Path]:
    """The cached benchmark CT (+ labels, body centroids) of ``vol``; generated when missing."""
    import SimpleITK as sitk

    from SpineSegLib.centroids import Centroids
    from SpineSegLib.geometry import Grid
    from SpineSegLib.io import write_centroids, write_image, write_json_atomic, write_labelmap
    from SpineSegLib.phantom import PhantomConfig, generate_phantom

    paths = volume_paths(data, vol)
    if paths["meta"].exists():
        return paths
    data.mkdir(parents=True, exist_ok=True)
    print(f"building the {vol.region} phantom CT at {vol.spacing} mm (seed {vol.seed}) ...", flush=True)
    t0 = time.perf_counter()
    ph = generate_phantom(vol.seed, PhantomConfig(spacing=vol.spacing, region=vol.region))
    src = Grid.of(ph.image)
    labels = sitk.GetArrayViewFromImage(ph.vertebra_labels)
    # Spine centre = centre of the label box, in source voxels [k, j, i].
    lo = np.array([np.flatnonzero(labels.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)])
    hi = np.array([np.flatnonzero(labels.any(axis=tuple(a for a in range(3) if a != ax)))[-1] for ax in range(3)])
    shape = np.array(vol.size[::-1])
    start = np.round((lo + hi) / 2.0 - (shape - 1) / 2.0).astype(int)  # source index of output voxel 0
    ct = np.full(tuple(shape), -1024, np.int16)
    lab = np.zeros(tuple(shape), np.uint8)
    src_lo = np.maximum(start, 0)
    src_hi = np.minimum(start + shape, labels.shape)
    s = tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
    d = tuple(slice(a, b) for a, b in zip(src_lo - start, src_hi - start))
    ct[d] = sitk.GetArrayViewFromImage(ph.image)[s]
    lab[d] = labels[s]
    origin = src.index_to_physical(start[::-1].astype(float))[0]
    grid = Grid(tuple(vol.size), tuple(src.spacing), tuple(float(v) for v in origin), src.direction)
    image = grid.apply(sitk.GetImageFromArray(ct))
    label_image = grid.apply(sitk.GetImageFromArray(lab))
    present = set(np.flatnonzero(np.bincount(lab.ravel(), minlength=256)).tolist()) - {0}
    inside = grid.contains(ph.body_centroids.array(ph.body_centroids.labels))
    kept = {k: ph.body_centroids[k] for k, ok in zip(ph.body_centroids.labels, inside) if ok and k in present}
    centroids = Centroids(kept)
    del ph, labels
    write_image(image, paths["ct"])
    write_labelmap(label_image, paths["labels"])
    write_centroids(centroids, paths["centroids"], reference=label_image)
    meta = {
        "volume": dataclasses.asdict(vol),
        "phantom": {"seed": vol.seed, "region": vol.region, "spacing": list(vol.spacing)},
        "source_size": list(src.size),
        "crop_start_ijk": [int(v) for v in start[::-1]],
        "n_vertebrae": len(centroids),
        "labels": centroids.labels,
    }
    write_json_atomic(meta, paths["meta"])
    print(f"built in {time.perf_counter() - t0:.1f} s: {paths['ct']}", flush=True)
    return paths


# ----------------------------------------------------------------------------------------
# Workers (fresh subprocesses)


def peak_rss_bytes() -> int:
    """VmHWM (peak resident set) of this process; ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _limit_threads(n: int) -> None:
    import SimpleITK as sitk
    import torch

    torch.set_num_threads(n)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)


class _Clock:
    """Stage timer that waits for the GPU before reading the clock."""

    def __init__(self, device: str):
        import torch

        self.cuda = device.startswith("cuda") and torch.cuda.is_available()
        self.t = time.perf_counter()

    def lap(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        return dt


def _gpu_peak_gb(device: str) -> float | None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / GB
    return None


def worker_spineseg(spec: dict) -> dict:
    _limit_threads(spec["threads"])
    from SpineSegLib.io import read_image, write_centroids, write_labelmap
    from SpineSegLib.models import Manifest
    from SpineSegLib.pipeline import STAGES, Pipeline

    manifest_path = Path(spec["resources"]) / "models" / "manifest.json"
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_speed_out_") as tmp:
        for r in range(spec["repeat"]):
            t: dict[str, float] = {}
            clock = _Clock(spec["device"])
            image = read_image(spec["ct"])
            t["read"] = clock.lap()
            pipeline = Pipeline(spec["pipeline"], device=spec["device"], manifest=Manifest.load(manifest_path))
            for stage in STAGES:
                pipeline.model(stage)
            t["load_models"] = clock.lap()
            result = pipeline.run(image)
            clock.lap()
            for stage in STAGES:
                t[stage] = result.timings.get(stage, 0.0)
            if result.labelmap is not None:
                write_labelmap(result.labelmap, Path(tmp) / "case_seg-vert_msk.nii.gz")
            if result.centroids:
                write_centroids(result.centroids, Path(tmp) / "case_ctd.json", reference=image)
            t["write"] = clock.lap()
            t["total"] = sum(t.values())
            runs.append({k: round(v, 3) for k, v in t.items()})
            print(f"  SpineSeg run {r + 1}/{spec['repeat']}: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
            sys.stdout.flush()
    best = min(range(len(runs)), key=lambda i: runs[i]["total"])
    return {
        "runs": runs,
        "best": runs[best],
        "n_segmented": len(result.centroids),
        "segmented": result.centroids.labels,
        "messages": result.messages,
        "peak_rss_gb": peak_rss_bytes() / GB,
        "gpu_peak_gb": _gpu_peak_gb(spec["device"]),
    }


def _lps_to_index(points_lps: np.ndarray, affine) -> np.ndarray:
    """Continuous voxel indices of LPS points in a MONAI image whose affine maps indices to RAS mm."""
    ras = np.asarray(points_lps, float) * np.array([-1.0, -1.0, 1.0])
    inv = np.linalg.inv(np.asarray(affine, float))
    return (inv[:3, :3] @ ras.T).T + inv[:3, 3]


def worker_monai(spec: dict) -> dict:
    """The MONAI-Label-style three-stage vertebra pipeline with random weights (see the module docstring)."""
    _limit_threads(spec["threads"])
    import SimpleITK as sitk
    import torch
    from monai.inferers import SlidingWindowInferer
    from monai.networks.nets import SegResNet
    from monai.transforms import (
        Activations,
        AsDiscrete,
        CropForegroundd,
        GaussianSmooth,
        Resize,
        ScaleIntensity,
        ScaleIntensityRange,
        Spacing,
        SpatialCrop,
    )
    from scipy import ndimage

    s = MonaiSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["monai"].items()})
    device = torch.device(spec["device"])
    torch.manual_seed(0)

    def segresnet(in_channels: int, out_channels: int) -> torch.nn.Module:
        return (
            SegResNet(
                spatial_dims=3,
                in_channels=in_channels,
                out_channels=out_channels,
                init_filters=s.init_filters,
                blocks_down=(1, 2, 2, 4),
                blocks_up=(1, 1, 1),
                dropout_prob=0.2,
            )
            .to(device)
            .eval()
        )

    inferer = SlidingWindowInferer(
        roi_size=s.roi_size,
        sw_batch_size=s.sw_batch_size,
        overlap=s.overlap,
        mode="gaussian",
        padding_mode="replicate",
        progress=True,
    )
    softmax, argmax = Activations(softmax=True), AsDiscrete(argmax=True)
    scale = ScaleIntensityRange(a_min=-1000, a_max=1900, b_min=0.0, b_max=1.0, clip=True)
    t: dict[str, float] = {}
    info: dict[str, object] = {}
    clock = _Clock(spec["device"])

    load, info["reader"] = _monai_loader()
    to_ras, info["orientation"] = _monai_orientation()
    keep_largest, info["largest_component"] = _monai_keep_largest()
    image = to_ras(load(spec["ct"]))
    t["read"] = clock.lap()
    full_shape = tuple(image.shape[1:])

    # Stage 1: spine, whole volume at 1.3 mm.
    x = scale(Spacing(pixdim=(s.spacing_mm,) * 3, mode="bilinear")(image))
    info["stage1_grid"] = list(x.shape[1:])
    info["stage1_windows"] = _n_windows(x.shape[1:], s.roi_size, s.overlap)
    print(f"  MONAI stage 1: {info['stage1_windows']} windows on {info['stage1_grid']} at {s.spacing_mm} mm")
    sys.stdout.flush()
    net = segresnet(1, 25)
    with torch.inference_mode():
        logits = inferer(x[None].to(device), net)[0]
    pred = argmax(softmax(logits))
    del logits
    pred = keep_largest(pred)
    spine = Resize(spatial_size=full_shape, mode="nearest")(pred)
    t["stage1"] = clock.lap()
    del pred, spine, net

    # Stage 2: vertebrae, on the (ground-truth) spine box at 1.3 mm.
    gt = to_ras(load(spec["labels"]))
    gt = Spacing(pixdim=(s.spacing_mm,) * 3, mode="nearest")(gt)
    cropped = CropForegroundd(keys="image", source_key="label", margin=s.crop_margin, allow_smaller=True)(
        {"image": x, "label": gt}
    )["image"]
    info["stage2_grid"] = list(cropped.shape[1:])
    info["stage2_windows"] = _n_windows(cropped.shape[1:], s.roi_size, s.overlap)
    print(f"  MONAI stage 2: {info['stage2_windows']} windows on {info['stage2_grid']}")
    sys.stdout.flush()
    net = segresnet(1, 25)
    with torch.inference_mode():
        logits = inferer(cropped[None].to(device), net)[0]
    pred = keep_largest(argmax(softmax(logits)))
    del logits
    lab = pred[0].cpu().numpy().astype(np.int32)
    present = [int(v) for v in np.unique(lab) if v]
    stage2_centroids = ndimage.center_of_mass(lab > 0, lab, present) if present else []
    info["stage2_labels_found"] = len(stage2_centroids)
    t["stage2"] = clock.lap()
    del x, gt, cropped, pred, lab, net

    # Stage 3: one crop per vertebra at 1.0 mm with a Gaussian signal channel.
    x3 = Spacing(pixdim=(s.seg_spacing_mm,) * 3, mode="bilinear")(image)
    x3 = ScaleIntensity(minv=-1.0, maxv=1.0)(GaussianSmooth(sigma=0.4)(scale(x3)))
    out = torch.zeros(x3.shape[1:], dtype=torch.uint8)
    net = segresnet(2, 2)
    centroids = spec["centroids"]  # [[label, x, y, z] (LPS mm)]
    for n, (label, *point) in enumerate(centroids, 1):
        centre = np.round(_lps_to_index(np.array([point]), x3.affine)[0]).astype(int)
        cropper = SpatialCrop(roi_center=centre.tolist(), roi_size=s.seg_crop)
        crop = cropper(x3)
        signal = torch.zeros_like(crop)
        c = [d // 2 for d in crop.shape[1:]]
        signal[0, c[0], c[1], c[2]] = 1.0
        signal = GaussianSmooth(sigma=1.6 + (label - 1.0) * 0.1)(signal)
        resize = Resize(spatial_size=s.seg_roi, mode="area")
        both = torch.cat([torch.as_tensor(resize(crop)), torch.as_tensor(resize(signal))])[None].to(device)
        with torch.inference_mode():
            logits = net(both)[0]
        seg = argmax(softmax(logits))
        seg = Resize(spatial_size=crop.shape[1:], mode="nearest")(seg.cpu())
        region = out[tuple(cropper.slices)]
        region[torch.as_tensor(seg[0]) > 0] = int(label)
        print(f"  MONAI stage 3: vertebra {n}/{len(centroids)} done")
        sys.stdout.flush()
    restored = Resize(spatial_size=full_shape, mode="nearest")(out[None].float())
    t["stage3"] = clock.lap()
    with tempfile.TemporaryDirectory(prefix="bench_speed_monai_") as tmp:
        arr = np.asarray(restored[0]).astype(np.uint8).transpose(2, 1, 0)
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(Path(tmp) / "pred.nii.gz"), useCompression=True)
    t["write"] = clock.lap()
    t["total"] = sum(t.values())
    return {
        "times": {k: round(v, 3) for k, v in t.items()},
        "info": info,
        "n_vertebrae": len(centroids),
        "peak_rss_gb": peak_rss_bytes() / GB,
        "gpu_peak_gb": _gpu_peak_gb(spec["device"]),
    }


def _monai_loader():
    """(path -> channel-first MetaTensor with its RAS affine, reader name): MONAI's ITKReader as MONAI Label uses it.

    Without the ``itk`` package, SimpleITK reads the file and the MetaTensor is built the way
    ITKReader builds it (x, y, z array order, float32, LPS -> RAS affine).
    """
    from monai.transforms import Compose, EnsureChannelFirst, LoadImage
    from monai.utils import optional_import

    if optional_import("itk")[1]:
        return Compose([LoadImage(reader="ITKReader", image_only=True), EnsureChannelFirst()]), "monai ITKReader"

    def load(path: str):
        import SimpleITK as sitk
        from monai.data import MetaTensor

        img = sitk.ReadImage(str(path))
        arr = sitk.GetArrayFromImage(img).transpose(2, 1, 0).astype(np.float32)
        affine = np.eye(4)
        affine[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
        affine[:3, 3] = img.GetOrigin()
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # LPS -> RAS
        return MetaTensor(torch.from_numpy(arr)[None], affine=torch.as_tensor(affine))

    import torch

    return load, "SimpleITK -> MetaTensor (the itk package for MONAI's ITKReader is not installed)"


def _monai_orientation():
    """(image -> image in RAS axis order, how): MONAI's Orientation("RAS"), which needs nibabel.

    Without nibabel, an axis-aligned image is flipped with MONAI's Flip (what Orientation does
    for such an image; it updates the affine the same way).
    """
    from monai.transforms import Flip, Orientation
    from monai.utils import optional_import

    if optional_import("nibabel")[1]:
        return Orientation(axcodes="RAS"), "monai Orientation(RAS)"

    def to_ras(img):
        a = np.asarray(img.affine, float)[:3, :3]
        if not np.allclose(a, np.diag(np.diag(a))):
            raise RuntimeError("without nibabel only axis-aligned, unpermuted volumes can be reoriented")
        axes = [i for i in range(3) if a[i, i] < 0]
        return Flip(spatial_axis=axes)(img) if axes else img

    return to_ras, "monai Flip to RAS (nibabel for Orientation is not installed; the volume is axis-aligned)"


def _monai_keep_largest():
    """(label map -> label map, how): MONAI's KeepLargestConnectedComponent, which needs scikit-image on the CPU.

    Without it, the same per-label operation (independent labels, full 26-connectivity, as
    MONAI's defaults) with scipy.ndimage.label.
    """
    from monai.transforms import KeepLargestConnectedComponent
    from monai.utils import optional_import

    if optional_import("skimage.measure")[1]:
        return KeepLargestConnectedComponent(), "monai KeepLargestConnectedComponent"

    def keep_largest(pred):
        import torch
        from scipy import ndimage

        arr = pred[0].cpu().numpy()
        out = arr.copy()
        for value in np.unique(arr):
            if value == 0:
                continue
            comp, n = ndimage.label(arr == value, structure=np.ones((3, 3, 3), bool))
            if n > 1:
                sizes = np.bincount(comp.ravel())
                sizes[0] = 0
                out[(comp > 0) & (comp != int(np.argmax(sizes)))] = 0
        result = pred.clone()
        result[0] = torch.from_numpy(out).to(pred.device)
        return result

    return keep_largest, "scipy per-label largest 26-connected component (scikit-image for MONAI's is not installed)"


def _n_windows(shape, roi, overlap: float) -> int:
    """Number of sliding windows MONAI's SlidingWindowInferer uses (its dense_patch_slices scan)."""
    n = 1
    for size, r in zip(shape, roi):
        size = max(int(size), r)
        step = max(int(r * (1 - overlap)), 1)
        n *= 1 if size <= r else -(-(size - r) // step) + 1
    return n


def run_worker(side: str, spec: dict, tmp: Path, threads: int) -> dict:
    """Run one side in a fresh subprocess; its result plus wall time and the OS's peak RSS of that child."""
    spec_path = tmp / f"{side}_spec.json"
    result_path = tmp / f"{side}_result.json"
    spec_path.write_text(json.dumps({**spec, "result": str(result_path)}), encoding="utf-8")
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARIABLES})
    env["PYTHONUNBUFFERED"] = "1"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", side, str(spec_path)], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not result_path.exists():
        why = "killed (out of memory?)" if proc.returncode < 0 else f"exit {proc.returncode}"
        return {"failed": why, "process_wall_s": round(wall, 2)}
    out = json.loads(result_path.read_text(encoding="utf-8"))
    out["process_wall_s"] = round(wall, 2)
    out["ru_maxrss_gb"] = usage.ru_maxrss * 1024 / GB  # Linux: kilobytes
    return out


def worker_main(side: str, spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    result = worker_spineseg(spec) if side == "spineseg" else worker_monai(spec)
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


# ----------------------------------------------------------------------------------------
# Report


def monai_centroids(centroids_path: Path, labels_path: Path, spineseg: dict | None, cap: int | None) -> list:
    """[[label, x, y, z]] LPS mm of the ground-truth body centroids stage 3 of the MONAI side gets.

    As many as SpineSeg segmented (all ground-truth vertebrae when SpineSeg found none or did
    not run), preferring the labels SpineSeg segmented.
    """
    from SpineSegLib.io import read_centroids, read_labelmap

    gt = read_centroids(centroids_path, reference=read_labelmap(labels_path))
    n = len(gt)
    if spineseg and "failed" not in spineseg and spineseg["n_segmented"]:
        n = min(n, spineseg["n_segmented"])
    if cap:
        n = min(n, cap)
    found = set(spineseg.get("segmented", [])) if spineseg else set()
    order = [k for k in gt.labels if k in found] + [k for k in gt.labels if k not in found]
    chosen = sorted(order[:n], key=gt.labels.index)
    return [[int(k), *(float(v) for v in gt[k])] for k in chosen]


def goal_checks(res: dict) -> dict:
    ours = res["spineseg"]
    goals = {}
    if "failed" in ours:
        return {"spineseg": {"pass": False, "value": ours["failed"], "goal": "runs"}}
    total = ours["best"]["total"]
    goals["end_to_end_s"] = {"value": total, "goal": f"<= {GOAL_SECONDS:g} s", "pass": total <= GOAL_SECONDS}
    peak = ours["peak_rss_gb"]
    goals["peak_memory_gb"] = {"value": peak, "goal": f"<= {GOAL_MEMORY_GB:g} GB", "pass": peak <= GOAL_MEMORY_GB}
    monai = res.get("monai")
    if monai and "failed" not in monai:
        ratio = monai["times"]["total"] / total
        goals["speedup"] = {"value": ratio, "goal": f">= {GOAL_RATIO:g}x", "pass": ratio >= GOAL_RATIO}
    return goals


def report(res: dict) -> str:
    m, v = res["machine"], res["volume"]
    gpu = f", GPU {m['gpu']}" if m["gpu"] else ""
    size, spacing = "x".join(map(str, v["size"])), "x".join(f"{s:g}" for s in v["spacing"])
    lines = [
        f"### Speed: end to end on a {size} CT at {spacing} mm"
        + (" (QUICK smoke run: tiny models, small volume, not a result)" if res["settings"]["quick"] else ""),
        "",
        f"- command: `{res['command']}`",
        f"- date: {res['date']}",
        f"- machine: nproc {m['nproc']}, {m['cpu']}{gpu}; python {m['python']}, torch {m['torch']}",
        f"- device {res['settings']['device']}, {res['settings']['threads']} threads per side, each side in a fresh "
        f"process; input {res['input']['ct']} ({res['input']['n_vertebrae']} labelled vertebrae, "
        f"{v['region']} phantom seed {v['seed']})",
        "",
    ]
    ours = res["spineseg"]
    if "failed" in ours:
        lines.append(f"SpineSeg: FAILED ({ours['failed']})")
    else:
        b = ours["best"]
        lines += [
            f"SpineSeg (best of {len(ours['runs'])}; totals {[r['total'] for r in ours['runs']]} s; "
            f"{ours['n_segmented']} vertebrae segmented):",
            "",
            "| read | load models | spine | vertebrae | segmentation | write | **end to end** | process wall "
            "| peak RSS |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {b['read']:.2f} s | {b['load_models']:.2f} s | {b['spine']:.2f} s | {b['vertebrae']:.2f} s "
            f"| {b['segmentation']:.2f} s | {b['write']:.2f} s | **{b['total']:.2f} s** "
            f"| {ours['process_wall_s']:.1f} s | {ours['peak_rss_gb']:.2f} GB |",
        ]
        if ours.get("gpu_peak_gb") is not None:
            lines.append(f"\nSpineSeg peak GPU memory (torch allocated): {ours['gpu_peak_gb']:.2f} GB")
    monai = res.get("monai")
    if monai is None:
        lines += ["", "MONAI-style pipeline: skipped (--skip-monai)"]
    elif "failed" in monai:
        lines += ["", f"MONAI-style pipeline: FAILED ({monai['failed']}) after {monai['process_wall_s']:.0f} s"]
    else:
        t, i = monai["times"], monai["info"]
        lines += [
            "",
            f"MONAI-Label-style pipeline, random weights ({i['stage1_windows']} + {i['stage2_windows']} windows, "
            f"{monai['n_vertebrae']} vertebra crops):",
            "",
            "| read | stage 1 spine | stage 2 vertebrae | stage 3 segmentation | write | **end to end** "
            "| process wall | peak RSS |",
            "|---|---|---|---|---|---|---|---|",
            f"| {t['read']:.2f} s | {t['stage1']:.1f} s | {t['stage2']:.1f} s | {t['stage3']:.1f} s "
            f"| {t['write']:.2f} s | **{t['total']:.1f} s** | {monai['process_wall_s']:.1f} s "
            f"| {monai['peak_rss_gb']:.2f} GB |",
        ]
        if monai.get("gpu_peak_gb") is not None:
            lines.append(f"\nMONAI-style peak GPU memory (torch allocated): {monai['gpu_peak_gb']:.2f} GB")
    lines.append("")
    names = {"end_to_end_s": "SpineSeg end to end", "peak_memory_gb": "SpineSeg peak memory", "speedup": "speed-up"}
    note = "" if res["goals_apply"] else " (goals are defined for --device cpu with 2 threads on the full volume)"
    lines.append(f"Goals{note}:")
    for key, g in res["goals"].items():
        value = f"{g['value']:.2f}" if isinstance(g["value"], float) else str(g["value"])
        lines.append(f"- {names.get(key, key)}: {value} (goal {g['goal']}): {'pass' if g['pass'] else 'FAIL'}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "speed.json", help="results JSON")
    ap.add_argument("--data", type=Path, default=REPO / "out" / "bench_data", help="cache folder of the input CT")
    ap.add_argument("--resources", type=Path, help="Resources folder with models/manifest.json (default: bundled)")
    ap.add_argument("--pipeline", default="ct-full-spine", help="pipeline name in the manifest")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per side (default 2)")
    ap.add_argument("--repeat", type=int, default=1, help="SpineSeg runs in its process; the best is reported")
    ap.add_argument("--skip-monai", action="store_true", help="only SpineSeg")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="phantom seed (held-out range >= 100000)")
    ap.add_argument("--quick", action="store_true", help="128x128x150 lumbar volume at 2 mm, tiny models, small MONAI")
    ap.add_argument("--worker", nargs=2, metavar=("SIDE", "SPEC"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(*args.worker)
    argv = sys.argv[1:] if argv is None else argv
    if args.repeat < 1 or args.threads < 1:
        ap.error("--repeat and --threads must be >= 1")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda: PyTorch sees no CUDA GPU")

    vol = dataclasses.replace(QUICK if args.quick else FULL, seed=args.seed)
    settings = QUICK_MONAI if args.quick else MonaiSettings()
    paths = build_volume(args.data, vol)
    meta = json.loads(paths["meta"].read_text(encoding="utf-8"))
    res: dict = {
        "benchmark": "bench_speed",
        "command": "Testing/benchmarks/bench_speed.py " + shlex.join(argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "volume": dataclasses.asdict(vol),
        "input": {"ct": str(paths["ct"]), "n_vertebrae": meta["n_vertebrae"]},
        "settings": {
            "quick": args.quick,
            "device": args.device,
            "threads": args.threads,
            "repeat": args.repeat,
            "pipeline": args.pipeline,
            "monai": dataclasses.asdict(settings),
        },
    }
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmpdir:
        tmp = Path(tmpdir)
        resources = args.resources
        if resources is None and args.quick:
            from slicer_fixtures import write_tiny_resources

            resources = write_tiny_resources(tmp)
        if resources is None:
            from SpineSegLib.models.manifest import resources_dir

            resources = resources_dir()
        tiny = args.quick and args.resources is None
        res["settings"]["resources"] = "tiny test models (slicer_fixtures)" if tiny else str(resources)
        common = {"ct": str(paths["ct"]), "threads": args.threads, "device": args.device}
        print(
            f"SpineSeg ({args.threads} threads, {args.device}, {args.repeat} run(s)) on {paths['ct']} ...", flush=True
        )
        spec = {**common, "resources": str(resources), "pipeline": args.pipeline, "repeat": args.repeat}
        res["spineseg"] = run_worker("spineseg", spec, tmp, args.threads)
        if args.skip_monai:
            res["monai"] = None
        else:
            centroids = monai_centroids(paths["centroids"], paths["labels"], res["spineseg"], settings.max_vertebrae)
            print(f"MONAI-style pipeline ({len(centroids)} vertebrae; this takes a while) ...", flush=True)
            spec = {**common, "labels": str(paths["labels"]), "centroids": centroids}
            spec["monai"] = dataclasses.asdict(settings)
            res["monai"] = run_worker("monai", spec, tmp, args.threads)
    res["goals"] = goal_checks(res)
    res["goals_apply"] = not args.quick and args.device == "cpu" and args.threads == 2
    res["all_goals_pass"] = all(g["pass"] for g in res["goals"].values())
    text = report(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from SpineSegLib.io import write_json_atomic, write_text_atomic

    write_json_atomic(res, args.out, indent=1)
    write_text_atomic(text, args.out.with_suffix(".md"))
    print()
    print(text)
    print(f"results: {args.out}\nmarkdown: {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    from SpineSegLib.errors import SpineSegError

    try:
        sys.exit(main())
    except SpineSegError as exc:
        print(f"bench_speed: error: {exc}", file=sys.stderr)
        sys.exit(2)
