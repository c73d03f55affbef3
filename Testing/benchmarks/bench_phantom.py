"""Benchmark: time to generate synthetic spine phantoms (SpineSegLib.phantom).

Goal: a full-spine (C1..sacrum) CT phantom at 1 mm in under 10 s on 2 cores. Also times
the same in MR, an oblique (random orientation + 20 deg rotation) full spine, a lumbar CT,
a sagittal MR (0.8 x 0.8 x 3 mm, PIR) and random-region phantoms at 2 mm, each over a few
seeds (the field of view, and so the voxel count, differs per seed).

Run: ``.venv/bin/python Testing/benchmarks/bench_phantom.py`` (about 1-2 min);
``--seeds 1`` for a quick run, ``--only full-ct`` for one configuration.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SpineSegLib.phantom import PhantomConfig, generate_phantom  # noqa: E402

CONFIGS = {
    "full-ct": PhantomConfig(region="full"),
    "full-mr": PhantomConfig(region="full", modality="mr"),
    "full-ct-oblique": PhantomConfig(region="full", orientation="random", max_rotation_deg=20.0),
    "lumbar-ct": PhantomConfig(region="lumbar"),
    "lumbar-mr-sagittal": PhantomConfig(region="lumbar", modality="mr", spacing=(0.8, 0.8, 3.0), orientation="PIR"),
    "random-ct-2mm": PhantomConfig(region="random", spacing=(2.0, 2.0, 2.0), transitional="random", scoliosis=0.3),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default 3)")
    ap.add_argument("--only", choices=sorted(CONFIGS), action="append", help="run only these configurations")
    args = ap.parse_args()
    names = args.only or list(CONFIGS)
    print(f"# bench_phantom  {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"# {platform.platform()}, python {platform.python_version()}, {os.cpu_count()} cpus, numpy {np.__version__}")
    generate_phantom(0, PhantomConfig(region="lumbar", spacing=(3.0, 3.0, 3.0)))  # warm-up (imports, caches)
    print(f"{'config':22s} {'seed':>4s} {'seconds':>8s} {'voxels (M)':>10s}  size")
    summary = {}
    for name in names:
        times = []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            ph = generate_phantom(seed, CONFIGS[name])
            dt = time.perf_counter() - t0
            times.append(dt)
            size = ph.image.GetSize()
            print(f"{name:22s} {seed:4d} {dt:8.2f} {np.prod(size) / 1e6:10.1f}  {size}", flush=True)
            del ph
        summary[name] = times
    print()
    print(f"{'config':22s} {'mean s':>7s} {'max s':>7s}")
    for name, times in summary.items():
        print(f"{name:22s} {np.mean(times):7.2f} {np.max(times):7.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"# peak memory {peak:.0f} MB")
    if "full-ct" in summary:
        ok = max(summary["full-ct"]) < 10.0
        print(f"# goal full-spine 1 mm CT < 10 s: {'met' if ok else 'NOT met'} (max {max(summary['full-ct']):.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
