"""Benchmark: per-vertebra evaluation of a full-size CT label map, ours versus the MONAI way.

Builds a 512x512x600 label map at 0.7x0.7x1 mm with 24 vertebra-like labels (C1..L5:
elliptic body, neural arch, spinous and transverse processes, 17k-100k voxels each, C1 cut
by the top face of the volume) and a perturbed prediction
(each vertebra shifted, dilated, eroded or with surface noise), written as .nii.gz in a
temporary folder, then times

(a) ours end to end: ``spineseg evaluate --pred P --gt G --json OUT`` in a subprocess when
    the command exists and its subcommand works, else the Python API ``evaluate()``
    including reading both files with SimpleITK (the output says which);
(b) the same per-vertebra numbers the MONAI way on the full volume, label by label
    (a one-hot channel per label, ``DiceMetric``, ``HausdorffDistanceMetric`` with
    percentile None and 95, ``SurfaceDistanceMetric(symmetric=True)``, ``spacing=``),
    including reading the files;

and asserts that Dice, HD, HD95 and ASSD agree to 1e-4 (mm). Goal: (a) <= 10 s on 2
cores and >= 5x faster than (b).

Run: ``.venv/bin/python Testing/benchmarks/bench_metrics.py`` (about 3-5 min, 4 GB RAM).
``--size 256 256 300`` makes a quick smaller run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

from SpineSegLib import labels as L  # noqa: E402
from SpineSegLib.metrics import evaluate  # noqa: E402

SPACING_IJK = (0.7, 0.7, 1.0)
N_VERTEBRAE = 24  # C1..L5 = VerSe ids 1..24


# ----------------------------------------------------------------------------------------
# Phantom


def _vertebra(scale: float, height: float, sp_kji: tuple[float, float, float], box_kji: tuple[int, int, int]):
    """One vertebra-like mask in a local box: body, arch around the canal, spinous and transverse processes.

    ``scale`` 1 is a mid-thoracic size (body 38x28 mm), ``height`` the body height in mm.
    """
    k, j, i = np.ogrid[: box_kji[0], : box_kji[1], : box_kji[2]]
    zk, yj, xi = k * sp_kji[0], j * sp_kji[1], i * sp_kji[2]  # mm
    cy, cx = 0.25 * box_kji[1] * sp_kji[1], 0.5 * box_kji[2] * sp_kji[2]
    ry, rx, h = 14 * scale, 19 * scale, height
    body = (((yj - cy) / ry) ** 2 + ((xi - cx) / rx) ** 2 <= 1) & (zk >= 2) & (zk <= 2 + h)
    canal_y, canal_r = cy + ry + 8 * scale, 8 * scale
    r = np.sqrt((yj - canal_y) ** 2 + (xi - cx) ** 2)
    arch = (r >= canal_r) & (r <= canal_r + 5 * scale) & (yj >= cy) & (zk >= 3) & (zk <= 3 + 0.8 * h)
    spinous = (np.abs(xi - cx) <= 3.5 * scale) & (yj >= canal_y) & (yj <= canal_y + canal_r + 30 * scale)
    spinous = spinous & (zk >= 4) & (zk <= 4 + 0.6 * h)
    transverse = (np.abs(yj - canal_y + 2) <= 5 * scale) & (np.abs(xi - cx) <= 34 * scale)
    transverse = transverse & (zk >= 5) & (zk <= 5 + 0.45 * h)
    return body | arch | spinous | transverse


def make_phantom(shape_kji: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, prediction) uint8 arrays [k, j, i]; vertebra n occupies shape_k/24 slices (25 mm at 600)."""
    sp_kji = SPACING_IJK[::-1]
    gt = np.zeros(shape_kji, np.uint8)
    pred = np.zeros(shape_kji, np.uint8)
    step = shape_kji[0] // N_VERTEBRAE
    scale_xy = min(shape_kji[1], shape_kji[2]) / 512
    box = (step + 6, int(200 * scale_xy), int(180 * scale_xy))
    for n in range(N_VERTEBRAE):
        lab = n + 1
        # cervical small, lumbar large (C1 0.6, L5 1.25); everything shrinks with a smaller --size
        scale = (0.6 + 0.65 * n / (N_VERTEBRAE - 1)) * min(1.0, scale_xy)
        height = (0.6 + 0.25 * n / (N_VERTEBRAE - 1)) * step * sp_kji[0]  # discs of 15-4 mm between bodies
        m = _vertebra(scale, height, sp_kji, box)
        # C1 at the top (high k = superior in LPS), its body cut by the top face of the volume
        k0 = shape_kji[0] - (n + 1) * step + step // 2
        j0 = int(shape_kji[1] / 2 - box[1] * 0.3 + 25 * np.sin(np.pi * n / N_VERTEBRAE) * scale_xy)
        i0 = (shape_kji[2] - box[2]) // 2
        sl = (slice(k0, k0 + box[0]), slice(j0, j0 + box[1]), slice(i0, i0 + box[2]))
        m = m[: gt[sl].shape[0]]  # the top vertebra's box sticks out of the volume
        gt[sl][m] = lab
        kind = n % 4
        if kind == 0:
            p = np.roll(m, (1, int(rng.integers(1, 3)), -1), axis=(0, 1, 2))
        elif kind == 1:
            p = ndimage.binary_dilation(m)
        elif kind == 2:
            p = ndimage.binary_erosion(m)
        else:
            surf = m & ~ndimage.binary_erosion(m)
            p = m & ~(surf & (rng.random(m.shape) < 0.3))
        pred[sl][p] = lab
    return gt, pred


def write(arr: np.ndarray, path: Path) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(SPACING_IJK)
    img.SetOrigin((-180.0, -150.0, -900.0))
    sitk.WriteImage(img, str(path), useCompression=True)


# ----------------------------------------------------------------------------------------
# (a) ours


def _spineseg_command() -> list[str] | None:
    venv_exe = REPO / ".venv" / "bin" / "spineseg"
    exe = shutil.which("spineseg") or (str(venv_exe) if venv_exe.exists() else None)
    return [exe] if exe else None


def _cli_works(cmd: list[str], tmp: Path) -> tuple[bool, str]:
    """Run the subcommand on a tiny case; it works when it exits 0 and writes the JSON with our keys."""
    small = np.zeros((8, 10, 12), np.uint8)
    small[2:6, 3:7, 4:9] = 20
    write(small, tmp / "tiny.nii.gz")
    out = tmp / "tiny.json"
    r = subprocess.run(
        [*cmd, "evaluate", "--pred", str(tmp / "tiny.nii.gz"), "--gt", str(tmp / "tiny.nii.gz"), "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0 or not out.exists():
        return False, f"exit {r.returncode}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
    ok = "per_vertebra" in json.loads(out.read_text())
    return ok, "ok" if ok else "JSON without per_vertebra"


def run_ours(pred: Path, gt: Path, tmp: Path, mode: str) -> tuple[float, dict]:
    out = tmp / "ours.json"
    if mode == "cli":
        cmd = _spineseg_command()
        assert cmd is not None
        t = time.perf_counter()
        subprocess.run(
            [*cmd, "evaluate", "--pred", str(pred), "--gt", str(gt), "--json", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        dt = time.perf_counter() - t
        return dt, json.loads(out.read_text())
    t = time.perf_counter()
    ev = evaluate(sitk.ReadImage(str(pred)), sitk.ReadImage(str(gt)))
    dt = time.perf_counter() - t
    return dt, ev.to_json()


# ----------------------------------------------------------------------------------------
# (b) the MONAI way


def run_monai(pred: Path, gt: Path) -> tuple[float, dict[str, dict[str, float]]]:
    import torch
    from monai.metrics import DiceMetric, HausdorffDistanceMetric, SurfaceDistanceMetric

    t = time.perf_counter()
    gi, pi = sitk.ReadImage(str(gt)), sitk.ReadImage(str(pred))
    g = torch.from_numpy(sitk.GetArrayFromImage(gi))
    p = torch.from_numpy(sitk.GetArrayFromImage(pi))
    spacing = list(gi.GetSpacing()[::-1])  # array axes [k, j, i]
    labels = sorted(int(v) for v in torch.unique(g).tolist() if v)
    dice = DiceMetric(include_background=True, reduction="none")
    hd = HausdorffDistanceMetric(include_background=True, reduction="none")
    hd95 = HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")
    assd = SurfaceDistanceMetric(include_background=True, symmetric=True, reduction="none")
    out: dict[str, dict[str, float]] = {}
    for lab in labels:  # one one-hot channel at a time: 25 float channels of 512x512x600 would need 16 GB
        y = (g == lab)[None, None].float()
        yp = (p == lab)[None, None].float()
        out[L.name_of(lab)] = {
            "dice": float(dice(yp, y)[0, 0]),
            "hd": float(hd(yp, y, spacing=spacing)[0, 0]),
            "hd95": float(hd95(yp, y, spacing=spacing)[0, 0]),
            "assd": float(assd(yp, y, spacing=spacing)[0, 0]),
        }
        del y, yp
    return time.perf_counter() - t, out


# ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", nargs=3, type=int, default=(512, 512, 600), metavar=("I", "J", "K"))
    ap.add_argument("--repeats", type=int, default=3, help="runs of ours (the best is reported)")
    ap.add_argument("--force-api", action="store_true", help="time the Python API even when the CLI works")
    ap.add_argument("--ours-only", action="store_true", help="skip the MONAI way (no agreement check, no ratio)")
    args = ap.parse_args(argv)
    shape_kji = (args.size[2], args.size[1], args.size[0])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmpdir:
        tmp = Path(tmpdir)
        t = time.perf_counter()
        gt, pred = make_phantom(shape_kji, rng)
        gt_path, pred_path = tmp / "sub-bench_seg-vert_msk.nii.gz", tmp / "sub-bench_pred_seg-vert_msk.nii.gz"
        write(gt, gt_path)
        write(pred, pred_path)
        n_labels = len(np.unique(gt)) - 1
        del gt, pred
        print(f"phantom {args.size} at {SPACING_IJK} mm, {n_labels} labels, built in {time.perf_counter() - t:.1f} s")

        cmd = _spineseg_command()
        mode, why = "api", "no spineseg command"
        if args.force_api:
            why = "skipped (--force-api)"
        elif cmd:
            works, why = _cli_works(cmd, tmp)
            mode = "cli" if works else "api"
        how = "`spineseg evaluate` (subprocess)" if mode == "cli" else "Python API evaluate() + SimpleITK reads"
        print(f"timing ours via {how} (CLI check: {why})")
        ours_times = []
        for _ in range(args.repeats):
            dt, ours = run_ours(pred_path, gt_path, tmp, mode)
            ours_times.append(dt)
        api_time = run_ours(pred_path, gt_path, tmp, "api")[0] if mode == "cli" else None
        monai_time, ref = (float("nan"), {}) if args.ours_only else run_monai(pred_path, gt_path)

    worst = 0.0
    for name, r in ref.items():
        row = ours["per_vertebra"][name]
        for key in ("dice", "hd", "hd95", "assd"):
            diff = abs(row[key] - r[key])
            worst = max(worst, diff)
            assert diff <= 1e-4, f"{name} {key}: ours {row[key]} vs MONAI {r[key]}"
    assert len([v for v in ours["per_vertebra"].values() if v["in_gt"]]) == N_VERTEBRAE
    assert args.ours_only or len(ref) == N_VERTEBRAE

    best = min(ours_times)
    ratio = monai_time / best
    if mode == "cli":
        command = "spineseg evaluate --pred P --gt G --json OUT"
    else:
        command = "evaluate(sitk.ReadImage(P), sitk.ReadImage(G))"
    monai_how = "per-label one-hot DiceMetric + HausdorffDistanceMetric(None, 95) + SurfaceDistanceMetric(symmetric)"
    rows = [
        ("benchmark", "Testing/benchmarks/bench_metrics.py " + " ".join(argv if argv is not None else sys.argv[1:])),
        ("date", datetime.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("machine", f"nproc {os.cpu_count()}, {cpu_model()}, python {platform.python_version()}"),
        ("case", f"{args.size[0]}x{args.size[1]}x{args.size[2]} @ {SPACING_IJK} mm, {N_VERTEBRAE} labels, .nii.gz"),
        ("ours (a)", f"{command}: best {best:.2f} s of {[round(x, 2) for x in ours_times]}"),
    ]
    if api_time is not None:
        rows.append(("ours, in-process", f"evaluate(sitk.ReadImage(P), sitk.ReadImage(G)): {api_time:.2f} s"))
    rows.append(("goal", f"ours {'<=' if best <= 10 else '>'} 10 s"))
    if not args.ours_only:
        rows += [
            ("MONAI way (b)", f"{monai_how}: {monai_time:.1f} s"),
            ("speed-up", f"{ratio:.1f}x (goal >= 5x)"),
            ("agreement", f"max |difference| over Dice/HD/HD95/ASSD of {len(ref)} labels = {worst:.2e} (<= 1e-4)"),
        ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
