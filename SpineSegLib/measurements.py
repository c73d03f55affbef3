"""Per-vertebra measurements from an instance label map: volume, body heights, Genant ratios, core HU, discs.

What a radiologist reads off a spine CT, computed from SpineSeg's (or anyone's) vertebra mask:

* volume of each vertebra (cm3);
* the vertebral body (the mask opened with a ball, :func:`SpineSegLib.body_centroids.body_mask`) and, in a
  local frame of that body, its anterior, middle and posterior heights along the local spine axis, with the
  ratios of quantitative morphometry behind Genant's semi-quantitative fracture grading: wedge = Ha / Hp,
  biconcavity = Hm / Hp, crush = Hp / the mean Hp of the measured neighbours; the height loss is 1 - the
  smallest of them (each capped at 1: a lumbar body taller in front is no loss), graded with Genant's
  thresholds (20/25/40 %).
  Grade and ratios are morphometry, not a diagnosis: a normal thoracic body is slightly wedged;
* the mean and median attenuation of the trabecular core (body voxels at least ``core_depth_mm`` inside the
  body's surface): opportunistic bone-density screening on CT. Reference thresholds from the literature are
  reported next to the value, named as such (:data:`CORE_HU_REFERENCE`), never turned into a diagnosis;
* the height of each disc between two present neighbours, at the middle of the bodies.

Local frame (LPS mm, right-handed): ``s`` the spine axis pointing cranially (from the body centre of the
vertebra below to the one above; with one neighbour, from that one; with none, the image's superior
direction), ``a`` anterior (from the whole-vertebra centroid to the body centre, made orthogonal to ``s``;
the vertebral arch lies behind the body), ``l = s x a``. The body mask is sampled on a 0.5 mm grid of that
frame (linear interpolation of the 0/1 mask, > 0.5), so oblique scans and thick slices are measured in mm,
not in voxels. Heights are the median over the columns of a band (through the body's left-right middle,
``band_lr_mm`` wide): anterior band = the front 10-20 % of the body's depth, middle 45-55 %, posterior
80-90 % (the outermost 10 % are left out: the opening rounds the body's edges).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import labels as L
from .body_centroids import BODY_OPENING_RADIUS_MM, NO_BODY_LABELS, body_mask
from .geometry import Grid
from .labelmap import bounding_boxes

__all__ = [
    "CORE_HU_REFERENCE",
    "DiscMeasurement",
    "Measurements",
    "VertebraMeasurement",
    "genant_grade",
    "measure_vertebrae",
]

#: Published screening thresholds of the trabecular attenuation of L1 on CT (Pickhardt et al., Ann Intern
#: Med 2013): a reference for the reader, not a diagnosis and not a calibrated bone-density measurement.
CORE_HU_REFERENCE = {
    "source": "Pickhardt et al. 2013, L1 trabecular attenuation on CT",
    "osteoporosis_specific_at_or_below_hu": 110.0,
    "normal_density_specific_above_hu": 160.0,
}
#: Genant semi-quantitative grades by height loss: 0 below 20 %, 1 20-25 %, 2 25-40 %, 3 40 % and more.
GENANT_LIMITS = (0.20, 0.25, 0.40)
#: Bands of the body's depth (0 = posterior, 1 = anterior) whose column heights give Hp, Hm, Ha.
BANDS = {"posterior": (0.10, 0.20), "middle": (0.45, 0.55), "anterior": (0.80, 0.90)}
STEP_MM = 0.5


@dataclass(frozen=True)
class VertebraMeasurement:
    """One vertebra; heights in mm, volume in cm3, HU only when the image is CT (else None)."""

    label: int
    name: str
    volume_cm3: float
    body_volume_cm3: float | None = None
    height_anterior_mm: float | None = None
    height_middle_mm: float | None = None
    height_posterior_mm: float | None = None
    wedge_ratio: float | None = None  # Ha / Hp
    biconcavity_ratio: float | None = None  # Hm / Hp
    crush_ratio: float | None = None  # Hp / mean Hp of the measured neighbours
    height_loss: float | None = None  # 1 - the smallest of wedge, biconcavity and crush ratio (each capped at 1)
    genant_grade: int | None = None
    core_hu_mean: float | None = None
    core_hu_median: float | None = None
    core_voxels: int = 0
    axis: str = ""  # how the spine axis was found: "neighbours", "one neighbour", "image superior"
    note: str = ""


@dataclass(frozen=True)
class DiscMeasurement:
    """The disc between ``upper`` and ``lower``: its height at the middle of the bodies (mm)."""

    upper: int
    lower: int
    name: str
    height_middle_mm: float | None


@dataclass(frozen=True)
class Measurements:
    vertebrae: tuple[VertebraMeasurement, ...]
    discs: tuple[DiscMeasurement, ...]

    def as_dict(self) -> dict:
        return {
            "vertebrae": [asdict(v) for v in self.vertebrae],
            "discs": [asdict(d) for d in self.discs],
            "core_hu_reference": dict(CORE_HU_REFERENCE),
            "definitions": __doc__.split("\n\n", 1)[1].strip(),
        }

    def csv_rows(self) -> list[dict]:
        """One row per vertebra (the disc below it in the last columns), for a CSV table."""
        below = {d.upper: d for d in self.discs}
        rows = []
        for v in self.vertebrae:
            row = {k: _rounded(x) for k, x in asdict(v).items()}
            disc = below.get(v.label)
            row["disc_below"] = disc.name if disc else ""
            row["disc_below_height_mm"] = _rounded(disc.height_middle_mm) if disc else None
            rows.append(row)
        return rows


def _rounded(x):
    return round(x, 3) if isinstance(x, float) else x


def genant_grade(height_loss: float) -> int:
    """Genant's semi-quantitative grade (0-3) of a relative height loss (0.3 = 30 %)."""
    return int(sum(height_loss >= t for t in GENANT_LIMITS))


@dataclass(frozen=True)
class _Frame:
    centre: np.ndarray  # LPS mm
    axes: np.ndarray  # (3, 3): rows l, a, s


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-6 and math.isfinite(n) else None


def _frame(body_centre: np.ndarray, whole_centre: np.ndarray, up: np.ndarray) -> _Frame:
    s = up
    a = _unit((body_centre - whole_centre) - ((body_centre - whole_centre) @ s) * s)
    if a is None:  # no arch to point from (C1, a body-only mask): anterior = LPS -P, made orthogonal
        a = _unit(np.array([0.0, -1.0, 0.0]) - (-s[1]) * s)
        if a is None:
            a = _unit(np.cross(s, [1.0, 0.0, 0.0]))
    return _Frame(body_centre, np.stack([np.cross(a, s), a, s]))


def _sample(mask: np.ndarray, offset_kji: np.ndarray, grid: Grid, frame: _Frame, lo, hi) -> np.ndarray:
    """The 0/1 ``mask`` (array block at ``offset_kji`` of ``grid``) on the frame's box [lo, hi] (mm), [s, a, l]."""
    ticks = [np.arange(lo[d], hi[d] + STEP_MM / 2, STEP_MM) for d in range(3)]  # l, a, s
    ll, aa, ss = np.meshgrid(*ticks, indexing="ij")
    pts = frame.centre + ll[..., None] * frame.axes[0] + aa[..., None] * frame.axes[1] + ss[..., None] * frame.axes[2]
    ijk = grid.physical_to_index(pts.reshape(-1, 3))
    kji = ijk[:, ::-1].T - offset_kji[:, None]
    vals = ndimage.map_coordinates(mask.astype(np.float32), kji, order=1, mode="constant", cval=0.0)
    return np.transpose(vals.reshape(ll.shape) > 0.5, (2, 1, 0))  # [s, a, l]


def _extent(mask: np.ndarray, offset_kji: np.ndarray, grid: Grid, frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    """Box (l, a, s mm in the frame) of the mask's voxel centres, widened by half the largest spacing + a step."""
    kji = np.argwhere(mask) + offset_kji
    pts = grid.index_to_physical(kji[:, ::-1].astype(np.float64)) - frame.centre
    local = pts @ frame.axes.T
    pad = max(grid.spacing) / 2 + STEP_MM
    return local.min(axis=0) - pad, local.max(axis=0) + pad


def _anterior_run(occupied: np.ndarray, bridge_mm: float = 2.0) -> tuple[int, int] | None:
    """First and last row of the most anterior run of occupied depth rows (gaps under ``bridge_mm`` bridged).

    Through the body's left-right middle the body is the most anterior structure; behind it lie the
    canal and, where thick pedicles survived the opening (lower lumbar spine), the arch: not body.
    """
    idx = np.flatnonzero(occupied)
    if idx.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(idx) * STEP_MM > bridge_mm)
    start = idx[breaks[-1] + 1] if breaks.size else idx[0]
    if idx[-1] - start < 2:
        return None
    return int(start), int(idx[-1])


def _local_depth(shape: tuple[int, ...], offset_kji: np.ndarray, grid: Grid, frame: _Frame) -> np.ndarray:
    """The frame's anterior coordinate (mm) of every voxel of an array block at ``offset_kji``."""
    k, j, i = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    ijk = np.stack([i, j, k], -1).reshape(-1, 3) + offset_kji[::-1]
    return ((grid.index_to_physical(ijk) - frame.centre) @ frame.axes[1]).reshape(shape)


def _column_heights(block: np.ndarray, band_lr_mm: float) -> dict[str, float] | None:
    """Median column heights (mm) of the three depth bands of a body sampled as [s, a, l].

    Also ``back_wall_mm``: where the body's back wall lies, in mm from the block's first depth row.
    """
    if not block.any():
        return None
    cols = block.sum(axis=0) * STEP_MM  # [a, l] height of every column
    occupied_l = np.flatnonzero(cols.any(axis=0))
    mid_l = (occupied_l[0] + occupied_l[-1]) / 2
    half = max(1, round(band_lr_mm / 2 / STEP_MM))
    lr = slice(max(0, round(mid_l) - half), round(mid_l) + half + 1)
    band = cols[:, lr]
    rows = _anterior_run(band.any(axis=1))
    if rows is None:
        return None
    a0, a1 = rows
    out = {"back_wall_mm": STEP_MM * (a0 - 0.5)}
    for name, (f0, f1) in BANDS.items():
        r0 = a0 + f0 * (a1 - a0)
        r1 = a0 + f1 * (a1 - a0)
        rows = np.arange(math.floor(r0), math.ceil(r1) + 1)
        vals = band[rows[(rows >= a0) & (rows <= a1)]]
        vals = vals[vals > 0]
        if vals.size == 0:
            return None
        out[name] = float(np.median(vals))
    return out


def measure_vertebrae(
    labelmap: sitk.Image,
    image: sitk.Image | None = None,
    *,
    labels: Iterable[int] | None = None,
    hounsfield: bool = True,
    core_depth_mm: float = 3.0,
    band_lr_mm: float = 6.0,
    radius_mm: float = BODY_OPENING_RADIUS_MM,
) -> Measurements:
    """Measurements of every vertebra of ``labelmap`` (or of ``labels``), and of the discs between neighbours.

    ``image`` (same grid as the label map) gives the core attenuation; ``hounsfield=False`` (an MR, a non-HU
    CT) leaves it out. Sacrum and coccyx are not vertebrae with a body and are skipped.
    """
    grid = Grid.of(labelmap)
    if image is not None and not Grid.of(image).same_as(grid):
        raise ValueError("the image and the label map are not on the same grid")
    arr = sitk.GetArrayViewFromImage(labelmap)
    if arr.dtype.kind not in "iu":
        arr = np.rint(arr).astype(np.int32)
    boxes = bounding_boxes(np.asarray(arr))
    wanted = [lab for lab in L.anatomical_order(b for b in boxes if L.is_known(b)) if lab in L.VERTEBRA_LABELS]
    if labels is not None:
        keep = {int(x) for x in labels}
        wanted = [lab for lab in wanted if lab in keep]
    spacing_kji = tuple(grid.spacing)[::-1]
    voxel_cm3 = float(np.prod(grid.spacing)) / 1000.0
    image_arr = sitk.GetArrayViewFromImage(image) if (image is not None and hounsfield) else None

    # Pass 1: masks, bodies and centres of every vertebra (the axis of one needs its neighbours' centres).
    # A vertebra whose body touches the image's edge is cut by the field of view: no heights, and its
    # centre does not steer a neighbour's axis (processes cut by a tight crop leave the body measurable).
    shape = arr.shape
    partial = set()
    parts = {}
    for lab in wanted:
        sl = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in boxes[lab])
        mask = np.asarray(arr[sl]) == lab
        offset = np.array([s.start for s in sl], dtype=np.float64)
        body = mask if lab in NO_BODY_LABELS else body_mask(mask, spacing_kji, radius_mm)
        if _touches_edge(body, sl, shape):
            partial.add(lab)
        whole_c = grid.index_to_physical((ndimage.center_of_mass(mask) + offset)[::-1])[0]
        body_c = grid.index_to_physical((ndimage.center_of_mass(body) + offset)[::-1])[0]
        parts[lab] = (sl, mask, offset, body, whole_c, body_c)

    up_image = np.array([0.0, 0.0, 1.0])  # LPS superior
    frames: dict[int, _Frame] = {}
    out: list[dict] = []
    for n, lab in enumerate(wanted):
        sl, mask, offset, body, whole_c, body_c = parts[lab]
        prev_lab, next_lab = _neighbours(wanted, n)
        prev_lab = None if prev_lab in partial else prev_lab
        next_lab = None if next_lab in partial else next_lab
        if prev_lab is not None and next_lab is not None:
            up, how = _unit(parts[prev_lab][5] - parts[next_lab][5]), "neighbours"
        elif prev_lab is not None or next_lab is not None:
            other = prev_lab if prev_lab is not None else next_lab
            d = parts[other][5] - body_c
            up, how = _unit(d if other == prev_lab else -d), "one neighbour"
        else:
            up, how = None, "image superior"
        if up is None:
            up, how = up_image, "image superior"
        frame = _frame(body_c, whole_c, up)
        frames[lab] = frame
        row = {
            "label": lab,
            "name": L.name_of(lab),
            "volume_cm3": float(mask.sum()) * voxel_cm3,
            "axis": how,
        }
        if lab in NO_BODY_LABELS:
            out.append({**row, "note": "no vertebral body (C1)"})
            continue
        if lab in partial:
            out.append({**row, "note": "cut by the field of view: not measured"})
            continue
        lo, hi = _extent(body, offset, grid, frame)
        heights = _column_heights(_sample(body, offset, grid, frame, lo, hi), band_lr_mm)
        if heights:
            # The body proper: what lies in front of the back wall found through the body's middle (thick
            # pedicles that survived the opening, and the arch behind them, are not body).
            body = body & (_local_depth(body.shape, offset, grid, frame) >= lo[1] + heights["back_wall_mm"])
        row["body_volume_cm3"] = float(body.sum()) * voxel_cm3
        if heights:
            ha, hm, hp = heights["anterior"], heights["middle"], heights["posterior"]
            row.update(
                height_anterior_mm=ha,
                height_middle_mm=hm,
                height_posterior_mm=hp,
                wedge_ratio=ha / hp,
                biconcavity_ratio=hm / hp,
            )
        if image_arr is not None:
            depth = ndimage.distance_transform_edt(np.pad(body, 1), sampling=spacing_kji)[1:-1, 1:-1, 1:-1]
            core = depth >= core_depth_mm
            values = np.asarray(image_arr[sl], dtype=np.float64)[core]
            if values.size:
                row.update(
                    core_hu_mean=float(values.mean()), core_hu_median=float(np.median(values)), core_voxels=values.size
                )
        out.append(row)
    discs = tuple(
        _disc(parts, frames, grid, a, b, band_lr_mm)
        for a, b in _consecutive(wanted)
        if a not in partial and b not in partial
    )
    _grade(out, wanted)
    return Measurements(tuple(VertebraMeasurement(**row) for row in out), discs)


def _grade(rows: list[dict], order: Sequence[int]) -> None:
    """Crush ratio against the measured neighbours, height loss and Genant grade of every measured body."""
    hp = {r["label"]: r.get("height_posterior_mm") for r in rows}
    for n, row in enumerate(rows):
        if row.get("wedge_ratio") is None:
            continue
        prev_lab, next_lab = _neighbours(order, n)
        near = [hp[x] for x in (prev_lab, next_lab) if x is not None and hp.get(x)]
        ratios = [row["wedge_ratio"], row["biconcavity_ratio"]]
        if near:
            row["crush_ratio"] = row["height_posterior_mm"] / float(np.mean(near))
            ratios.append(row["crush_ratio"])
        row["height_loss"] = max(0.0, 1.0 - min(min(r, 1.0) for r in ratios))
        row["genant_grade"] = genant_grade(row["height_loss"])


def _touches_edge(block: np.ndarray, sl: tuple[slice, ...], shape: tuple[int, ...]) -> bool:
    """Whether ``block`` (the array at ``sl`` of an array of ``shape``) has a voxel on that array's faces."""
    for axis, (s, n) in enumerate(zip(sl, shape)):
        first = np.take(block, 0, axis=axis)
        last = np.take(block, -1, axis=axis)
        if (s.start == 0 and first.any()) or (s.stop >= n and last.any()):
            return True
    return False


def _neighbours(order: Sequence[int], n: int) -> tuple[int | None, int | None]:
    """The labels directly above and below ``order[n]`` when they are its anatomical neighbours."""
    prev_lab = order[n - 1] if n > 0 and _adjacent(order[n - 1], order[n]) else None
    next_lab = order[n + 1] if n + 1 < len(order) and _adjacent(order[n], order[n + 1]) else None
    return prev_lab, next_lab


def _adjacent(upper: int, lower: int) -> bool:
    """Whether ``lower`` follows ``upper`` directly (a transitional T13/L6 between them may be absent)."""
    nxt = L.neighbours_in_order(upper)[1]
    while nxt is not None and nxt != lower and nxt in L.TRANSITIONAL_LABELS:
        nxt = L.neighbours_in_order(nxt)[1]
    return nxt == lower


def _consecutive(order: Sequence[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in itertools.pairwise(order) if _adjacent(a, b)]


def _disc(parts, frames, grid: Grid, upper: int, lower: int, band_lr_mm: float) -> DiscMeasurement:
    """Gap along the upper body's axis between its lower endplate and the lower body's upper one, mid-body."""
    name = f"{L.name_of(upper)}/{L.name_of(lower)}"
    if upper in NO_BODY_LABELS or lower in NO_BODY_LABELS:
        return DiscMeasurement(upper, lower, name, None)  # C1/C2: no disc
    frame = frames[upper]
    half = band_lr_mm / 2
    heights = []
    for lab in (upper, lower):
        _, _, offset, body, _, _ = parts[lab]
        lo, hi = _extent(body, offset, grid, frame)
        lo = np.array([-half, lo[1], lo[2]])
        hi = np.array([half, hi[1], hi[2]])
        heights.append((_sample(body, offset, grid, frame, lo, hi), lo))
    (up_block, up_lo), (low_block, low_lo) = heights
    # Middle band of the upper body's depth, the same mm rows in both blocks.
    rows = _anterior_run(up_block.any(axis=(0, 2)))
    if rows is None or not low_block.any():
        return DiscMeasurement(upper, lower, name, None)
    a_mid = up_lo[1] + STEP_MM * (rows[0] + rows[1]) / 2
    gaps = []
    for a_mm in np.arange(a_mid - 2.0, a_mid + 2.0 + 1e-9, STEP_MM):
        ru = round((a_mm - up_lo[1]) / STEP_MM)
        rl = round((a_mm - low_lo[1]) / STEP_MM)
        if not (0 <= ru < up_block.shape[1] and 0 <= rl < low_block.shape[1]):
            continue
        for c in range(up_block.shape[2]):
            su = np.flatnonzero(up_block[:, ru, c])
            sw = np.flatnonzero(low_block[:, rl, c])
            if su.size and sw.size:
                bottom_of_upper = up_lo[2] + STEP_MM * (su[0] - 0.5)
                top_of_lower = low_lo[2] + STEP_MM * (sw[-1] + 0.5)
                gaps.append(bottom_of_upper - top_of_lower)
    return DiscMeasurement(upper, lower, name, float(np.median(gaps)) if gaps else None)
