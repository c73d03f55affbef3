"""``make demo``: the main job on the bundled sample case, evaluated against its ground truth.

Equivalent to::

    spineseg run Resources/SampleData/sub-demo_ct.nii.gz -o out/demo
    spineseg evaluate --pred out/demo/sub-demo_seg-vert_msk.nii.gz --pred-ctd out/demo/sub-demo_ctd.json \\
        --gt Resources/SampleData/sub-demo_seg-vert_msk.nii.gz \\
        --gt-ctd Resources/SampleData/sub-demo_seg-subreg_ctd.json --ignore S

The sample's ground truth labels the sacrum; the CT pipeline (Payer et al.) has no sacrum
channel, so the sacrum is left out of the score, as in the accuracy benchmark.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import main as cli_main
from .errors import SpineSegError
from .models import resources_dir

CASE = "sub-demo"


def sample_dir() -> Path:
    """The bundled sample case: next to the models' Resources, else in the source tree's Resources."""
    candidates = []
    try:
        candidates.append(resources_dir() / "SampleData")
    except SpineSegError:
        pass
    candidates.append(Path(__file__).resolve().parent.parent / "Resources" / "SampleData")
    for c in candidates:
        if (c / f"{CASE}_ct.nii.gz").is_file():
            return c
    raise SpineSegError(f"bundled sample case {CASE}_ct.nii.gz not found in {', '.join(map(str, candidates))}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m SpineSegLib.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = p.parse_args(argv)
    sample = sample_dir()
    image = sample / f"{CASE}_ct.nii.gz"
    print(f"SpineSeg demo: {image}")
    rc = cli_main(["run", str(image), "-o", str(args.out), "--device", args.device, "--force", "--save-heatmaps"])
    if rc:
        return rc
    print(f"\nOutputs in {args.out}/ ({CASE}_seg-vert_msk.nii.gz, _ctd.json, _snp.png, _timings.json)\n")
    print("Evaluation against the ground truth:")
    return cli_main(
        [
            "evaluate",
            "--pred", str(args.out / f"{CASE}_seg-vert_msk.nii.gz"),
            "--pred-ctd", str(args.out / f"{CASE}_ctd.json"),
            "--gt", str(sample / f"{CASE}_seg-vert_msk.nii.gz"),
            "--gt-ctd", str(sample / f"{CASE}_seg-subreg_ctd.json"),
            "--json", str(args.out / f"{CASE}_metrics.json"),
            "--ignore", "S",
        ]
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
