"""``spineseg phantom``: write synthetic spine cases in a VerSe/BIDS layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SpineSegError
from .options import positive_number

REGIONS = ("full", "cervical", "thoracic", "lumbar", "random")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, type=Path, help="root folder of the VerSe/BIDS tree to write")
    p.add_argument("-n", "--number", type=int, default=1, help="number of cases (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first case; case i uses seed+i (default 0)")
    p.add_argument("--modality", choices=("ct", "mr"), default="ct", help="CT (HU) or T2w-like MR (default ct)")
    p.add_argument("--region", choices=REGIONS, default="full", help="field of view (default full: C1..sacrum)")
    p.add_argument(
        "--spacing",
        nargs=3,
        type=positive_number("spacing"),
        metavar=("X", "Y", "Z"),
        default=None,
        help="voxel spacing in mm",
    )
    p.add_argument(
        "--orientation",
        default="LPS",
        help='axis orientation code of the written images, e.g. LPS, RAS, PIR, or "random" (default LPS)',
    )
    p.add_argument("--rotation", type=float, default=0.0, help="maximum random oblique rotation in degrees")
    p.add_argument(
        "--transitional", choices=("none", "t13", "l6", "random"), default="none", help="transitional anatomy"
    )
    p.add_argument("--scoliosis", type=float, default=0.0, help="probability of a scoliotic curve (0..1)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..phantom import PhantomConfig, generate_phantom, write_phantom_case

    if args.number < 1:
        raise SpineSegError(f"--number must be at least 1, got {args.number}")
    if not 0.0 <= args.scoliosis <= 1.0:
        raise SpineSegError(f"--scoliosis is a probability in 0..1, got {args.scoliosis}")
    kwargs = dict(
        modality=args.modality,
        region=args.region,
        orientation=args.orientation,
        max_rotation_deg=args.rotation,
        transitional=args.transitional,
        scoliosis=args.scoliosis,
    )
    if args.spacing:
        kwargs["spacing"] = tuple(args.spacing)
    config = PhantomConfig(**kwargs)
    _check_writable(args.output)
    for i in tqdm(range(args.number), desc="phantoms", unit="case", disable=args.number == 1):
        seed = args.seed + i
        paths = write_phantom_case(generate_phantom(seed, config), args.output, f"phantom{seed:04d}")
        print(f"{paths.image}")
    return 0


def _check_writable(folder: Path) -> None:
    import os

    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise SpineSegError(f"{folder}: output folder is not writable")
