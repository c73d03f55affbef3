"""Benchmark: accuracy of the full CT pipeline (spine -> vertebrae -> segmentation) on held-out phantoms and real CT.

Held-out set: N (default 20, the benchmark needs >= 20) phantom CTs made with
``spineseg_training.phantom_data.make_dataset(DATA, range(100000, 100000 + N), kind="benchmark")``
(seeds >= 100000 were never used in training; ``--first-seed`` draws a fresh set, e.g. 400000),
cached in ``--data`` so that a rerun skips the generation. Each case runs through ``Pipeline``
(bundled weights by default, ``--resources`` for another Resources folder) and is scored with
``SpineSegLib.metrics.evaluate`` against its vertebra mask and body-centroid ``*_ctd.json``;
the pipeline's own centroids are judged.

Reported per case and pooled over the set (every ground-truth vertebra of every case counts
once): identification rate (sum identified / sum ground-truth vertebrae), mean point error
over the ground-truth vertebrae with a predicted centroid and over the identified ones, mean
Dice over all ground-truth vertebrae (missed = 0), HD, HD95 and ASSD over vertebrae present in
both masks, and PQ/SQ/RQ from the pooled panoptic counts; goals: id >= 99 %, PE (over all with
a prediction) <= 2.0 mm, Dice >= 0.93. Without goals, the same metrics on the bundled real CT
cases (Testing/data/real): the TotalSegmentator example (model-made labels, no body-centroid
file, so both sides use mask centroids) and the TPTBox L3 crop (only L3 is complete).

Run (after training, bundled weights; about a minute per case on 2 cores):
``.venv/bin/python Testing/benchmarks/bench_accuracy.py --out out/benchmarks/accuracy.json
--markdown out/benchmarks/accuracy.md``. ``--quick``: 2 small lumbar phantoms at 2 mm and the
tiny hand-set test models (Testing/slicer_fixtures.py), for the smoke test.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "Testing"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import SimpleITK as sitk  # noqa: E402
from machine import machine_info  # noqa: E402
from results import write_results  # noqa: E402

from SpineSegLib import bids  # noqa: E402
from SpineSegLib import labels as L  # noqa: E402
from SpineSegLib.errors import SpineSegError  # noqa: E402
from SpineSegLib.geometry import is_oblique, orientation_code  # noqa: E402
from SpineSegLib.io import read_centroids, read_image, read_labelmap  # noqa: E402
from SpineSegLib.metrics import evaluate, resample_prediction  # noqa: E402
from SpineSegLib.metrics.report import DEFINITIONS  # noqa: E402

HELD_OUT_START = 100_000  # = spineseg_training.phantom_data.HELD_OUT_SEED_START (checked in main)
DEFAULT_CASES = 20
QUICK_CASES = 2
QUICK_REGION = "lumbar"
QUICK_SPACING = (2.0, 2.0, 2.0)
#: metric -> (comparison, threshold); PE is the mean over all ground-truth vertebrae with a predicted centroid.
GOALS = {"id_rate": (">=", 0.99), "pe_mean_mm_all": ("<=", 2.0), "dice_mean": (">=", 0.93)}
GOAL_NAMES = {"id_rate": "identification rate", "pe_mean_mm_all": "mean point error", "dice_mean": "mean Dice"}

REAL = REPO / "Testing" / "data" / "real"


@dataclasses.dataclass(frozen=True)
class RealCase:
    name: str
    image: Path
    labels: Path
    note: str
    focus: int | None = None  # the one complete vertebra, reported on its own


REAL_CASES = (
    RealCase(
        "totalseg_example_abdomen_ct",
        REAL / "totalseg_example_abdomen_ct" / "example_ct.nii.gz",
        REAL / "totalseg_example_abdomen_ct" / "derived_vert_verse-labels.nii.gz",
        "3 mm CT, lower thorax to pelvis; labels made by TotalSegmentator (a model, not manual), remapped to "
        "VerSe ids T11..L5 + S1 (T11 only a sliver); no body-centroid file: PE/identification compare the "
        "whole-vertebra mask centroids of prediction and ground truth",
    ),
    RealCase(
        "tptbox_sample_ct",
        REAL / "tptbox_spine_crops" / "sample_ct" / "sub-ct_label-22_ct.nii.gz",
        REAL / "tptbox_spine_crops" / "sample_ct" / "sub-ct_seg-vert_label-22_msk.nii.gz",
        "1.5 mm CT crop around L3 with L2..L4 instance labels, only L3 complete (L2/L4 cut by the crop); "
        "PE/identification use mask centroids on both sides",
        focus=22,
    ),
)


# ----------------------------------------------------------------------------------------
# Machine and models


def load_pipeline(resources: Path | None, name: str, device: str):
    """(Pipeline with its three models loaded, {stage: model description}); a bad folder fails here, by name."""
    from SpineSegLib.models import Manifest
    from SpineSegLib.models.manifest import resources_dir
    from SpineSegLib.pipeline import STAGES, Pipeline

    folder = resources or resources_dir()
    manifest = Manifest.load(Path(folder) / "models" / "manifest.json")
    pipeline = Pipeline(name, device=device, manifest=manifest)
    models = {}
    for stage in STAGES:
        _, card = pipeline.model(stage)
        entry = manifest.entry(name, stage)
        models[stage] = {"name": card.name, "version": card.version, "weights": entry.weights.name}
        models[stage]["sha256"] = entry.sha256[:12]
    return pipeline, models, Path(folder)


# ----------------------------------------------------------------------------------------
# Held-out data


def heldout_configs(n: int, quick: bool, first_seed: int = HELD_OUT_START) -> list[tuple[int, object]]:
    """(seed, PhantomConfig) of the held-out cases: the benchmark mix, or small lumbar 2 mm cases for --quick."""
    from spineseg_training.phantom_data import draw_config

    out = []
    for seed in range(first_seed, first_seed + n):
        cfg = draw_config(seed, kind="benchmark")
        if quick:
            cfg = dataclasses.replace(cfg, region=QUICK_REGION, spacing=QUICK_SPACING)
        out.append((seed, cfg))
    return out


def _same_config(sidecar: Path, config) -> bool:
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    return json.dumps(meta.get("config"), sort_keys=True) == json.dumps(config.as_dict(), sort_keys=True)


def prepare_heldout(root: Path, configs: list, quick: bool) -> list[bids.CasePaths]:
    """Generate the cases missing from ``root`` (cached ones are reused); refuse a cache made with other settings."""
    from spineseg_training.phantom_data import make_dataset, write_case

    paths = [bids.case_paths(root, f"phantom{seed:06d}") for seed, _ in configs]
    for (seed, cfg), p in zip(configs, paths):
        if p.sidecar.exists() and not _same_config(p.sidecar, cfg):
            raise SpineSegError(
                f"{p.sidecar}: cached phantom {seed} was made with other settings than this run's "
                f"({'--quick' if quick else 'benchmark'} mix); use another --data folder"
            )
    missing = [seed for (seed, _), p in zip(configs, paths) if not p.sidecar.exists()]
    if missing:
        print(f"generating {len(missing)} held-out phantom(s) in {root} (cached for reruns)", flush=True)
        t0 = time.perf_counter()
        if quick:
            for seed, cfg in configs:
                write_case(root, seed, cfg)
        else:
            make_dataset(root, range(configs[0][0], configs[-1][0] + 1), kind="benchmark")
        print(f"generated in {time.perf_counter() - t0:.1f} s", flush=True)
    return paths


# ----------------------------------------------------------------------------------------
# Metrics


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def aggregate(rows: list[dict], summaries: list[dict]) -> dict:
    """Pooled metrics of per-vertebra rows (``Evaluation.to_json()["per_vertebra"]`` values) and their summaries.

    Every ground-truth vertebra counts once; PQ comes from the pooled panoptic counts
    (sum IoU = SQ x TP per case).
    """
    gt = [r for r in rows if r["in_gt"]]
    both = [r for r in gt if r["in_pred"]]
    n_id = sum(bool(r["identified"]) for r in gt)
    tp = sum(s["panoptic_tp"] for s in summaries)
    fp = sum(s["panoptic_fp"] for s in summaries)
    fn = sum(s["panoptic_fn"] for s in summaries)
    iou = math.fsum(s["sq"] * s["panoptic_tp"] for s in summaries)
    denominator = tp + fp / 2 + fn / 2
    return {
        "n_gt": len(gt),
        "n_identified": n_id,
        "n_missed": len(gt) - len(both),
        "n_extra": sum(r["in_pred"] and not r["in_gt"] for r in rows),
        "id_rate": n_id / len(gt) if gt else None,
        "pe_mean_mm_all": _mean([r["pe_mm"] for r in gt if r["pe_mm"] is not None]),
        "n_pe_all": sum(r["pe_mm"] is not None for r in gt),
        "pe_mean_mm_identified": _mean([r["pe_mm"] for r in gt if r["identified"] and r["pe_mm"] is not None]),
        "dice_mean": _mean([r["dice"] for r in gt]),
        "hd_mean": _mean([r["hd"] for r in both if r["hd"] is not None]),
        "hd95_mean": _mean([r["hd95"] for r in both if r["hd95"] is not None]),
        "assd_mean": _mean([r["assd"] for r in both if r["assd"] is not None]),
        "n_surface": len(both),
        "pq": iou / denominator if denominator else None,
        "sq": iou / tp if tp else 0.0,
        "rq": tp / denominator if denominator else None,
        "panoptic_tp": tp,
        "panoptic_fp": fp,
        "panoptic_fn": fn,
    }


def per_level(cases: list[dict]) -> list[dict]:
    """Per vertebra level, pooled over cases: how often it is present, identified, and its mean Dice.

    Shows *where* along the spine a model fails (the pooled rates hide it).
    """
    rows: dict[int, list[dict]] = collections.defaultdict(list)
    for c in cases:
        for r in c["per_vertebra"].values():
            if r["in_gt"]:
                rows[int(r["label"])].append(r)
    return [
        {
            "label": lab,
            "name": L.name_of(lab),
            "n_gt": len(rows[lab]),
            "n_identified": sum(bool(r["identified"]) for r in rows[lab]),
            "dice_mean": _mean([r["dice"] for r in rows[lab]]),
        }
        for lab in L.anatomical_order(rows)
    ]


def goal_checks(overall: dict) -> dict:
    out = {}
    for key, (op, threshold) in GOALS.items():
        value = overall.get(key)
        ok = value is not None and (value >= threshold if op == ">=" else value <= threshold)
        out[key] = {"value": value, "goal": f"{op} {threshold:g}", "pass": bool(ok)}
    return out


def scored_labels(pipeline) -> tuple[int, ...]:
    """The levels the pipeline can name: its vertebra model's heatmap channels (C1..L6, T13; no sacrum)."""
    return tuple(int(lab) for lab in pipeline.model("vertebrae")[1].labels)


def not_scored_levels(pipeline) -> list[int]:
    """The levels no model channel can name (the sacrum of our phantoms), left out of the scoring.

    VerSe, where the goals come from, leaves the sacrum unlabelled ("not labeled in this dataset");
    our phantoms label it 26, and counting it would score the pipeline on a level it has no channel for.
    """
    scored = scored_labels(pipeline)
    return [lab for lab in L.LABELS if lab not in scored]


def run_and_score(pipeline, image: sitk.Image, gt: sitk.Image, gt_ctd, use_pipeline_centroids: bool) -> dict:
    """Pipeline on ``image``, evaluated against ``gt`` (+ ``gt_ctd``): metrics, per-vertebra rows, timings.

    Only the levels of :func:`scored_labels` are scored; the others are listed under ``not_scored``.
    """
    t0 = time.perf_counter()
    result = pipeline.run(image)
    seconds = time.perf_counter() - t0
    pred = result.labelmap
    if pred is None:  # no spine found: nothing predicted
        pred = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        pred.CopyInformation(image)
    if not _same_geometry(pred, gt):
        pred = resample_prediction(pred, gt)
    ev = evaluate(
        pred, gt, result.centroids if use_pipeline_centroids else None, gt_ctd, ignore=not_scored_levels(pipeline)
    )
    js = ev.to_json()
    rows = list(js["per_vertebra"].values())
    return {
        "metrics": aggregate(rows, [js["summary"]]),
        "evaluate_summary": js["summary"],
        "per_vertebra": js["per_vertebra"],
        "predicted_labels": [L.name_of(v) for v in result.centroids.labels],
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "seconds": round(seconds, 3),
        "messages": list(result.messages),
        "not_scored": js["not_scored"],
        "review": {
            "doubtful": bool(result.review and result.review.identification_doubtful),
            "incomplete": bool(result.review and result.review.incomplete),
            "suggested_shift": result.review.suggested_shift if result.review else None,
            "case_flags": list(result.review.case) if result.review else [],
        },
    }


def review_table(cases: list[dict]) -> list[str]:
    """Did the plausibility review doubt the results with wrong levels, and spare the right ones?"""
    counts = {(w, d): 0 for w in (False, True) for d in (False, True)}
    for c in cases:
        wrong = c["metrics"]["n_identified"] < c["metrics"]["n_gt"]
        review = c.get("review", {})
        counts[(wrong, bool(review.get("doubtful") or review.get("incomplete")))] += 1
    return [
        "",
        "Plausibility review of the results (a case is wrong when a scored vertebra was not identified; "
        "flagged: levels doubtful or vertebrae missing):",
        "",
        "| results | flagged | not flagged |",
        "|---|---|---|",
        f"| every vertebra identified | {counts[(False, True)]} (false alarms) | {counts[(False, False)]} |",
        f"| some vertebra not identified | {counts[(True, True)]} | {counts[(True, False)]} (missed) |",
    ]


def _same_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    from SpineSegLib.geometry import Grid

    return Grid.of(a).same_as(Grid.of(b))


def _spacing_text(spacing) -> str:
    return "x".join(f"{s:g}" for s in spacing)


def heldout_case(pipeline, seed: int, paths: bids.CasePaths) -> dict:
    meta = json.loads(paths.sidecar.read_text(encoding="utf-8"))
    image = read_image(paths.image)
    gt = read_labelmap(paths.vertebra_mask)
    gt_ctd = read_centroids(paths.centroids, reference=gt)
    out = run_and_score(pipeline, image, gt, gt_ctd, use_pipeline_centroids=True)
    cfg = meta["config"]
    labelled = meta.get("labelled", [])
    scan = {
        "region": cfg["region"],
        "spacing_mm": _spacing_text(cfg["spacing"]),
        "orientation": orientation_code(image) + (" oblique" if is_oblique(image) else ""),
        "orientation_setting": cfg["orientation"],
        "max_rotation_deg": cfg["max_rotation_deg"],
        "size": list(image.GetSize()),
        "levels": f"{L.name_of(labelled[0])}..{L.name_of(labelled[-1])}" if labelled else "",
    }
    return {"case": paths.image.name.split("_")[0], "seed": seed, "scan": scan, **out}


def real_case(pipeline, case: RealCase) -> dict:
    image = read_image(case.image)
    gt = read_labelmap(case.labels)
    out = run_and_score(pipeline, image, gt, None, use_pipeline_centroids=False)
    out = {"case": case.name, "image": str(case.image.relative_to(REPO)), "note": case.note, **out}
    if case.focus is not None:
        out["focus"] = {**out["per_vertebra"][L.name_of(case.focus)], "name": L.name_of(case.focus)}
    return out


def mix_of(cases: list[dict]) -> dict:
    def count(key: str) -> dict:
        return dict(sorted(collections.Counter(str(c["scan"][key]) for c in cases).items()))

    return {
        "regions": count("region"),
        "spacings_mm": count("spacing_mm"),
        "orientations": count("orientation"),
        "orientation_settings": count("orientation_setting"),
        "max_rotation_deg": count("max_rotation_deg"),
    }


# ----------------------------------------------------------------------------------------
# Report


def _f(v, fmt: str = ".2f", scale: float = 1.0) -> str:
    return "-" if v is None else format(v * scale, fmt)


def _scored_text(res: dict) -> str:
    names = res["settings"].get("scored_labels", [])
    if not names:
        return "all labels"
    dropped = sorted({n for c in res["heldout"]["cases"] for n in c.get("not_scored", [])})
    left_out = f"; not scored: {', '.join(dropped)}, no model channel" if dropped else ""
    ordered = L.anatomical_order(L.id_of(n) for n in names)
    extra = [L.name_of(v) for v in ordered if v in L.TRANSITIONAL_LABELS and v != ordered[-1]]
    span = f"{L.name_of(ordered[0])}..{L.name_of(ordered[-1])}" + (f" and {', '.join(extra)}" if extra else "")
    return f"{span}: the model's channels{left_out}"


def markdown(res: dict) -> str:
    h = res["heldout"]
    o = h["overall"]
    m = res["machine"]
    gpu = f", GPU {m['gpu']}" if m["gpu"] else ""
    models = ", ".join(f"{s} `{d['name']}` ({d['sha256']})" for s, d in res["settings"]["models"].items())
    lines = [
        f"### Accuracy: full pipeline on {h['n_cases']} held-out phantom CTs"
        + (" (QUICK smoke run: tiny test models, not a result)" if res["settings"]["quick"] else ""),
        "",
        f"- command: `{res['command']}`",
        f"- date: {res['date']}",
        f"- machine: nproc {m['nproc']}, {m['cpu']}{gpu}; python {m['python']}, torch {m['torch']}; "
        f"device {res['settings']['device']}",
        f"- models: {models}",
        f"- held-out set: seeds {h['seeds'][0]}..{h['seeds'][-1]} (never used in training), "
        f"{o['n_gt']} ground-truth vertebrae scored ({_scored_text(res)}); "
        f"regions {h['mix']['regions']}, spacings (mm) {h['mix']['spacings_mm']}, "
        f"orientations {h['mix']['orientations']} (settings {h['mix']['orientation_settings']}), "
        f"extra rotation (deg) {h['mix']['max_rotation_deg']}",
        "",
        "| metric (pooled over all ground-truth vertebrae) | value | goal | |",
        "|---|---|---|---|",
    ]
    g = h["goals"]

    def goal(key: str) -> tuple[str, str]:
        if key not in g:
            return "", ""
        return g[key]["goal"], "pass" if g[key]["pass"] else "**FAIL**"

    rows = [
        (
            "identification rate (sum identified / sum GT)",
            f"{_f(o['id_rate'], '.1f', 100)} % ({o['n_identified']}/{o['n_gt']})",
            "id_rate",
        ),
        (
            "mean point error, GT vertebrae with a predicted centroid",
            f"{_f(o['pe_mean_mm_all'])} mm (n={o['n_pe_all']})",
            "pe_mean_mm_all",
        ),
        ("mean point error, identified vertebrae", f"{_f(o['pe_mean_mm_identified'])} mm", ""),
        ("mean Dice, all GT vertebrae (missed = 0)", f"{_f(o['dice_mean'], '.4f')}", "dice_mean"),
        ("mean HD / HD95, vertebrae in both masks", f"{_f(o['hd_mean'])} / {_f(o['hd95_mean'])} mm", ""),
        ("mean ASSD, vertebrae in both masks", f"{_f(o['assd_mean'], '.3f')} mm (n={o['n_surface']})", ""),
        (
            "PQ = SQ x RQ (pooled counts)",
            f"{_f(o['pq'], '.4f')} = {_f(o['sq'], '.4f')} x {_f(o['rq'], '.4f')} "
            f"(TP {o['panoptic_tp']}, FP {o['panoptic_fp']}, FN {o['panoptic_fn']})",
            "",
        ),
        ("missed / extra vertebrae", f"{o['n_missed']} / {o['n_extra']}", ""),
    ]
    for name, value, key in rows:
        target, verdict = goal(key)
        lines.append(f"| {name} | {value} | {target} | {verdict} |")
    levels = h.get("per_level", [])
    if levels:
        lines += ["", "Per level (identified / present, mean Dice):", ""]
        lines.append("| " + " | ".join(v["name"] for v in levels) + " |")
        lines.append("|" + "---|" * len(levels))
        lines.append("| " + " | ".join(f"{v['n_identified']}/{v['n_gt']}" for v in levels) + " |")
        lines.append("| " + " | ".join(_f(v["dice_mean"]) for v in levels) + " |")
    lines += [
        "",
        "| case | region | spacing mm | orientation | GT | identified | PE all mm | PE id mm | Dice | HD mm "
        "| ASSD mm | PQ | time s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in h["cases"]:
        s, x = c["scan"], c["metrics"]
        lines.append(
            f"| {c['case']} | {s['region']} ({s['levels']}) | {s['spacing_mm']} | {s['orientation']} | {x['n_gt']} "
            f"| {x['n_identified']} | {_f(x['pe_mean_mm_all'])} | {_f(x['pe_mean_mm_identified'])} "
            f"| {_f(x['dice_mean'], '.4f')} | {_f(x['hd_mean'])} | {_f(x['assd_mean'], '.3f')} | {_f(x['pq'], '.4f')} "
            f"| {c['seconds']:.1f} |"
        )
    lines += review_table(h["cases"])
    if res["real"]:
        lines += [
            "",
            "Real CT (no goals; see notes):",
            "",
            "| case | GT vertebrae | identified | PE mm | Dice | HD mm | ASSD mm | PQ | time s | note |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in res["real"]:
            x = c["metrics"]
            note = c["note"]
            if "focus" in c:
                f = c["focus"]
                note += (
                    f". {f['name']} alone: Dice {_f(f['dice'], '.4f')}, HD {_f(f['hd'])} mm, "
                    f"ASSD {_f(f['assd'], '.3f')} mm, PE {_f(f['pe_mm'])} mm, identified {f['identified']}"
                )
            lines.append(
                f"| {c['case']} | {x['n_gt']} | {x['n_identified']} | {_f(x['pe_mean_mm_all'])} "
                f"| {_f(x['dice_mean'], '.4f')} | {_f(x['hd_mean'])} | {_f(x['assd_mean'], '.3f')} "
                f"| {_f(x['pq'], '.4f')} | {c['seconds']:.1f} | {note} |"
            )
    verdict = "all goals met" if h["all_goals_pass"] else "goals NOT all met"
    lines += ["", f"Goals (id >= 99 %, PE <= 2.0 mm, Dice >= 0.93): {verdict}."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=None, help=f"held-out phantoms (default {DEFAULT_CASES})")
    ap.add_argument("--data", type=Path, help="held-out phantom folder (cache; default out/bench_data/...)")
    ap.add_argument(
        "--first-seed",
        type=int,
        default=HELD_OUT_START,
        help=f"first held-out seed (default {HELD_OUT_START}; >= {HELD_OUT_START}): a fresh set for each report",
    )
    ap.add_argument("--resources", type=Path, help="Resources folder with models/manifest.json (default: bundled)")
    ap.add_argument("--pipeline", default="ct-full-spine", help="pipeline name in the manifest")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "accuracy.json", help="results JSON")
    ap.add_argument("--markdown", type=Path, help="Markdown snippet for docs/BENCHMARKS.md (default: --out as .md)")
    ap.add_argument("--skip-real", action="store_true", help="only the held-out phantoms")
    ap.add_argument("--quick", action="store_true", help="2 small lumbar phantoms at 2 mm, tiny test models")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    import torch

    from spineseg_training.phantom_data import HELD_OUT_SEED_START

    assert HELD_OUT_SEED_START == HELD_OUT_START
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    n = args.cases or (QUICK_CASES if args.quick else DEFAULT_CASES)
    if n < 1:
        ap.error("--cases must be >= 1")
    if args.first_seed < HELD_OUT_START:
        ap.error(f"--first-seed must be >= {HELD_OUT_START}: lower seeds are training seeds")
    kind = "quick" if args.quick else "benchmark"
    fresh = "" if args.first_seed == HELD_OUT_START else f"-{args.first_seed}"
    data = args.data or REPO / "out" / "bench_data" / f"accuracy-{kind}{fresh}"
    md_path = args.markdown or args.out.with_suffix(".md")

    with tempfile.TemporaryDirectory(prefix="bench_accuracy_") as tmp:
        resources = args.resources
        if args.quick and resources is None:
            from slicer_fixtures import write_tiny_resources

            resources = write_tiny_resources(tmp)
        pipeline, models, resources = load_pipeline(resources, args.pipeline, args.device)
        print(f"models from {resources}: " + ", ".join(f"{s}={d['name']}" for s, d in models.items()), flush=True)
        if n < DEFAULT_CASES and not args.quick:
            print(f"note: {n} cases; the accuracy benchmark is defined on >= {DEFAULT_CASES}", flush=True)

        configs = heldout_configs(n, args.quick, args.first_seed)
        paths = prepare_heldout(data, configs, args.quick)
        cases = []
        for i, ((seed, _), p) in enumerate(zip(configs, paths), 1):
            print(f"[{i}/{n}] {p.image.name} ...", flush=True)
            c = heldout_case(pipeline, seed, p)
            x = c["metrics"]
            print(
                f"[{i}/{n}] {c['case']} {c['scan']['region']} {c['scan']['spacing_mm']} mm {c['scan']['orientation']}: "
                f"id {x['n_identified']}/{x['n_gt']}, PE {_f(x['pe_mean_mm_all'])} mm, "
                f"Dice {_f(x['dice_mean'], '.4f')}, {c['seconds']:.1f} s",
                flush=True,
            )
            cases.append(c)
        real = []
        if not args.skip_real:
            for rc in REAL_CASES:
                print(f"real CT {rc.name} ...", flush=True)
                real.append(real_case(pipeline, rc))

    rows = [r for c in cases for r in c["per_vertebra"].values()]
    overall = aggregate(rows, [c["evaluate_summary"] for c in cases])
    goals = goal_checks(overall)
    res = {
        "benchmark": "bench_accuracy",
        "command": "Testing/benchmarks/bench_accuracy.py " + shlex.join(argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "quick": args.quick,
            "resources": str(resources) if not args.quick or args.resources else "tiny test models (slicer_fixtures)",
            "pipeline": args.pipeline,
            "device": str(pipeline.device),
            "models": models,
            "data": str(data),
            "id_threshold_mm": 20.0,
            "scored_labels": [L.name_of(v) for v in scored_labels(pipeline)],
            "not_scored_gt": sum(len(c["not_scored"]) for c in cases + real),
        },
        "heldout": {
            "n_cases": n,
            "seeds": [seed for seed, _ in configs],
            "kind": "benchmark" if not args.quick else f"benchmark mix with region={QUICK_REGION}, spacing=2 mm",
            "mix": mix_of(cases),
            "overall": overall,
            "per_level": per_level(cases),
            "goals": goals,
            "all_goals_pass": all(g["pass"] for g in goals.values()),
            "cases": cases,
        },
        "real": real,
        "definitions": {
            **DEFINITIONS,
            "pooled": "held-out 'overall' pools every ground-truth vertebra of every case; PQ from pooled counts",
            "pe_mean_mm_all": "mean PE over ground-truth vertebrae with a predicted centroid (the goal's PE)",
            "pe_mean_mm_identified": "mean PE over identified ground-truth vertebrae",
            "scored_labels": "ground-truth levels scored: the vertebra model's channels; the others (the phantoms' "
            "sacrum, label 26, which VerSe leaves unlabelled) are removed from the ground truth before scoring",
        },
    }
    text = markdown(res)
    write_results(res, text, args.out, md_path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SpineSegError as exc:
        print(f"bench_accuracy: error: {exc}", file=sys.stderr)
        sys.exit(2)
