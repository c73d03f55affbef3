"""Benchmark: the CT pipeline on the labelled real CTs of the team's reference data (../shared/data/real).

Goal cases (each folder's README/SOURCE gives the label conventions): verse005_lumbar_ct (L1..L5,
manual VerSe ground truth, 1 mm), verse006_lumbar_ct (L4, L5, manual, 1x1x3 mm float32 CT),
totalseg_example_abdomen_ct (3 mm; TotalSegmentator MODEL labels remapped to VerSe ids T11..L5 + S1,
T11 a 76-voxel sliver) and totalseg_cta_crop (1.5 mm CTA crop; a MODEL-made binary mask of T12
only, value 1 = VerSe 19; the other levels in the image are unlabelled and not scored). Extra case,
reported separately and outside the goals: tptbox_spine_crops/sample_ct (1.5 mm crop, L2..L4
labelled, only L3 complete).

Per case, three runs of ``Pipeline`` (bundled weights by default, ``--resources`` for another
Resources folder), scored with ``SpineSegLib.metrics.evaluate``:

(a) the full pipeline: identification rate, point error of the pipeline's centroids, Dice per
    vertebra (missed = 0), per level;
(b) stage 3 alone from the true points (``Pipeline.run(stages=("segmentation",), centroids=...)``,
    what ``spineseg run --stages segmentation --centroids`` does): Dice per vertebra;
(c) for comparison, stage 3 alone from the whole-vertebra mask centroids.

True points: none of these cases has a body-centroid file, and the networks are trained on
VerSe's vertebral-BODY centroids (about 10 mm anterior of the whole-mask centroid). The true
points are therefore estimated from the ground-truth mask with
``SpineSegLib.body_centroids.body_centroids``; the report shows that estimate's error against
real VerSe body centroids (Testing/data/real/verse_masks_only_no_ct; the radius was chosen on
verse004) next to the scores.

Which weights saw which case: each model card lists ``real_cases``; a score from weights whose
card names the case is flagged "seen in training: not a held-out score" and left out of the
goals. Goals over the held-out goal cases (every ground-truth vertebra counts once): (a)
identification >= 90 %, mean Dice >= 0.85; (b) mean Dice >= 0.90.

Run: ``.venv/bin/python Testing/benchmarks/bench_real.py --out out/benchmarks/real_bundled.json
--markdown out/benchmarks/real_bundled.md``. Without the ``--shared`` folder it says so and exits 0.
``--quick``: the tiny hand-set test models (Testing/slicer_fixtures.py) on the TPTBox crop kept in
the repository (Testing/data/real), for the smoke test.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from bench_accuracy import _f, _same_geometry, aggregate, load_pipeline, not_scored_levels, per_level  # noqa: E402
from machine import machine_info  # noqa: E402
from results import write_results  # noqa: E402

from SpineSegLib import labels as L  # noqa: E402
from SpineSegLib.body_centroids import BODY_OPENING_RADIUS_MM, body_centroids  # noqa: E402
from SpineSegLib.centroids import Centroids  # noqa: E402
from SpineSegLib.errors import SpineSegError  # noqa: E402
from SpineSegLib.io import read_centroids, read_image, read_labelmap  # noqa: E402
from SpineSegLib.labelmap import label_centroids, label_ids  # noqa: E402
from SpineSegLib.metrics import evaluate, resample_prediction  # noqa: E402
from SpineSegLib.metrics.report import DEFINITIONS  # noqa: E402
from SpineSegLib.plausibility import review  # noqa: E402

DEFAULT_SHARED = REPO.parent / "shared"
REPO_REAL = REPO / "Testing" / "data" / "real"
#: (run, metric) -> (comparison, threshold), over the held-out goal cases.
GOALS = {
    ("full", "id_rate"): (">=", 0.90),
    ("full", "dice_mean"): (">=", 0.85),
    ("stage3_body", "dice_mean"): (">=", 0.90),
}
GOAL_NAMES = {
    ("full", "id_rate"): "full pipeline: identification rate",
    ("full", "dice_mean"): "full pipeline: mean Dice",
    ("stage3_body", "dice_mean"): "stage 3 from the true points: mean Dice",
}
#: Which stages make each run's result (a card that saw the case flags the run).
RUN_STAGES = {
    "full": ("spine", "vertebrae", "segmentation"),
    "stage3_body": ("segmentation",),
    "stage3_mask": ("segmentation",),
}
SEEN = "seen in training: not a held-out score"


@dataclasses.dataclass(frozen=True)
class RealCase:
    name: str  # folder under data/real
    image: str  # paths relative to the folder
    labels: str
    expected: tuple[int, ...]  # VerSe ids the mask must hold (after ``remap``)
    names: tuple[str, ...]  # how a model card's real_cases may name this case (BIDS subject, file stem)
    note: str
    goal: bool = True
    remap: tuple[tuple[int, int], ...] = ()  # (file value, VerSe id)
    only_labelled: bool = False  # other levels are visible but unlabelled: only the labelled ones are scored
    focus: int | None = None  # the one complete vertebra, reported on its own


CASES = (
    RealCase(
        "verse005_lumbar_ct",
        "sub-verse005_ct.nii.gz",
        "sub-verse005_seg-vert_msk.nii.gz",
        (20, 21, 22, 23, 24),
        ("sub-verse005", "verse005"),
        "VerSe'19 case 005, 1 mm, L1..L5, manual labels",
    ),
    RealCase(
        "verse006_lumbar_ct",
        "sub-verse006_ct.nii.gz",
        "sub-verse006_seg-vert_msk.nii.gz",
        (23, 24),
        ("sub-verse006", "verse006"),
        "VerSe'19 case 006, 1x1x3 mm float32 CT, L4, L5, manual labels",
    ),
    RealCase(
        "totalseg_example_abdomen_ct",
        "example_ct.nii.gz",
        "derived_vert_verse-labels.nii.gz",
        (18, 19, 20, 21, 22, 23, 24, 26),
        ("example_ct",),
        "3 mm, lower thorax to pelvis; TotalSegmentator MODEL labels remapped to VerSe ids T11..L5 + S "
        "(T11 a 76-voxel sliver; S has no model channel, not scored)",
    ),
    RealCase(
        "totalseg_cta_crop",
        "ct_cropped.nii.gz",
        "vertebrae_T12.nii.gz",
        (19,),
        ("ct_cropped",),
        "1.5 mm CTA crop; TotalSegmentator MODEL mask of T12 only (value 1 = VerSe 19): only T12 is scored",
        remap=((1, 19),),
        only_labelled=True,
    ),
    RealCase(
        "tptbox_spine_crops/sample_ct",
        "sub-ct_label-22_ct.nii.gz",
        "sub-ct_seg-vert_label-22_msk.nii.gz",
        (21, 22, 23),
        ("sub-ct", "tptbox_sample_ct", "sub-ct_label-22"),
        "1.5 mm crop around L3 with L2..L4 labels (TPTBox test data), only L3 complete; not a goal case",
        goal=False,
        only_labelled=True,
        focus=22,
    ),
)
QUICK_CASES = ("tptbox_spine_crops/sample_ct",)

#: Real VerSe body centroids (manual ``seg-subreg`` ctd files) that judge the estimate: (case, mask, ctd).
_IND = "verse_masks_only_no_ct/IndVertSeg_VerSe"
BODY_VALIDATION = (
    ("verse004", f"{_IND}/sub-verse004_seg-vert_msk.nii.gz", f"{_IND}/sub-verse004_seg-subreg_ctd.json"),
    ("verse010", f"{_IND}/sub-verse010_seg-vert_msk.nii.gz", f"{_IND}/sub-verse010_seg-subreg_ctd.json"),
    ("gl003", f"{_IND}/sub-gl003_dir-ax_seg-vert_msk.nii.gz", f"{_IND}/sub-gl003_dir-ax_seg-subreg_ctd.json"),
    ("gl017", f"{_IND}/sub-gl017_seg-vert_msk.nii.gz", f"{_IND}/sub-gl017_seg-subreg_ctd.json"),
)
RADIUS_CHOSEN_ON = "verse004"


# ----------------------------------------------------------------------------------------
# True points and their validation


def _distances(est: Centroids, ref: Centroids) -> dict[int, float]:
    return {lab: float(np.linalg.norm(est[lab] - ref[lab])) for lab in ref if lab in est}


def _region_stats(dist: dict[int, float]) -> dict[str, dict]:
    by_region: dict[str, list[float]] = {}
    for lab, d in dist.items():
        by_region.setdefault(L.get(lab).region, []).append(d)
    if len(by_region) > 1:
        by_region["all"] = list(dist.values())
    return {r: {"n": len(v), "mean_mm": float(np.mean(v)), "max_mm": float(np.max(v))} for r, v in by_region.items()}


def validate_body_centroids(quick: bool, shared_real: Path | None) -> dict:
    """Estimated vs real VerSe body centroids (and, for scale, whole-mask vs body), per case and region.

    Also verse010 on a 3 mm grid (every third voxel: the abdomen case's spacing), the TPTBox L3,
    whose body is its corpus subregions (49, 50), and, from ``shared_real``, the 3 mm abdomen case
    against TotalSegmentator's body mask (model-made). ``quick``: verse010 and TPTBox only.
    """
    rows = []
    for case, mask_rel, ctd_rel in BODY_VALIDATION:
        if quick and case != "verse010":
            continue
        mask = read_labelmap(REPO_REAL / mask_rel)
        ref = read_centroids(REPO_REAL / ctd_rel, reference=mask)
        est = _distances(body_centroids(mask), ref)
        whole = _distances(label_centroids(mask), ref)
        rows.append(_validation_row(case, "VerSe seg-subreg ctd (manual)", est, whole))
        if case == "verse010":
            coarse = sitk.Shrink(mask, [3, 3, 3])  # 3 mm: keeps every third voxel, geometry follows
            est = _distances(body_centroids(coarse), ref)
            whole = _distances(label_centroids(coarse), ref)
            rows.append(_validation_row("verse010 at 3 mm", "VerSe seg-subreg ctd (manual)", est, whole))
    folder = REPO_REAL / "tptbox_spine_crops" / "sample_ct"
    vert = read_labelmap(folder / "sub-ct_seg-vert_label-22_msk.nii.gz")
    sub = sitk.GetArrayFromImage(read_labelmap(folder / "sub-ct_seg-subreg_label-22_msk.nii.gz"))
    corpus = sitk.GetImageFromArray(((sitk.GetArrayFromImage(vert) == 22) & np.isin(sub, [49, 50])).astype(np.uint8))
    corpus.CopyInformation(vert)
    ref = Centroids({22: label_centroids(corpus)[1]})
    est = _distances(body_centroids(vert, [22]), ref)
    whole = _distances(label_centroids(vert, [22]), ref)
    rows.append(_validation_row("tptbox L3", "centroid of the corpus subregions 49 + 50", est, whole))
    folder = (shared_real / "totalseg_example_abdomen_ct") if shared_real is not None else None
    if folder is not None and (folder / "spine_report" / "totalseg_vertebrae_body.nii.gz").is_file():
        vert = read_labelmap(folder / "derived_vert_verse-labels.nii.gz")
        bodies = sitk.GetArrayFromImage(read_labelmap(folder / "spine_report" / "totalseg_vertebrae_body.nii.gz"))
        body_img = sitk.GetImageFromArray(np.where(bodies == 1, sitk.GetArrayFromImage(vert), 0).astype(np.uint8))
        body_img.CopyInformation(vert)
        ref = label_centroids(body_img)  # T12..L5 and S: T11's sliver has no body voxel
        est = _distances(body_centroids(vert), ref)
        whole = _distances(label_centroids(vert), ref)
        rows.append(
            _validation_row("totalseg abdomen (3 mm)", "TotalSegmentator body mask (MODEL-made) x labels", est, whole)
        )
    return {"radius_mm": BODY_OPENING_RADIUS_MM, "radius_chosen_on": RADIUS_CHOSEN_ON, "cases": rows}


def _validation_row(case: str, reference: str, est: dict[int, float], whole: dict[int, float]) -> dict:
    ordered = L.anatomical_order(est)
    return {
        "case": case,
        "reference": reference,
        "used_for_choice": case == RADIUS_CHOSEN_ON,
        "levels": f"{L.name_of(ordered[0])}..{L.name_of(ordered[-1])}",
        "estimate": _region_stats(est),
        "whole_mask": _region_stats(whole),
        "per_vertebra_mm": {L.name_of(k): round(v, 2) for k, v in est.items()},
    }


# ----------------------------------------------------------------------------------------
# Cases


def read_case(root: Path, case: RealCase) -> tuple[sitk.Image, sitk.Image]:
    """The CT and its VerSe-id mask; a mask without the documented labels fails here, by name."""
    folder = root / case.name
    image = read_image(folder / case.image)
    gt = read_labelmap(folder / case.labels)  # float masks are rounded and cast
    if case.remap:
        gt = sitk.ChangeLabel(gt, changeMap={float(a): float(b) for a, b in case.remap})
    present = tuple(label_ids(sitk.GetArrayViewFromImage(gt)))
    if present != tuple(sorted(case.expected)):
        raise SpineSegError(f"{folder / case.labels}: labels {list(present)}, expected {sorted(case.expected)}")
    if not _same_geometry(image, gt):
        raise SpineSegError(f"{folder / case.labels}: not on the grid of {case.image}")
    return image, gt


def seen_by(case: RealCase, cards: dict) -> dict[str, bool]:
    """Stage -> whether that stage's card lists the case among the real cases it was trained on."""
    names = {n.lower() for n in (*case.names, case.name, case.name.split("/")[-1])}
    return {stage: any(str(c).lower() in names for c in card.real_cases) for stage, card in cards.items()}


def nearest_prediction(pred: Centroids, truth: Centroids) -> dict:
    """Per true point, the nearest predicted centroid whatever its label: were the vertebrae found but misnamed?"""
    per = {}
    for lab, point in truth.items():
        if pred:
            d = np.linalg.norm(pred.array() - point, axis=1)
            i = int(np.argmin(d))
            per[L.name_of(lab)] = {"label": L.name_of(pred.labels[i]), "distance_mm": round(float(d[i]), 2)}
    distances = [v["distance_mm"] for v in per.values()]
    return {"per_vertebra": per, "mean_mm": float(np.mean(distances)) if distances else None}


def score(pipeline, image, gt, pred, pred_ctd, gt_ctd, ignore) -> dict:
    if pred is None:  # no spine found: nothing predicted
        pred = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        pred.CopyInformation(image)
    if not _same_geometry(pred, gt):
        pred = resample_prediction(pred, gt)
    js = evaluate(pred, gt, pred_ctd, gt_ctd, ignore=ignore).to_json()
    return {
        "metrics": aggregate(list(js["per_vertebra"].values()), [js["summary"]]),
        "evaluate_summary": js["summary"],
        "per_vertebra": js["per_vertebra"],
        "not_scored": js["not_scored"],
    }


def run_case(pipeline, root: Path, case: RealCase, cards: dict) -> dict:
    image, gt = read_case(root, case)
    ignore = set(not_scored_levels(pipeline))
    if case.only_labelled:
        ignore |= set(L.LABELS) - set(case.expected)
    scored = [lab for lab in case.expected if lab not in ignore]
    body = body_centroids(gt, scored)
    whole = label_centroids(gt, scored)
    seen = seen_by(case, cards)
    runs = {}

    t0 = time.perf_counter()
    result = pipeline.run(image)
    full = score(pipeline, image, gt, result.labelmap, result.centroids, body, ignore)
    runs["full"] = {
        **full,
        "predicted_labels": [L.name_of(v) for v in result.centroids.labels],
        "nearest_prediction": nearest_prediction(result.centroids, body),
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "seconds": round(time.perf_counter() - t0, 3),
        "messages": list(result.messages),
        "review": result.review.as_dict() if result.review else None,
    }
    for key, points in (("stage3_body", body), ("stage3_mask", whole)):
        t0 = time.perf_counter()
        result = pipeline.run(image, stages=("segmentation",), centroids=points)
        runs[key] = {
            **score(pipeline, image, gt, result.labelmap, None, None, ignore),
            "seconds": round(time.perf_counter() - t0, 3),
            "messages": list(result.messages),
        }
    for key, run in runs.items():
        run["seen_in_training"] = any(seen[s] for s in RUN_STAGES[key])
    out = {
        "case": case.name,
        "goal_case": case.goal,
        "image": str(root / case.name / case.image),
        "note": case.note,
        "spacing_mm": "x".join(f"{s:g}" for s in image.GetSpacing()),
        "size": list(image.GetSize()),
        "levels": [L.name_of(v) for v in case.expected],
        "scored_levels": [L.name_of(v) for v in L.anatomical_order(scored)],
        "seen_by_stage": seen,
        "true_points_lps_mm": {L.name_of(k): [round(float(x), 2) for x in v] for k, v in body.items()},
        "body_minus_whole_mm": {L.name_of(k): round(float(np.linalg.norm(body[k] - whole[k])), 2) for k in body},
        "runs": runs,
        # The plausibility review of the ground truth itself (labels and estimated body centres): a flag
        # here is a false alarm of the review, not a fault of the pipeline.
        "truth_review": review(body, gt).as_dict(),
    }
    if case.focus is not None:
        out["focus"] = {
            key: {**run["per_vertebra"][L.name_of(case.focus)], "name": L.name_of(case.focus)}
            for key, run in runs.items()
            if L.name_of(case.focus) in run["per_vertebra"]
        }
    return out


# ----------------------------------------------------------------------------------------
# Pooling and goals


def pooled(cases: list[dict], key: str) -> dict:
    """Pooled metrics and per level of run ``key`` over ``cases`` (every ground-truth vertebra counts once)."""
    rows = [r for c in cases for r in c["runs"][key]["per_vertebra"].values()]
    return {
        "cases": [c["case"] for c in cases],
        "overall": aggregate(rows, [c["runs"][key]["evaluate_summary"] for c in cases]),
        "per_level": per_level([c["runs"][key] for c in cases]),
    }


def goal_checks(cases: list[dict]) -> dict:
    """Goals over the goal cases whose weights did not see them; cases left out are listed."""
    out = {}
    for (key, metric), (op, threshold) in GOALS.items():
        held_out = [c for c in cases if c["goal_case"] and not c["runs"][key]["seen_in_training"]]
        left_out = [c["case"] for c in cases if c["goal_case"] and c["runs"][key]["seen_in_training"]]
        value = pooled(held_out, key)["overall"][metric] if held_out else None
        ok = value is not None and (value >= threshold if op == ">=" else value <= threshold)
        out[f"{key}.{metric}"] = {
            "name": GOAL_NAMES[(key, metric)],
            "value": value,
            "goal": f"{op} {threshold:g}",
            "target": f"{op} {threshold * 100:g} %" if metric == "id_rate" else f"{op} {threshold:g}",
            "pass": bool(ok),
            "cases": [c["case"] for c in held_out],
            "left_out_seen": left_out,
        }
    return out


# ----------------------------------------------------------------------------------------
# Report


def _yes(flag: bool) -> str:
    return "**yes**" if flag else "no"


def _seen_mark(run: dict) -> str:
    return f" ({SEEN})" if run["seen_in_training"] else ""


def markdown(res: dict) -> str:
    m = res["machine"]
    s = res["settings"]
    gpu = f", GPU {m['gpu']}" if m["gpu"] else ""
    models = ", ".join(f"{st} `{d['name']}` ({d['sha256']})" for st, d in s["models"].items())
    v = res["body_centroid_validation"]
    lines = [
        "### Real CT: full pipeline and stage 3 from the true points"
        + (" (QUICK smoke run: tiny test models, not a result)" if s["quick"] else ""),
        "",
        f"- command: `{res['command']}`",
        f"- date: {res['date']}",
        f"- machine: nproc {m['nproc']}, {m['cpu']}{gpu}; python {m['python']}, torch {m['torch']}; "
        f"device {s['device']}",
        f"- models: {models}",
        f"- data: {s['data']}",
        f"- **true points are ESTIMATED vertebral-body centroids**: no case has a body-centroid file, so the "
        f"points that judge (a)'s point error and feed (b) come from the ground-truth mask "
        f"(`SpineSegLib.body_centroids`, opening with a {v['radius_mm']:g} mm ball, largest piece; radius chosen "
        f"on {v['radius_chosen_on']} only). Their error against real body centroids is in the last table.",
        "",
        "Which weights saw which case (model card `real_cases`):",
        "",
        "| case | goal case | spine | vertebrae | segmentation |",
        "|---|---|---|---|---|",
    ]
    for c in res["cases"]:
        seen = c["seen_by_stage"]
        lines.append(
            f"| {c['case']} | {'yes' if c['goal_case'] else 'no (extra)'} | {_yes(seen['spine'])} "
            f"| {_yes(seen['vertebrae'])} | {_yes(seen['segmentation'])} |"
        )
    lines += [
        "",
        "(a) Full pipeline (PE: pipeline centroids vs the estimated body centroids, same label; nearest any-label: "
        "mean distance from each true point to the nearest predicted centroid whatever its name; Dice: missed = 0; "
        "extra: predicted levels absent from the ground truth):",
        "",
        "| case | spacing mm | scored levels | predicted | identified | id rate | PE mm | nearest any-label mm "
        "| Dice | extra | time s | flag |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in res["cases"]:
        r = c["runs"]["full"]
        x = r["metrics"]
        lines.append(
            f"| {c['case']} | {c['spacing_mm']} | {', '.join(c['scored_levels'])} "
            f"| {', '.join(r['predicted_labels']) or '-'} | {x['n_identified']}/{x['n_gt']} "
            f"| {_f(x['id_rate'], '.1f', 100)} % | {_f(x['pe_mean_mm_all'])} "
            f"| {_f(r['nearest_prediction']['mean_mm'])} | {_f(x['dice_mean'], '.4f')} "
            f"| {x['n_extra']} | {r['seconds']:.1f} | {SEEN if r['seen_in_training'] else ''} |"
        )
    lines += [
        "",
        "Plausibility review (SpineSegLib.plausibility; its ranges were set before these cases were looked at): "
        "does the review doubt the pipeline's levels where they are wrong, and leave the ground truth alone?",
        "",
        "| case | identified (a) | pipeline result doubted | its case flags | ground truth doubted "
        "| flags on the truth |",
        "|---|---|---|---|---|---|",
    ]
    for c in res["cases"]:
        r, t = c["runs"]["full"], c["truth_review"]
        rv = r.get("review") or {}
        n_flags = sum(len(v) for v in t["vertebrae"].values()) + len(t["case"])
        lines.append(
            f"| {c['case']} | {r['metrics']['n_identified']}/{r['metrics']['n_gt']} "
            f"| {_yes(rv.get('identification_doubtful', False))} | {'; '.join(rv.get('case', [])) or '-'} "
            f"| {_yes(t['identification_doubtful'])} | {n_flags} |"
        )
    lines += [
        "",
        "(b) Stage 3 alone from the true points (estimated body centroids) and (c) from whole-mask centroids:",
        "",
        "| case | Dice (b) body centroids | Dice (c) whole-mask centroids | per vertebra (b) | flag |",
        "|---|---|---|---|---|",
    ]
    for c in res["cases"]:
        b, w = c["runs"]["stage3_body"], c["runs"]["stage3_mask"]
        per = ", ".join(f"{k} {_f(r['dice'])}" for k, r in b["per_vertebra"].items() if r["in_gt"])
        lines.append(
            f"| {c['case']} | {_f(b['metrics']['dice_mean'], '.4f')} | {_f(w['metrics']['dice_mean'], '.4f')} "
            f"| {per} | {SEEN if b['seen_in_training'] else ''} |"
        )
    for c in res["cases"]:
        if "focus" in c:
            f = c["focus"]
            lines.append(
                f"\n{c['case']}: {next(iter(f.values()))['name']} (the one complete vertebra) alone: "
                + "; ".join(f"{k} Dice {_f(r['dice'], '.4f')}" for k, r in f.items())
            )
    p = res["goal_cases_pooled"]
    levels = p["full"]["per_level"]
    if levels:
        lines += ["", "Per level, goal cases pooled (identified / present; mean Dice (a); mean Dice (b)):", ""]
        lines.append("| | " + " | ".join(v["name"] for v in levels) + " |")
        lines.append("|---|" + "---|" * len(levels))
        lines.append("| identified | " + " | ".join(f"{v['n_identified']}/{v['n_gt']}" for v in levels) + " |")
        lines.append("| Dice (a) | " + " | ".join(_f(v["dice_mean"]) for v in levels) + " |")
        b_dice = {v["name"]: v["dice_mean"] for v in p["stage3_body"]["per_level"]}
        lines.append("| Dice (b) | " + " | ".join(_f(b_dice.get(v["name"])) for v in levels) + " |")
    lines += ["", "Goals (goal cases, held out from the weights, every vertebra counts once):", ""]
    lines += ["| goal | value | target | | cases | left out (seen in training) |", "|---|---|---|---|---|---|"]
    for g in res["goals"].values():
        pct = g["name"].endswith("rate")
        value = _f(g["value"], ".4f") if not pct or g["value"] is None else f"{_f(g['value'], '.1f', 100)} %"
        verdict = "pass" if g["pass"] else "**miss**"
        lines.append(
            f"| {g['name']} | {value} | {g['target']} | {verdict} | {len(g['cases'])} "
            f"| {', '.join(g['left_out_seen']) or '-'} |"
        )
    lines += [
        "",
        f"Estimated body centroids vs real ones (radius {v['radius_mm']:g} mm chosen on {v['radius_chosen_on']}; "
        "mean / max distance in mm; whole-mask centroids for scale):",
        "",
        "| case | levels | reference | region | estimate mean / max | whole-mask mean / max |",
        "|---|---|---|---|---|---|",
    ]
    for row in v["cases"]:
        for region, st in row["estimate"].items():
            w = row["whole_mask"][region]
            tag = " (radius chosen here)" if row["used_for_choice"] else ""
            lines.append(
                f"| {row['case']}{tag} | {row['levels']} | {row['reference']} | {region} (n={st['n']}) "
                f"| {st['mean_mm']:.2f} / {st['max_mm']:.2f} | {w['mean_mm']:.2f} / {w['max_mm']:.2f} |"
            )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="team data folder (default REPO/../shared)")
    ap.add_argument("--resources", type=Path, help="Resources folder with models/manifest.json (default: bundled)")
    ap.add_argument("--pipeline", default="ct-full-spine", help="pipeline name in the manifest")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "real.json", help="results JSON")
    ap.add_argument("--markdown", type=Path, help="Markdown snippet (default: --out as .md)")
    ap.add_argument("--quick", action="store_true", help="tiny test models on the TPTBox crop in Testing/data/real")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    if args.quick:
        root, cases = REPO_REAL, [c for c in CASES if c.name in QUICK_CASES]
    else:
        root, cases = args.shared / "data" / "real", list(CASES)
        if not root.is_dir():
            print(f"bench_real: {root} not found: no real CT to run on (the team's shared data); nothing done")
            return 0

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    md_path = args.markdown or args.out.with_suffix(".md")
    print("body centroids: estimate vs real VerSe body centroids ...", flush=True)
    validation = validate_body_centroids(args.quick, None if args.quick else root)
    with tempfile.TemporaryDirectory(prefix="bench_real_") as tmp:
        resources = args.resources
        if args.quick and resources is None:
            from slicer_fixtures import write_tiny_resources

            resources = write_tiny_resources(tmp)
        pipeline, models, resources = load_pipeline(resources, args.pipeline, args.device)
        cards = {stage: pipeline.model(stage)[1] for stage in models}
        for stage, card in cards.items():
            models[stage]["real_cases"] = list(card.real_cases)
        print(f"models from {resources}: " + ", ".join(f"{s}={d['name']}" for s, d in models.items()), flush=True)
        results = []
        for i, case in enumerate(cases, 1):
            print(f"[{i}/{len(cases)}] {case.name} ...", flush=True)
            c = run_case(pipeline, root, case, cards)
            a, b = c["runs"]["full"]["metrics"], c["runs"]["stage3_body"]["metrics"]
            print(
                f"[{i}/{len(cases)}] {case.name}: (a) id {a['n_identified']}/{a['n_gt']}, "
                f"PE {_f(a['pe_mean_mm_all'])} mm, "
                f"Dice {_f(a['dice_mean'], '.4f')}; (b) Dice {_f(b['dice_mean'], '.4f')}; "
                f"(c) Dice {_f(c['runs']['stage3_mask']['metrics']['dice_mean'], '.4f')}",
                flush=True,
            )
            results.append(c)

    goal_cases = [c for c in results if c["goal_case"]]
    res = {
        "benchmark": "bench_real",
        "command": "Testing/benchmarks/bench_real.py " + shlex.join(argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "quick": args.quick,
            "resources": str(resources) if not args.quick or args.resources else "tiny test models (slicer_fixtures)",
            "pipeline": args.pipeline,
            "device": str(pipeline.device),
            "models": models,
            "data": str(root),
            "id_threshold_mm": 20.0,
            "true_points": "estimated vertebral-body centroids (SpineSegLib.body_centroids, "
            f"{BODY_OPENING_RADIUS_MM:g} mm)",
        },
        "body_centroid_validation": validation,
        "cases": results,
        "goal_cases_pooled": {key: pooled(goal_cases, key) for key in RUN_STAGES},
        "extra_cases": [c["case"] for c in results if not c["goal_case"]],
        "goals": goal_checks(results),
        "definitions": {
            **DEFINITIONS,
            "full": "(a) spine -> vertebrae -> segmentation; PE of the pipeline's centroids vs the true points",
            "stage3_body": "(b) segmentation stage alone from the true points (estimated body centroids)",
            "stage3_mask": "(c) segmentation stage alone from the whole-vertebra mask centroids, for comparison",
            "true_points": "vertebral-body centroids estimated from the ground-truth mask (no case has a body "
            "centroid file); see body_centroid_validation for their error against real VerSe body centroids",
            "seen_in_training": "a stage of this run has weights whose model card lists the case in real_cases; "
            "such scores are not held-out and are left out of the goals",
            "scored": "levels with a vertebra-model channel; in only-labelled cases (the CTA crop, the TPTBox crop) "
            "only the labelled levels, the rest of the image being unlabelled",
        },
    }
    res["all_goals_pass"] = all(g["pass"] for g in res["goals"].values())
    text = markdown(res)
    write_results(res, text, args.out, md_path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SpineSegError as exc:
        print(f"bench_real: error: {exc}", file=sys.stderr)
        sys.exit(2)
