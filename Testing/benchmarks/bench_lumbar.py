"""Benchmark: the CT pipelines side by side on the lumbar spine (L1-L5, L6), phantoms and real CT.

Held-out phantoms: the benchmark mix (``spineseg_training.phantom_data.draw_config(seed, "benchmark")``)
of the seeds from ``--first-seed`` (>= 100000, never trained on) whose region holds the lumbar spine
(lumbar crops and full spines: seed % 5 in {0, 3, 4}), ``--cases`` of them, cached in ``--data``.
Real CT (where ../shared/data/real exists): verse005 (L1-L5), verse006 (L4, L5), the TotalSegmentator
abdomen CT (L1-L5 of its model-made labels) and the TPTBox L3 crop (L2-L4 labelled, only L3 complete).

Every pipeline of ``--pipelines`` present in the manifest of ``--resources`` runs on every case; both
masks are reduced to the lumbar levels and scored with ``SpineSegLib.metrics.evaluate`` (mask
centroids on both sides): Dice (missed = 0), FND and FPD (Lu et al.'s false negative / positive
Dice), HD (the paper's MSD) and ASSD (ASD) over vertebrae in both masks, identification, and the
wall time. The goal (issue 14): ``ct-lumbar`` Dice >= 0.93 on the phantoms and at least the Payer
pipeline's Dice on the real lumbar CTs.

Run: ``.venv/bin/python Testing/benchmarks/bench_lumbar.py --resources RES --first-seed 600000 --cases 12
--out out/benchmarks/lumbar.json --markdown out/benchmarks/lumbar.md``. ``--quick``: two small lumbar
phantoms and random tiny models (the smoke test; not a result).
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "Testing"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from machine import machine_info  # noqa: E402
from results import write_results  # noqa: E402

from SpineSegLib import bids  # noqa: E402
from SpineSegLib import labels as L  # noqa: E402
from SpineSegLib.errors import SpineSegError  # noqa: E402
from SpineSegLib.io import read_image, read_labelmap  # noqa: E402
from SpineSegLib.metrics import evaluate  # noqa: E402
from SpineSegLib.models import Manifest, ModelCard  # noqa: E402

LUMBAR = (20, 21, 22, 23, 24, 25)
HELD_OUT_START = 100_000
LUMBAR_REGIONS = {0, 3, 4}  # seed % 5 of the benchmark mix: full, lumbar, full
REAL = ("verse005_lumbar_ct", "verse006_lumbar_ct", "totalseg_example_abdomen_ct", "tptbox_spine_crops/sample_ct")
GOAL_DICE = 0.93


def lumbar_only(mask: sitk.Image) -> sitk.Image:
    arr = sitk.GetArrayFromImage(mask)
    arr[~np.isin(arr, LUMBAR)] = 0
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(mask)
    return out


def score(pred: sitk.Image, gt: sitk.Image, only: tuple[int, ...] | None = None) -> dict:
    """Lumbar-level metrics of ``pred`` against ``gt`` (``only``: score just these ground-truth levels)."""
    gt_l = lumbar_only(gt)
    pred_l = lumbar_only(pred)
    if only is not None:
        keep = [lab for lab in LUMBAR if lab not in only]
        arr = sitk.GetArrayFromImage(pred_l)
        arr[np.isin(arr, keep)] = 0
        pred_l = sitk.GetImageFromArray(arr)
        pred_l.CopyInformation(gt_l)
    ev = evaluate(pred_l, gt_l)
    rows = {L.name_of(k): v for k, v in ev.per_vertebra.items() if v.in_gt}
    return {
        "levels": {
            name: {
                "dice": v.dice,
                "fnd": v.fnd,
                "fpd": v.fpd,
                "hd": v.hd,
                "assd": v.assd,
                "identified": v.identified,
            }
            for name, v in rows.items()
        },
        "extra": [L.name_of(k) for k, v in ev.per_vertebra.items() if v.in_pred and not v.in_gt],
    }


def heldout(data: Path, first_seed: int, n: int, quick: bool) -> list[bids.CasePaths]:
    from spineseg_training.phantom_data import HELD_OUT_SEED_START, draw_config, write_case
    from SpineSegLib.phantom import PhantomConfig

    if first_seed < HELD_OUT_SEED_START:
        raise SpineSegError(f"--first-seed {first_seed}: held-out seeds start at {HELD_OUT_SEED_START}")
    seeds = [s for s in range(first_seed, first_seed + 5 * n) if s % 5 in LUMBAR_REGIONS][:n]
    paths = []
    for seed in seeds:
        config = PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.0)) if quick else draw_config(seed, "benchmark")
        paths.append(write_case(data, seed, config))
    return paths


def run_pipelines(pipelines: dict, image: sitk.Image, gt: sitk.Image, only=None) -> dict:
    out = {}
    for name, pipe in pipelines.items():
        t0 = time.perf_counter()
        result = pipe.run(image)
        seconds = time.perf_counter() - t0
        pred = result.labelmap if result.labelmap is not None else sitk.Image(image.GetSize(), sitk.sitkUInt8)
        pred.CopyInformation(image)
        out[name] = {**score(pred, gt, only), "seconds": round(seconds, 2), "messages": result.messages}
    return out


def pooled(cases: list[dict], name: str) -> dict:
    levels = [lv for c in cases for lv in c["runs"][name]["levels"].values()]
    both = [lv for lv in levels if lv["hd"] is not None]
    return {
        "vertebrae": len(levels),
        "dice": float(np.mean([lv["dice"] for lv in levels])) if levels else None,
        "fnd": float(np.mean([lv["fnd"] for lv in levels])) if levels else None,
        "fpd": float(np.mean([lv["fpd"] for lv in levels])) if levels else None,
        "hd": float(np.mean([lv["hd"] for lv in both])) if both else None,
        "assd": float(np.mean([lv["assd"] for lv in both])) if both else None,
        "identified": sum(lv["identified"] for lv in levels),
        "seconds": float(np.mean([c["runs"][name]["seconds"] for c in cases])) if cases else None,
    }


def _f(v, digits=4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(res: dict) -> str:
    names = res["settings"]["pipelines"]
    lines = [
        "### Lumbar spine: the CT pipelines side by side"
        + (" (QUICK smoke run, not a result)" if res["settings"]["quick"] else ""),
        "",
        f"- command: `{res['command']}`",
        f"- date: {res['date']}",
        f"- machine: {res['machine']}",
        f"- models: {res['settings']['models']}",
        f"- phantoms: {res['settings']['phantoms']}",
        "- scored: the lumbar levels only (L1-L5, L6), both masks reduced to them; mask centroids on both sides",
        "",
    ]
    for part in ("phantoms", "real"):
        cases = res[part]
        if not cases:
            lines += [f"{part}: none ({res.get(part + '_note', '')})", ""]
            continue
        lines += [f"{part.capitalize()}, pooled over every ground-truth lumbar vertebra:", ""]
        lines += [
            "| pipeline | vertebrae | Dice | FND | FPD | HD mm | ASSD mm | identified | s/case |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name in names:
            p = res["pooled"][part][name]
            lines.append(
                f"| {name} | {p['vertebrae']} | {_f(p['dice'])} | {_f(p['fnd'])} | {_f(p['fpd'])} | {_f(p['hd'], 2)} "
                f"| {_f(p['assd'], 2)} | {p['identified']}/{p['vertebrae']} | {_f(p['seconds'], 1)} |"
            )
        lines += [
            "",
            "| case | " + " | ".join(f"{n} Dice (per level)" for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for c in cases:
            cells = []
            for name in names:
                run = c["runs"][name]
                per = ", ".join(f"{k} {v['dice']:.2f}" for k, v in run["levels"].items())
                extra = f"; extra {', '.join(run['extra'])}" if run["extra"] else ""
                cells.append(f"{per}{extra}")
            lines.append(f"| {c['case']} | " + " | ".join(cells) + " |")
        lines.append("")
    goal = res.get("goal")
    if goal:
        lines += [f"Goal: ct-lumbar phantom Dice >= {GOAL_DICE}: {_f(goal['phantom_dice'])} ({goal['phantom']})."]
        if goal.get("real") is not None:
            lines += [f"Goal: ct-lumbar real-CT Dice >= the Payer pipeline's: {goal['real']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resources", type=Path, help="Resources folder whose manifest has the pipelines")
    ap.add_argument("--pipelines", nargs="+", default=["ct-lumbar", "ct-full-spine"])
    ap.add_argument("--first-seed", type=int, default=600_000)
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--data", type=Path, help="held-out phantom folder (default: a temporary one)")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data" / "real")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "lumbar.json")
    ap.add_argument("--markdown", type=Path, default=REPO / "out" / "benchmarks" / "lumbar.md")
    ap.add_argument("--quick", action="store_true", help="2 small lumbar phantoms, random tiny models")
    args = ap.parse_args(argv)
    import torch

    from SpineSegLib.pipeline import open_pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    resources = args.resources
    if args.quick and resources is None:
        from slicer_fixtures import write_tiny_resources

        resources = write_tiny_resources(tmp.name, lumbar=True)
    manifest = Manifest.load((resources / "models" / "manifest.json") if resources else None)
    names = [n for n in args.pipelines if n in manifest.pipelines]
    if not names:
        raise SystemExit(f"none of {args.pipelines} in {manifest.path}")
    pipelines = {n: open_pipeline(n, device="cpu", manifest=manifest) for n in names}
    models = {}
    for n in names:
        spec = manifest.method(n)
        cards = [ModelCard.read(manifest.entry(n, s).card) for s in spec.stage_names]
        models[n] = ", ".join(
            f"{c.stage} {c.sha256[:12]} (real cases seen: {', '.join(c.real_cases) or 'none'})" for c in cards
        )
    data = args.data or Path(tmp.name) / "phantoms"
    n_cases = 2 if args.quick else args.cases
    res: dict = {
        "command": " ".join(shlex.quote(a) for a in ["Testing/benchmarks/bench_lumbar.py", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "pipelines": names,
            "quick": args.quick,
            "models": "; ".join(f"{n}: {m}" for n, m in models.items()),
            "phantoms": f"{n_cases} benchmark-mix phantoms with a lumbar spine, seeds from {args.first_seed}"
            if not args.quick
            else "2 small lumbar phantoms at 2 mm",
        },
        "phantoms": [],
        "real": [],
    }
    for paths in heldout(data, args.first_seed, n_cases, args.quick):
        image, gt = read_image(paths.image), read_labelmap(paths.vertebra_mask)
        if not np.isin(sitk.GetArrayViewFromImage(gt), LUMBAR).any():
            continue
        print(f"{paths.image.name} ...", flush=True)
        res["phantoms"].append({"case": paths.image.name, "runs": run_pipelines(pipelines, image, gt)})
    if not args.quick and not args.no_real and args.shared.is_dir():
        from bench_real import CASES, read_case

        for case in (c for c in CASES if c.name in REAL):
            image, gt = read_case(args.shared, case)
            only = tuple(lab for lab in case.expected if lab in LUMBAR) if case.only_labelled else None
            print(f"{case.name} ...", flush=True)
            res["real"].append(
                {"case": case.name, "note": case.note, "runs": run_pipelines(pipelines, image, gt, only)}
            )
    else:
        res["real_note"] = "--quick, --no-real or no ../shared/data/real"
    res["pooled"] = {part: {n: pooled(res[part], n) for n in names} for part in ("phantoms", "real")}
    if "ct-lumbar" in names:
        dice = res["pooled"]["phantoms"]["ct-lumbar"]["dice"]
        res["goal"] = {"phantom_dice": dice, "phantom": "met" if dice is not None and dice >= GOAL_DICE else "MISSED"}
        if res["real"] and "ct-full-spine" in names:
            a, b = res["pooled"]["real"]["ct-lumbar"]["dice"], res["pooled"]["real"]["ct-full-spine"]["dice"]
            res["goal"]["real"] = f"{_f(a)} vs {_f(b)}: " + ("met" if a >= b else "MISSED")
    write_results(res, markdown(res), args.out, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
