"""Phantom datasets for training and benchmarks: each case draws its own scan settings.

``spineseg phantom`` writes N cases with one configuration; a training or benchmark set
needs a mix (fields of view, spacings, orientations, transitional anatomy). The mix is a
pure function of the seed, so a dataset is reproducible from (kind, seeds) alone; training
and held-out benchmark sets use disjoint seed ranges.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from SpineSegLib import bids
from SpineSegLib.phantom import PhantomConfig, generate_phantom, write_phantom_case

#: Seeds >= this are reserved for held-out evaluation; training sets must stay below.
HELD_OUT_SEED_START = 100_000

_SPACINGS = [(1.0, 1.0, 1.0), (0.8, 0.8, 1.0), (0.7, 0.7, 1.0), (0.6, 0.6, 2.0), (1.0, 1.0, 2.5), (0.8, 0.8, 3.0)]
_REGIONS = ["full", "random", "cervical", "thoracic", "lumbar"]


def draw_config(seed: int, kind: str = "train", modality: str = "ct") -> PhantomConfig:
    """Scan settings of case ``seed``: ``kind`` "train" (wide mix) or "benchmark" (the held-out mix)."""
    rng = np.random.default_rng([seed, 7919])
    if kind == "train":
        region = rng.choice(_REGIONS, p=[0.35, 0.35, 0.1, 0.1, 0.1])
        spacing = _SPACINGS[rng.choice(len(_SPACINGS), p=[0.4, 0.12, 0.12, 0.12, 0.12, 0.12])]
        rotation = float(rng.choice([0.0, 10.0, 20.0], p=[0.5, 0.3, 0.2]))
        orientation = str(rng.choice(["LPS", "random"], p=[0.5, 0.5]))
        transitional = "random"
        scoliosis = 0.2
    elif kind == "benchmark":
        # Held-out mix the accuracy goals are measured on: full spines and partial fields of view
        # that contain an anatomical anchor (skull base/C1, first or last rib, sacrum), at
        # anisotropic spacing and oblique orientations.
        region = ["full", "cervical", "thoracic", "lumbar", "full"][seed % 5]
        spacing = _SPACINGS[seed % len(_SPACINGS)]
        rotation = 15.0 if seed % 2 else 0.0
        orientation = "random" if seed % 3 else "LPS"
        transitional = "none"
        scoliosis = 0.0
    else:
        raise ValueError(f"unknown dataset kind {kind!r}")
    appearance, field = "classic", "wide"
    if modality == "mr":
        # Sagittal stacks as clinical T2w spine MR: 3-5 mm slices left-right, 0.6-1 mm in plane,
        # mostly a tight field around the spine; drawn last, so the other settings of a seed stay.
        in_plane = float(rng.choice([0.6, 0.8, 1.0]))
        spacing = (in_plane, in_plane, float(rng.choice([3.0, 3.5, 4.0, 4.5, 5.0])))
        orientation = "PIR" if kind == "benchmark" or rng.random() < 0.7 else str(rng.choice(["PIL", "ASR", "PSL"]))
        field = str(rng.choice(["tight", "wide"], p=[0.6, 0.4]))
    if kind == "train" and modality == "ct":
        # Real-CT appearance (dark textured bodies, correlated noise) for three cases in four and
        # VerSe-like tight crops for three in ten; drawn last, so the other settings of a seed stay.
        appearance = str(rng.choice(["real", "classic"], p=[0.75, 0.25]))
        field = str(rng.choice(["tight", "wide"], p=[0.3, 0.7]))
    return PhantomConfig(
        modality=modality,
        region=str(region),
        spacing=tuple(float(s) for s in spacing),
        orientation=orientation,
        max_rotation_deg=rotation,
        transitional=transitional,
        scoliosis=scoliosis,
        appearance=appearance,
        field=field,
    )


def write_case(root: Path, seed: int, config: PhantomConfig) -> bids.CasePaths:
    """Generate and write case ``seed`` unless it is already complete (its sidecar exists)."""
    subject = f"phantom{seed:06d}"
    paths = bids.case_paths(root, subject, config.modality)
    if paths.sidecar.exists():
        return paths
    return write_phantom_case(generate_phantom(seed, config), root, subject)


def make_dataset(root: str | Path, seeds: range, kind: str = "train", modality: str = "ct", progress: bool = True):
    from tqdm import tqdm

    root = Path(root)
    if kind == "train" and seeds.stop > HELD_OUT_SEED_START:
        raise ValueError(f"training seeds must stay below {HELD_OUT_SEED_START} (held-out range)")
    if kind == "benchmark" and seeds.start < HELD_OUT_SEED_START:
        raise ValueError(f"benchmark seeds must be >= {HELD_OUT_SEED_START} (never used in training)")
    for seed in tqdm(seeds, desc=f"{kind} phantoms", disable=not progress):
        write_case(root, seed, draw_config(seed, kind, modality))
