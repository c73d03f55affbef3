"""Benchmark: how well a segmentation-stage training target can describe the mask it is scored against.

A perfect network reproduces its training target. Inference resamples the network's 1 mm
crop back onto the scan's own grid (linear, > 0.5) and the metrics compare that with the
mask on the same grid; so the Dice of the *target itself*, brought back the same way, is a
ceiling for the Dice a network trained on it can reach. Two targets, side by side, on the
held-out benchmark phantoms (unaugmented samples of every vertebra):

- ``nearest via 1 mm cache``: the mask resampled (nearest) onto the LPS 1 mm training cache,
  then (nearest) into the crop - the stage-3 target before 2026-12-04;
- ``partial volume from native``: the indicator of the vertebra on the scan's own grid,
  resampled linearly into the crop (``samples.segmentation_sample``, the target now).

Run: ``.venv/bin/python Testing/benchmarks/bench_training_targets.py`` (reuses the held-out
phantoms of bench_accuracy.py in out/bench_data/accuracy-benchmark, generating missing ones);
``--cases N`` for fewer; ``--quick``: 1 small oblique lumbar phantom at 1.6 x 1.6 x 3 mm.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "Testing"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import heldout_configs, prepare_heldout  # noqa: E402
from machine import machine_info  # noqa: E402

from SpineSegLib import labels as L  # noqa: E402
from SpineSegLib.geometry import Grid  # noqa: E402
from SpineSegLib.io import write_json_atomic  # noqa: E402
from SpineSegLib.metrics.overlap import overlap_counts  # noqa: E402
from SpineSegLib.pipeline.segmentation import crop_on_image_grid  # noqa: E402

TARGETS = ("nearest via 1 mm cache", "partial volume from native")
QUICK_SPACING = (1.6, 1.6, 3.0)


def target_dice(case, cfg) -> list[dict]:
    """Per vertebra of ``case`` (a CachedCase): the Dice of each target against the native mask."""
    from spineseg_training.samples import segmentation_sample
    from spineseg_training.spatial import SpatialTransform, sample_array

    native = np.asarray(case.native_labels)
    rows = []
    for label in case.vertebra_labels:
        if label not in L.VERTEBRA_LABELS:
            continue
        _, partial = segmentation_sample(case, cfg, np.random.default_rng(0), augment=False, label=label)
        crop = Grid.centered(
            case.centroids[label] + [0.0, float(cfg.params["posterior_shift_mm"]), 0.0], cfg.crop_size, cfg.spacing_mm
        )
        nearest = sample_array(case.labels, case.grid, crop, SpatialTransform.identity(crop.center), order=0) == label
        truth = native == label
        row = {"label": L.name_of(label)}
        for name, target in zip(TARGETS, (nearest, partial[0])):
            # on the native grid exactly as inference places a probability map there (linear, > 0.5)
            placed = crop_on_image_grid(target, crop, case.native_labels_grid)
            mask = np.zeros_like(truth)
            if placed is not None:
                mask[placed[1]] = placed[0] > 0.5
            row[name] = overlap_counts(truth, mask).dice
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20, help="held-out phantoms (default 20)")
    ap.add_argument("--data", type=Path, help="held-out phantom folder (default: bench_accuracy's)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "training_targets.json")
    ap.add_argument("--quick", action="store_true", help="1 small oblique lumbar phantom at 1.6 x 1.6 x 3 mm")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    from spineseg_training.config import stage_config
    from spineseg_training.data import cache_case, find_cases

    n = 1 if args.quick else args.cases
    data = args.data or REPO / "out" / "bench_data" / ("training-targets-quick" if args.quick else "accuracy-benchmark")
    configs = heldout_configs(n, args.quick)
    if args.quick:  # small, but anisotropic and oblique: where the two targets differ
        configs = [
            (s, dataclasses.replace(c, spacing=QUICK_SPACING, orientation="random", max_rotation_deg=15.0))
            for s, c in configs
        ]
    prepare_heldout(data, configs, args.quick)
    wanted = {f"sub-phantom{seed:06d}" for seed, _ in configs}
    cfg = stage_config("segmentation")
    cases = []
    with tempfile.TemporaryDirectory(prefix="bench_targets_") as cache:
        for files in (c for c in find_cases(data) if c.name in wanted):
            case = cache_case(files, cache)
            spacing = "x".join(f"{s:g}" for s in np.round(case.native_labels_grid.spacing, 2))
            rows = target_dice(case, cfg)
            cases.append({"case": files.name, "spacing_mm": spacing, "vertebrae": rows})
            means = "  ".join(f"{t}: {np.mean([r[t] for r in rows]):.4f}" for t in TARGETS)
            print(f"{files.name} {spacing} mm, {len(rows)} vertebrae  {means}", flush=True)

    by_spacing = collections.defaultdict(list)
    for c in cases:
        by_spacing[c["spacing_mm"]] += c["vertebrae"]
    rows = [r for c in cases for r in c["vertebrae"]]
    summary = {
        "all": {t: float(np.mean([r[t] for r in rows])) for t in TARGETS} | {"n": len(rows)},
        "by_spacing": {
            s: {t: float(np.mean([r[t] for r in v])) for t in TARGETS} | {"n": len(v)}
            for s, v in sorted(by_spacing.items())
        },
    }
    res = {
        "benchmark": "bench_training_targets",
        "command": "Testing/benchmarks/bench_training_targets.py " + shlex.join(argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {"data": str(data), "seeds": [s for s, _ in configs], "crop": dataclasses.asdict(cfg)["crop_size"]},
        "summary": summary,
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(res, args.out)
    print(f"\n| native spacing (mm) | vertebrae | Dice: {TARGETS[0]} | Dice: {TARGETS[1]} |\n|---|---|---|---|")
    for s, v in [*summary["by_spacing"].items(), ("all", summary["all"])]:
        print(f"| {s} | {v['n']} | {v[TARGETS[0]]:.4f} | {v[TARGETS[1]]:.4f} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
