"""Benchmark: the MR pipeline (``mr-t2w``, SPINEPS) on fresh MR phantoms and on the real MR in ../shared.

Held-out phantoms: the benchmark mix of ``spineseg_training.phantom_data.draw_config(seed, "benchmark",
"mr")`` (sagittal stacks, 3-5 mm slices) from ``--first-seed`` (>= 100000, never trained on), ``--cases``
of them, written to ``--data``. Scored per ground-truth vertebra: instance Dice (the pipeline's
vertebra ids against the phantom's ``seg-vert`` mask, missed = 0), identification (SpineSeg's rule:
the predicted body centre within 20 mm and closest to its own true body centre) and point error; per
case: the semantic Dice of the intervertebral discs (class 100) and of every structure.

Real MR (where ``--shared`` exists; used from there, never copied): the three folders of manual masks
and the TPTBox crop. Vertebral-body masks (``vb_msk``: T11-L5 or L1-L5): the body of a vertebra is its
instance inside the body classes (border, interior, endplates, dens); scored per level as Dice and
identification of the body centroid against the given body centroid. Disc masks (``disc_msk``: 120..124,
the disc below L1..L5): the pipeline's discs 100+X, Dice per level. TPTBox (C5-C7, SPINEPS-style): the
vertebrae and discs as the phantoms are scored.

Goals (issue 15): phantoms vertebra Dice >= 0.93, identification >= 99 %, disc Dice >= 0.93; real MR
body identification >= 95 % and body Dice >= 0.85. ``--speed``: a 512x512x20 sagittal MR, end to end.

Run: ``.venv/bin/python Testing/benchmarks/bench_mr.py --first-seed 920000 --cases 12 --data DATA
--out out/benchmarks/mr.json --markdown out/benchmarks/mr.md [--resources RES] [--speed]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "training"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from machine import machine_info  # noqa: E402
from results import write_results  # noqa: E402

from SpineSegLib import labels as L  # noqa: E402
from SpineSegLib.centroids import Centroids  # noqa: E402
from SpineSegLib.errors import SpineSegError  # noqa: E402
from SpineSegLib.io import read_centroids, read_image, read_labelmap  # noqa: E402
from SpineSegLib.methods.spineps import semantic_ids as S  # noqa: E402
from SpineSegLib.metrics.points import identified, point_errors  # noqa: E402
from SpineSegLib.models import Manifest, ModelCard  # noqa: E402

PIPELINE = "mr-t2w"
GOALS = {"phantom_dice": 0.93, "phantom_id": 0.99, "phantom_disc": 0.93, "real_id": 0.95, "real_body_dice": 0.85}
REAL_SETS = ("mr_t2_vertebral_bodies", "mr_lumbar_vertebral_bodies", "mr_t2_discs")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.logical_and(a, b).sum()) / total if total else float("nan")


def body_centres(levels: np.ndarray, body: np.ndarray, image: sitk.Image) -> Centroids:
    """Centre of mass (LPS mm) of each vertebra's body voxels."""
    out = {}
    for lab in [int(v) for v in np.unique(levels[body]) if 0 < v < 100]:
        kji = np.argwhere(body & (levels == lab)).mean(0)
        out[lab] = np.asarray(image.TransformContinuousIndexToPhysicalPoint(kji[::-1].tolist()))
    return Centroids(out)


def score_vertebrae(result, gt: np.ndarray, gt_points: Centroids, image: sitk.Image, body_only: bool) -> dict:
    """Per true level: Dice (whole vertebra, or its body where the truth is bodies only), identified, point error."""
    levels = sitk.GetArrayFromImage(result.labelmap).astype(np.int64)
    semantic = sitk.GetArrayFromImage(result.semantic) if result.semantic is not None else np.zeros_like(levels)
    body = np.isin(semantic, S.BODY_IDS)
    pred = np.where((levels < 100) & (body if body_only else True), levels, 0)
    points = body_centres(levels, body, image)
    truth_levels = [int(v) for v in np.unique(gt) if v in L.VERTEBRA_LABELS]
    gt_points = gt_points.subset(truth_levels)
    ident = identified(points, gt_points)
    errors = point_errors(points, gt_points)
    rows = {}
    for lab in truth_levels:
        rows[L.name_of(lab)] = {
            "dice": dice(gt == lab, pred == lab),
            "identified": bool(ident.get(lab, False)),
            "point_error_mm": errors.get(lab),
        }
    extra = [L.name_of(v) for v in np.unique(pred) if v and v not in truth_levels]
    return {"levels": rows, "extra": extra, "predicted": [L.name_of(v) for v in points.labels]}


def score_discs(result, gt: np.ndarray) -> dict:
    levels = sitk.GetArrayFromImage(result.labelmap).astype(np.int64)
    out = {}
    for lab in [int(v) for v in np.unique(gt) if 100 < v < 200]:
        out[f"{L.name_of(lab - 100)}/below"] = {"dice": dice(gt == lab, levels == lab)}
    return out


def semantic_dice(result, truth: np.ndarray) -> dict:
    from SpineSegLib.methods.spineps.targets import fourteen_structures

    pred = sitk.GetArrayFromImage(result.semantic)
    spacing = np.asarray(result.semantic.GetSpacing(), float)[::-1]
    truth = fourteen_structures(truth, spacing)
    return {S.NAMES.get(int(v), str(v)): dice(truth == v, pred == v) for v in np.unique(truth) if v}


def phantom_cases(data: Path, first_seed: int, n: int, quick: bool = False) -> list:
    from spineseg_training.phantom_data import HELD_OUT_SEED_START, draw_config, write_case

    if quick:  # one small lumbar MR (the smoke test; not a result)
        from SpineSegLib.phantom import PhantomConfig

        cfg = PhantomConfig(modality="mr", region="lumbar", spacing=(2.0, 2.0, 4.0), orientation="PIR", field="tight")
        return [(first_seed, write_case(data, first_seed, cfg))]
    if first_seed < HELD_OUT_SEED_START:
        raise SpineSegError(f"--first-seed {first_seed}: held-out seeds start at {HELD_OUT_SEED_START}")
    return [
        (seed, write_case(data, seed, draw_config(seed, "benchmark", "mr")))
        for seed in range(first_seed, first_seed + n)
    ]


def run_phantom(pipe, seed: int, paths) -> dict:
    image, gt_img = read_image(paths.image), read_labelmap(paths.vertebra_mask)
    gt = sitk.GetArrayFromImage(gt_img)
    sub = sitk.GetArrayFromImage(read_labelmap(paths.subregion_mask))
    t0 = time.perf_counter()
    result = pipe.run(image)
    seconds = time.perf_counter() - t0
    truth_points = read_centroids(paths.centroids, reference=gt_img)
    row = score_vertebrae(result, gt, truth_points, image, body_only=False)
    structures = semantic_dice(result, sub)
    sidecar = json.loads(paths.sidecar.read_text())
    cfg = sidecar.get("config", {})
    return {
        "case": paths.image.name,
        "seed": seed,
        "scan": {k: cfg.get(k) for k in ("region", "spacing", "orientation", "field")},
        **row,
        "disc_dice": structures.get(S.NAMES[S.DISC]),
        "structures": structures,
        "seconds": round(seconds, 2),
        "messages": result.messages,
    }


def real_cases(shared: Path) -> list[tuple[str, str, Path]]:
    out = []
    for folder in REAL_SETS:
        for case in sorted((shared / folder).glob("case*")):
            out.append((folder, case.name, case))
    tpt = shared / "tptbox_spine_crops" / "sample_mri"
    if tpt.is_dir():
        out.append(("tptbox_spine_crops", "sample_mri", tpt))
    return out


def run_real(pipe, folder: str, name: str, case: Path) -> dict:
    if folder == "tptbox_spine_crops":
        image = read_image(next(case.glob("*_T2w.nii.gz")))
        gt_img = read_labelmap(next(case.glob("*_seg-vert_*msk.nii.gz")))
        gt = sitk.GetArrayFromImage(gt_img).astype(np.int64)
    else:
        image = read_image(case / "image.nii.gz")
        mask = case / ("disc_msk.nii.gz" if folder == "mr_t2_discs" else "vb_msk.nii.gz")
        gt_img = read_labelmap(mask)
        gt = np.rint(sitk.GetArrayFromImage(gt_img)).astype(np.int64)
    t0 = time.perf_counter()
    result = pipe.run(image)
    seconds = time.perf_counter() - t0
    row: dict = {"set": folder, "case": name, "seconds": round(seconds, 2), "messages": result.messages}
    if folder == "mr_t2_discs":
        row["discs"] = score_discs(result, gt)
        return row
    ctd = case / "vb_ctd_voxel.json"
    if ctd.is_file():
        points = read_centroids(ctd, reference=image)  # VerSe format: continuous voxel indices
    else:  # TPTBox: whole vertebrae with subregions; the true points are the centres of their bodies
        sub = sitk.GetArrayFromImage(read_labelmap(next(case.glob("*_seg-subreg_*msk.nii.gz"))))
        points = body_centres(gt, np.isin(sub, S.BODY_IDS), image)
    row.update(score_vertebrae(result, gt, points, image, body_only=folder != "tptbox_spine_crops"))
    if folder == "tptbox_spine_crops":
        row["discs"] = score_discs(result, gt)
    return row


def pooled_levels(rows: list[dict]) -> dict:
    levels = [lv for r in rows for lv in r.get("levels", {}).values()]
    errors = [lv["point_error_mm"] for lv in levels if lv["point_error_mm"] is not None]
    discs = [d["dice"] for r in rows for d in r.get("discs", {}).values()]
    return {
        "vertebrae": len(levels),
        "dice": float(np.mean([lv["dice"] for lv in levels])) if levels else None,
        "identified": sum(lv["identified"] for lv in levels),
        "id_rate": sum(lv["identified"] for lv in levels) / len(levels) if levels else None,
        "point_error_mm": float(np.mean(errors)) if errors else None,
        "discs": len(discs),
        "disc_dice": float(np.mean(discs)) if discs else None,
    }


def speed(pipe, tmp: Path) -> dict:
    """A 512x512x20 sagittal MR phantom (0.6 mm in plane, 4 mm slices), end to end, and the peak memory."""
    import resource

    from SpineSegLib.phantom import PhantomConfig, generate_phantom

    cfg = PhantomConfig(modality="mr", region="lumbar", spacing=(0.6, 0.6, 4.0), orientation="PIR", field="tight")
    image = generate_phantom(5, cfg).image
    size = image.GetSize()
    centre = [s // 2 for s in size]
    lo = [max(0, c - h) for c, h in zip(centre, (256, 256, 10))]
    image = sitk.RegionOfInterest(image, [min(512, size[0]), min(512, size[1]), min(20, size[2])], lo)
    t0 = time.perf_counter()
    pipe.run(image)
    return {
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "seconds": round(time.perf_counter() - t0, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def _f(v, digits=4) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def markdown(res: dict) -> str:
    s = res["settings"]
    lines = [
        "### MR: `mr-t2w` (SPINEPS) on fresh MR phantoms and real MR"
        + (" (QUICK smoke run, not a result)" if s.get("quick") else ""),
        "",
        f"- command: `{res['command']}`",
        f"- date: {res['date']}",
        f"- machine: {res['machine']}",
        f"- models: {s['models']}",
        f"- phantoms: {s['phantoms']}",
        "",
    ]
    p = res["pooled"]["phantoms"]
    if res["phantoms"]:
        lines += [
            "Phantoms, pooled over every ground-truth vertebra (missed = Dice 0):",
            "",
            "| vertebrae | Dice | identified | point error mm | disc Dice (semantic, per case) | s/case |",
            "|---|---|---|---|---|---|",
            f"| {p['vertebrae']} | {_f(p['dice'])} | {p['identified']}/{p['vertebrae']} "
            f"({_f(100 * (p['id_rate'] or 0), 1)} %) "
            f"| {_f(p['point_error_mm'], 2)} | {_f(res['pooled']['phantom_disc_dice'])} "
            f"| {_f(float(np.mean([c['seconds'] for c in res['phantoms']])), 1)} |",
            "",
            "| case | region | spacing mm | orientation | GT | identified | predicted | Dice | disc Dice | s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in res["phantoms"]:
            n = len(c["levels"])
            ok = sum(v["identified"] for v in c["levels"].values())
            d = np.mean([v["dice"] for v in c["levels"].values()]) if n else None
            sp = "x".join(f"{v:g}" for v in c["scan"]["spacing"] or [])
            lines.append(
                f"| {c['case']} | {c['scan']['region']} | {sp} | {c['scan']['orientation']} | {n} | {ok} | "
                f"{', '.join(c['predicted']) or '-'} | {_f(d)} | {_f(c['disc_dice'])} | {c['seconds']} |"
            )
        names = sorted({k for c in res["phantoms"] for k in c["structures"]})
        lines += ["", "Semantic Dice per structure, mean over the phantoms that have it:", ""]
        lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
        lines.append(
            "| "
            + " | ".join(
                _f(float(np.nanmean([c["structures"][k] for c in res["phantoms"] if k in c["structures"]])), 3)
                for k in names
            )
            + " |"
        )
        lines.append("")
    if res["real"]:
        lines += [
            "Real MR (never trained on; used from ../shared): body Dice and body-centroid identification per data set",
            "",
            "| data set | cases | vertebrae | body Dice | identified | point error mm | discs | disc Dice | s/case |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, q in res["pooled"]["real"].items():
            rows = [r for r in res["real"] if r["set"] == name]
            rate = f" ({_f(100 * q['id_rate'], 1)} %)" if q["id_rate"] is not None else ""
            lines.append(
                f"| {name} | {len(rows)} | {q['vertebrae']} | {_f(q['dice'])} "
                f"| {q['identified']}/{q['vertebrae']}{rate} "
                f"| {_f(q['point_error_mm'], 2)} | {q['discs']} | {_f(q['disc_dice'])} "
                f"| {_f(float(np.mean([r['seconds'] for r in rows])), 1)} |"
            )
        levels = sorted(
            {k for r in res["real"] for k in r.get("levels", {})}, key=lambda n: L.anatomical_order([L.id_of(n)])
        )
        order = L.anatomical_order([L.id_of(n) for n in levels])
        names = [L.name_of(v) for v in order]
        lines += ["", "Per level, all body-mask sets pooled (identified / present; mean body Dice):", ""]
        lines += ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        cells_id, cells_d = [], []
        for n in names:
            lv = [r["levels"][n] for r in res["real"] if n in r.get("levels", {})]
            cells_id.append(f"{sum(v['identified'] for v in lv)}/{len(lv)}")
            cells_d.append(_f(float(np.mean([v["dice"] for v in lv])), 2))
        lines += ["| identified | " + " | ".join(cells_id) + " |", "| Dice | " + " | ".join(cells_d) + " |", ""]
    elif res.get("real_note"):
        lines += [f"Real MR: {res['real_note']}", ""]
    if res.get("speed"):
        sp = res["speed"]
        lines += [
            f"Speed: {sp['size']} voxels at {sp['spacing']} mm, end to end {sp['seconds']} s "
            f"(peak resident memory of the process {sp['peak_rss_gib']} GiB).",
            "",
        ]
    lines += ["Goals (issue 15):", "", "| goal | value | target | |", "|---|---|---|---|"]
    for key, label, value in res["goals"]:
        target = GOALS[key]
        ok = value is not None and value >= target
        lines.append(f"| {label} | {_f(value)} | >= {target} | {'met' if ok else '**miss**'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resources", type=Path, help="Resources folder whose manifest has mr-t2w (default: bundled)")
    ap.add_argument("--first-seed", type=int, default=920_000)
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--data", type=Path, required=True, help="held-out MR phantom folder")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data" / "real")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--speed", action="store_true", help="also time a 512x512x20 sagittal MR")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "mr.json")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--quick", action="store_true", help="one small lumbar MR phantom, no real MR (a smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.no_real, args.cases = True, 1
    import torch

    from SpineSegLib.pipeline import open_pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    manifest = Manifest.load((args.resources / "models" / "manifest.json") if args.resources else None)
    if PIPELINE not in manifest.pipelines:
        print(f"bench_mr: no {PIPELINE} pipeline in {manifest.path}: nothing to benchmark")
        return 0
    pipe = open_pipeline(PIPELINE, device="cpu", manifest=manifest)
    cards = [ModelCard.read(manifest.entry(PIPELINE, s).card) for s in pipe.method.stage_names]
    res: dict = {
        "benchmark": "bench_mr",
        "command": " ".join(shlex.quote(a) for a in ["Testing/benchmarks/bench_mr.py", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "quick": args.quick,
            "models": "; ".join(f"{c.stage} {c.sha256[:12]} ({c.training_data})" for c in cards),
            "phantoms": f"{args.cases} benchmark-mix MR phantoms, seeds {args.first_seed}.."
            f"{args.first_seed + args.cases - 1}",
        },
        "phantoms": [],
        "real": [],
    }
    for seed, paths in phantom_cases(args.data, args.first_seed, args.cases, args.quick):
        print(f"{paths.image.name} ...", flush=True)
        res["phantoms"].append(run_phantom(pipe, seed, paths))
    if not args.no_real and args.shared.is_dir():
        for folder, name, case in real_cases(args.shared):
            print(f"{folder}/{name} ...", flush=True)
            res["real"].append(run_real(pipe, folder, name, case))
    else:
        res["real_note"] = "--no-real or no ../shared/data/real"
    if args.speed:
        res["speed"] = speed(pipe, args.data)
    res["pooled"] = {
        "phantoms": pooled_levels(res["phantoms"]),
        "phantom_disc_dice": float(np.nanmean([c["disc_dice"] for c in res["phantoms"] if c["disc_dice"] is not None]))
        if res["phantoms"]
        else None,
        "real": {
            name: pooled_levels([r for r in res["real"] if r["set"] == name])
            for name in dict.fromkeys(r["set"] for r in res["real"])
        },
    }
    body_rows = [r for r in res["real"] if r["set"] in REAL_SETS[:2]]
    real = pooled_levels(body_rows)
    p = res["pooled"]["phantoms"]
    res["goals"] = [
        ("phantom_dice", "phantoms: vertebra instance Dice", p["dice"]),
        ("phantom_id", "phantoms: identification rate", p["id_rate"]),
        ("phantom_disc", "phantoms: disc Dice", res["pooled"]["phantom_disc_dice"]),
        ("real_id", "real MR: body identification", real["id_rate"]),
        ("real_body_dice", "real MR: body Dice", real["dice"]),
    ]
    write_results(res, markdown(res), args.out, args.markdown or args.out.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
