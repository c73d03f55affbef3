"""The scan: field of view per region, axis orientation, oblique rotation -> an output Grid.

A field of view is chosen in patient terms (which vertebrae must be in it, how far it
reaches above/below them, left/right, in front and behind the body), then boxed in the
grid's own axes: the grid direction is the orientation's axis permutation/flip times an
optional random rotation, and the grid is the smallest box along those axes that holds
every key point. So whatever the orientation, the wanted vertebrae are in view; which
vertebrae end up labelled is decided afterwards from the real grid (see generator).
"""

from __future__ import annotations

import numpy as np

from ..geometry import Grid
from .anatomy import LevelSpec
from .config import PhantomConfig, PhantomConfigError, orientation_matrix
from .curve import Spine
from .softtissue import BodyModel

MAX_VOXELS = 250_000_000


def random_direction(rng: np.random.Generator, config: PhantomConfig) -> np.ndarray:
    """Direction matrix (columns = grid axes in LPS) of the configured orientation and rotation."""
    if config.orientation == "random":
        perm = rng.permutation(3)
        signs = rng.choice([-1.0, 1.0], size=3)
        d = np.zeros((3, 3))
        for col in range(3):
            d[perm[col], col] = signs[col]
    else:
        d = orientation_matrix(config.orientation)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.0, config.max_rotation_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
    return rot @ d


def _wanted_range(config: PhantomConfig, rng: np.random.Generator, levels: list[LevelSpec], spine: Spine):
    """(first, last) level indices that must be in view and the margins (mm) above/below them."""
    names = [lv.name for lv in levels]
    n = len(names)
    centres = np.array([f.origin for f in spine.frames])
    gaps = np.linalg.norm(np.diff(centres, axis=0), axis=1)

    def frac_up(i: int, lo: float = 0.3, hi: float = 1.5) -> float:
        return float(rng.uniform(lo, hi) * (gaps[i - 1] if i > 0 else 20.0))

    def frac_down(i: int, lo: float = 0.3, hi: float = 1.5) -> float:
        return float(rng.uniform(lo, hi) * (gaps[i] if i < n - 1 else 40.0))

    thor = [i for i, nm in enumerate(names) if nm.startswith("T")]
    lum = [i for i, nm in enumerate(names) if nm.startswith("L")]
    region = config.region
    if region == "full":
        return 0, n - 1, float(rng.uniform(15.0, 60.0)), float(rng.uniform(70.0, 140.0))
    if region == "cervical":
        last = names.index("C7")
        return 0, last, float(rng.uniform(12.0, 50.0)), frac_down(last)
    if region == "thoracic":
        return thor[0], thor[-1], frac_up(thor[0]), frac_down(thor[-1])
    if region == "lumbar":
        return lum[0], n - 1, frac_up(lum[0]), float(rng.uniform(20.0, 70.0))
    length = int(rng.integers(3, n + 1))
    first = int(rng.integers(0, n - length + 1))
    last = first + length - 1
    top = float(rng.uniform(12.0, 50.0)) if first == 0 else frac_up(first, 0.25, 1.3)
    bottom = float(rng.uniform(20.0, 120.0)) if last == n - 1 else frac_down(last, 0.25, 1.3)
    return first, last, top, bottom


def choose_grid(
    config: PhantomConfig, rng: np.random.Generator, levels: list[LevelSpec], spine: Spine, body: BodyModel
) -> tuple[Grid, dict]:
    """The output grid of one scan and a description of what it was meant to cover."""
    first, last, top, bottom = _wanted_range(config, rng, levels, spine)
    cervical_only = all(levels[i].name.startswith("C") for i in range(first, last + 1))
    half_width = rng.uniform(55.0, 100.0) if cervical_only else rng.uniform(75.0, 135.0)
    front = rng.uniform(35.0, 80.0) if cervical_only else rng.uniform(40.0, 150.0)
    behind = rng.uniform(5.0, 35.0)
    tight = config.field == "tight"
    if tight:
        # VerSe-like crops (verse005: 106 x 103 mm across, no air): drawn from the same stream
        # after the wide values, so a wide scan of a seed is unchanged by this option.
        half_width, front, reach = rng.uniform(40.0, 65.0), rng.uniform(30.0, 55.0), rng.uniform(60.0, 95.0)
    direction = random_direction(rng, config)
    frames = spine.frames
    top_pt = frames[first].origin + top * frames[first].axes[:, 2]
    bottom_pt = frames[last].origin - bottom * frames[last].axes[:, 2]
    anchors = [top_pt, *(frames[i].origin for i in range(first, last + 1)), bottom_pt]
    key = []
    ex, ey = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    t = body.table
    for p in anchors:
        post = float(t.at(p[2], "cy") + t.at(p[2], "B"))  # posterior skin, from the spine centre
        back = p + (post + behind) * ey if not tight else p + reach * ey
        key += [p + half_width * ex, p - half_width * ex, p - front * ey, back]
    key = np.asarray(key)
    spacing = np.asarray(config.spacing, float)
    proj = key @ direction
    lo, hi = proj.min(axis=0) - 1e-3, proj.max(axis=0) + 1e-3
    size = np.ceil((hi - lo) / spacing).astype(int) + 1
    if int(np.prod(size)) > MAX_VOXELS:
        raise PhantomConfigError(
            f"a {config.region} phantom at spacing {tuple(config.spacing)} mm needs {int(np.prod(size)):,} voxels "
            f"(limit {MAX_VOXELS:,}); use a coarser spacing or a smaller region"
        )
    start = lo - ((size - 1) * spacing - (hi - lo)) / 2.0
    origin = direction @ start
    grid = Grid(
        tuple(int(v) for v in size),
        tuple(float(v) for v in spacing),
        tuple(float(v) for v in origin),
        tuple(float(v) for v in direction.ravel()),
    )
    info = {
        "wanted_first": levels[first].name,
        "wanted_last": levels[last].name,
        "margin_top_mm": round(top, 2),
        "margin_bottom_mm": round(bottom, 2),
        "half_width_mm": round(float(half_width), 2),
        "front_mm": round(float(front), 2),
        "air_behind_mm": round(float(behind), 2) if not tight else 0.0,
        "field": config.field,
    }
    return grid, info
