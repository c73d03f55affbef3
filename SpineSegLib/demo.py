"""``make demo``: the main job on a bundled case, evaluated against its ground truth.

The default case is a real CT: VerSe 2019 subject verse005 (a tight lumbar crop, L1-L5, with
its manual vertebra labels; CC BY-SA 4.0, attribution in Resources/SampleData/README.md), which
no bundled weights were trained on. ``--case phantom`` runs the synthetic full-spine phantom
instead. Equivalent to::

    spineseg run Resources/SampleData/sub-verse005_ct.nii.gz -o out/demo
    spineseg evaluate --pred out/demo/sub-verse005_seg-vert_msk.nii.gz --pred-ctd out/demo/sub-verse005_ctd.json \\
        --gt Resources/SampleData/sub-verse005_seg-vert_msk.nii.gz

The real case has no centroid file: the evaluation takes the ground-truth points from the mask.
The phantom's ground truth labels the sacrum; the CT pipeline (Payer et al.) has no sacrum
channel, so the sacrum is left out of its score, as in the accuracy benchmark.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from .cli import main as cli_main
from .errors import SpineSegError
from .models import resources_dir


@dataclass(frozen=True)
class SampleCase:
    """A bundled case: its BIDS subject name, whether it has a centroid file, what the score leaves out."""

    name: str
    has_centroids: bool
    ignore: tuple[str, ...] = ()


CASES = {
    "verse005": SampleCase("sub-verse005", has_centroids=False),
    "phantom": SampleCase("sub-demo", has_centroids=True, ignore=("S",)),
}
CASE = CASES["phantom"].name  # the phantom sample, which tests and the benchmarks use


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
    p.add_argument(
        "--case", default="verse005", choices=sorted(CASES), help="verse005: real lumbar CT (default); phantom"
    )
    args = p.parse_args(argv)
    case = CASES[args.case]
    sample = sample_dir()
    image = sample / f"{case.name}_ct.nii.gz"
    if not image.is_file():
        raise SystemExit(f"demo: {image} is missing from the bundled sample data")
    print(f"SpineSeg demo: {image}")
    rc = cli_main(["run", str(image), "-o", str(args.out), "--device", args.device, "--force", "--save-heatmaps"])
    if rc:
        return rc
    name = case.name
    print(f"\nOutputs in {args.out}/ ({name}_seg-vert_msk.nii.gz, _ctd.json, _snp.png, _timings.json)\n")
    print("Evaluation against the ground truth:")
    evaluate = [
        "evaluate",
        "--pred", str(args.out / f"{name}_seg-vert_msk.nii.gz"),
        "--pred-ctd", str(args.out / f"{name}_ctd.json"),
        "--gt", str(sample / f"{name}_seg-vert_msk.nii.gz"),
        "--json", str(args.out / f"{name}_metrics.json"),
    ]  # fmt: skip
    if case.has_centroids:
        evaluate += ["--gt-ctd", str(sample / f"{name}_seg-subreg_ctd.json")]
    if case.ignore:
        evaluate += ["--ignore", *case.ignore]
    return cli_main(evaluate)


if __name__ == "__main__":
    sys.exit(main())
