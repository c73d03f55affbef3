"""Benchmark: how often the plausibility review doubts a correct result, and how often it catches wrong levels.

On a VerSe-layout data set (``--data``: rawdata/derivatives with ``_seg-vert_msk`` and ``_seg-subreg_ctd``,
e.g. a fresh phantom set written by ``bench_accuracy.py --data``), every case's ground truth is reviewed
as is (a "doubtful" there is a false alarm) and with every vertebra renamed ``k`` levels up or down (the
mask and the centroids together: a result whose levels are all wrong by ``k``), for each ``k`` of
``--shifts``. A renamed case counts only where every renamed level exists (no vertebra falls off C1 or
L5). The review's ranges were fixed before any of this was run (:mod:`SpineSegLib.plausibility`).

Where the case's CT is in rawdata (``<case>_ct.nii.gz``), the review is run twice: without the image (size,
spacing, chain) and with it: plus the rib cues (:mod:`SpineSegLib.rib_cues`), then plus the sacrum cue
(:mod:`SpineSegLib.sacrum_cue`). The cues are read once per case and renamed with the vertebrae (a cue
depends on where a vertebra is, not on its name).

Run: ``.venv/bin/python Testing/benchmarks/bench_review.py --data DATA --out out/benchmarks/review.json
--markdown out/benchmarks/review.md``.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import SimpleITK as sitk
from machine import machine_info
from results import write_results

from SpineSegLib import labels as L
from SpineSegLib.cue_shift import suggested_shift
from SpineSegLib.io import read_centroids, read_image, read_labelmap
from SpineSegLib.labelmap import relabelled
from SpineSegLib.plausibility import review
from SpineSegLib.rib_cues import contradictions, rib_cues
from SpineSegLib.sacrum_cue import SacrumCue, sacrum_cue

#: The order levels are renamed in (T13 and L6 are not shifted into or out of).
ORDER = [lab for lab in L.anatomical_order(L.HEATMAP_LABELS) if lab not in L.TRANSITIONAL_LABELS]


def cases(root: Path) -> list[tuple[str, Path, Path]]:
    out = []
    for folder in sorted((root / "derivatives").glob("sub-*")):
        mask = folder / f"{folder.name}_seg-vert_msk.nii.gz"
        ctd = folder / f"{folder.name}_seg-subreg_ctd.json"
        if mask.is_file() and ctd.is_file():
            out.append((folder.name, mask, ctd))
    return out


def shifted(mask: sitk.Image, centroids, k: int):
    """Mask and centroids with every vertebra renamed ``k`` levels (positive: towards the head), or None."""
    levels = [lab for lab in centroids.labels if lab in ORDER]
    if not levels or any(not 0 <= ORDER.index(lab) - k < len(ORDER) for lab in levels):
        return None
    mapping = {lab: ORDER[ORDER.index(lab) - k] for lab in levels}
    img = relabelled(mask, mapping, others=0)
    return img, centroids.subset(mapping).relabelled(mapping)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="VerSe-layout folder (rawdata, derivatives)")
    ap.add_argument("--shifts", default="1,2,3,5,10,19", help="level shifts to simulate (both directions)")
    ap.add_argument("--out", type=Path, default=Path("out/benchmarks/review.json"))
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args(argv)
    shifts = [int(x) for x in args.shifts.split(",")]
    found = cases(args.data)
    if not found:
        print(f"bench_review: no case with a mask and a centroid file under {args.data}")
        return 0
    truth = {"cases": 0, "doubtful": 0, "flagged_vertebrae": 0, "vertebrae": 0, "examples": []}
    truth.update({"with_ct": 0, "doubtful_ribs": 0, "doubtful_ct": 0, "rib_flags": 0, "sacrum_flags": 0})
    truth["cue_examples"] = []
    keys = ("cases", "doubtful", "with_ct", "doubtful_ribs", "doubtful_ct", "shift_right", "shift_wrong")
    caught = {k: dict.fromkeys(keys, 0) for s in shifts for k in (s, -s)}
    for name, mask_path, ctd_path in found:
        mask = read_labelmap(mask_path)
        ctd = read_centroids(ctd_path, reference=mask)
        rev = review(ctd, mask)
        ct_path = args.data / "rawdata" / name / f"{name}_ct.nii.gz"
        cues = sacrum = None
        if ct_path.is_file():
            image = read_image(ct_path)
            vertebrae = ctd.subset([x for x in ctd.labels if x in L.VERTEBRA_LABELS])
            cues, sacrum = rib_cues(image, mask, vertebrae), sacrum_cue(image, mask, vertebrae)
            rib_found = contradictions(cues)
            sacrum_found = sacrum.contradiction() if sacrum else None
            truth["with_ct"] += 1
            truth["doubtful_ribs"] += rev.identification_doubtful or bool(rib_found)
            truth["doubtful_ct"] += rev.identification_doubtful or bool(rib_found) or bool(sacrum_found)
            truth["rib_flags"] += len(rib_found)
            truth["sacrum_flags"] += bool(sacrum_found)
            truth["incomplete"] = truth.get("incomplete", 0) + bool(sacrum and sacrum.missed())
            truth["suggestions"] = truth.get("suggestions", 0) + bool(suggested_shift(cues, sacrum))
            if rib_found or sacrum_found:
                found = {L.name_of(k): v for k, v in rib_found.items()}
                truth["cue_examples"].append({"case": name, "ribs": found, "sacrum": sacrum_found})
        truth["cases"] += 1
        truth["doubtful"] += rev.identification_doubtful
        truth["vertebrae"] += len([x for x in ctd.labels if x in L.VERTEBRA_LABELS])
        # T13 and L6 flags are right (transitional anatomy to check), not false alarms.
        odd = {k: v for k, v in rev.vertebrae.items() if k not in L.TRANSITIONAL_LABELS}
        truth["flagged_vertebrae"] += len(odd)
        if rev.identification_doubtful or odd:
            truth["examples"].append({"case": name, "lines": rev.lines()[:4]})
        for k, tally in caught.items():
            moved = shifted(mask, ctd, k)
            if moved is None:
                continue
            tally["cases"] += 1
            doubted = review(moved[1], moved[0]).identification_doubtful
            tally["doubtful"] += doubted
            if cues is not None:
                renamed = {ORDER[ORDER.index(lab) - k]: c for lab, c in cues.items() if lab in ORDER}
                by_ribs = doubted or bool(contradictions(renamed))
                moved_sacrum = (
                    SacrumCue(ORDER[ORDER.index(sacrum.label) - k], sacrum.below)
                    if sacrum and sacrum.label in ORDER
                    else None
                )
                by_sacrum = bool(moved_sacrum and moved_sacrum.contradiction())
                # The suggestion undoes the renaming when it moves every name k levels towards the feet.
                suggestion = suggested_shift(renamed, moved_sacrum)
                tally["shift_right"] += suggestion == k
                tally["shift_wrong"] += suggestion is not None and suggestion != k
                tally["with_ct"] += 1
                tally["doubtful_ribs"] += by_ribs
                tally["doubtful_ct"] += by_ribs or by_sacrum
        print(f"{name}: truth doubtful={rev.identification_doubtful} flags={len(odd)}", flush=True)
    res = {
        "benchmark": "plausibility review on ground truth and on renamed ground truth",
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "data": str(args.data),
        "truth": truth,
        "shifted": {str(k): v for k, v in sorted(caught.items())},
    }
    write_results(res, markdown(res), args.out, args.markdown or args.out.with_suffix(".md"))
    return 0


def markdown(res: dict) -> str:
    t = res["truth"]
    lines = [
        "### Plausibility review: false alarms on the truth, wrong levels caught",
        "",
        f"- command: `{res['command']}`",
        f"- date: {res['date']}; data: {res['data']}",
        "",
        f"Ground truth as is: {t['doubtful']}/{t['cases']} cases doubted (false alarms); "
        f"{t['flagged_vertebrae']}/{t['vertebrae']} vertebrae with a size or spacing flag (T13/L6 flags excluded).",
        "",
        f"With the CT's rib cues: {t.get('doubtful_ribs', 0)}/{t.get('with_ct', 0)} cases doubted "
        f"({t.get('rib_flags', 0)} rib flags on true names); with the rib and sacrum cues: "
        f"{t.get('doubtful_ct', 0)}/{t.get('with_ct', 0)} ({t.get('sacrum_flags', 0)} sacrum flags on true names); "
        f"{t.get('suggestions', 0)} renamings suggested for true names; "
        f"{t.get('incomplete', 0)} true results called incomplete.",
        "",
        "| levels renamed by | cases | doubted (size, spacing, chain) | cases with CT | + rib cues | + sacrum cue "
        "| renaming suggested: right / wrong |",
        "|---|---|---|---|---|---|---|",
    ]

    def rate(n: int, of: int) -> str:
        return f"{n} ({100 * n / of:.0f} %)" if of else "-"

    for k, v in sorted(res["shifted"].items(), key=lambda kv: (abs(int(kv[0])), int(kv[0]))):
        lines.append(
            f"| {int(k):+d} (toward the {'head' if int(k) > 0 else 'feet'}) | {v['cases']} | "
            f"{rate(v['doubtful'], v['cases'])} | {v.get('with_ct', 0)} | "
            f"{rate(v.get('doubtful_ribs', 0), v.get('with_ct', 0))} | "
            f"{rate(v.get('doubtful_ct', 0), v.get('with_ct', 0))} | "
            f"{v.get('shift_right', 0)} / {v.get('shift_wrong', 0)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
