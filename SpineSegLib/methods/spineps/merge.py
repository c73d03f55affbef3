"""Fusing the instance network's overlapping predictions by inter-Dice agreement (SPINEPS, 2.4).

Each cutout around a body centre yields three masks: the vertebra above the centre, the one at it
and the one below. A vertebra is therefore predicted up to three times, by neighbouring cutouts.
For every prediction (the anchor) the two predictions of nearby cutouts that agree with it best
(Dice > 0.3) form a *couple* with it; the couple's agreement is the mean Dice of the partners.
Couples are merged best first, scored (size + 1) x agreement: a well-agreeing triple by majority
vote (two of three), a pair or a poorly agreeing triple by union; a couple that mostly (> 60 %)
lies on vertebrae already placed is a duplicate and skipped; a new vertebra only takes unclaimed
voxels. The result is cleaned (small pieces dropped, holes filled) and numbered top to bottom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Dice above which two predictions are taken to show the same vertebra.
PARTNER_DICE = 0.3
#: Neighbouring cutouts (by centre rank) whose predictions can partner an anchor.
PARTNER_RANGE = 2
#: A couple lying on placed vertebrae by more than this fraction is a duplicate.
MAX_PLACED_OVERLAP = 0.6
#: Smallest vertebra piece kept (mm3): SPINEPS's 250 voxels at its 0.75 x 0.75 x 1.65 mm grid.
MIN_PIECE_MM3 = 250 * 0.75 * 0.75 * 1.65

Key = tuple[int, int]  # (centre rank, slot: 0 above, 1 at, 2 below the centre)


@dataclass(frozen=True)
class BoxMask:
    """A binary mask stored as its bounding box: Dice between many predictions stays cheap."""

    lo: tuple[int, ...]
    box: np.ndarray

    @classmethod
    def of(cls, mask: np.ndarray) -> BoxMask | None:
        idx = np.nonzero(mask)
        if not idx[0].size:
            return None
        lo = tuple(int(i.min()) for i in idx)
        hi = tuple(int(i.max()) + 1 for i in idx)
        return cls(lo, np.ascontiguousarray(mask[tuple(slice(a, b) for a, b in zip(lo, hi))]))

    @classmethod
    def placed(cls, box: np.ndarray, lo: tuple[int, ...], shape: tuple[int, ...]) -> BoxMask | None:
        """``box`` put at ``lo`` in an array of ``shape``: the part outside the array is dropped."""
        a = [max(0, -o) for o in lo]
        b = [min(s, sh - o) for s, sh, o in zip(box.shape, shape, lo)]
        if any(x >= y for x, y in zip(a, b)):
            return None
        inner = cls.of(np.asarray(box[tuple(slice(x, y) for x, y in zip(a, b))], bool))
        if inner is None:
            return None
        return cls(tuple(o + x + lo_i for o, x, lo_i in zip(lo, a, inner.lo)), inner.box)

    @property
    def hi(self) -> tuple[int, ...]:
        return tuple(a + s for a, s in zip(self.lo, self.box.shape))

    @property
    def size(self) -> int:
        return int(np.count_nonzero(self.box))

    def intersection(self, other: BoxMask) -> int:
        lo = [max(a, b) for a, b in zip(self.lo, other.lo)]
        hi = [min(a, b) for a, b in zip(self.hi, other.hi)]
        if any(a >= b for a, b in zip(lo, hi)):
            return 0
        mine = self.box[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, self.lo))]
        theirs = other.box[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, other.lo))]
        return int(np.count_nonzero(mine & theirs))

    def dice(self, other: BoxMask) -> float:
        return 2.0 * self.intersection(other) / (self.size + other.size)

    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.lo, self.hi))


@dataclass(frozen=True)
class Couple:
    """Predictions taken to show one vertebra, and how well they agree (mean partner Dice)."""

    members: tuple[Key, ...]
    agreement: float

    @property
    def priority(self) -> float:
        return (len(self.members) + 1) * self.agreement

    @property
    def majority(self) -> bool:
        """Vote two of three where three agree well enough; else take the union."""
        n = len(self.members)
        return n > 2 and self.agreement >= PARTNER_DICE + 0.15 * (4 - n)


def couples(masks: Mapping[Key, BoxMask]) -> list[Couple]:
    """One couple per anchor (duplicates averaged), best first."""
    found: dict[tuple[Key, ...], list[float]] = {}
    for anchor, m in masks.items():
        scored = sorted(
            ((m.dice(masks[k]), k) for k in masks if k != anchor and abs(k[0] - anchor[0]) <= PARTNER_RANGE),
            reverse=True,
        )
        partners = [(d, k) for d, k in scored if d > PARTNER_DICE][:2]
        members = tuple(sorted([anchor, *(k for _, k in partners)]))
        found.setdefault(members, []).append(float(np.mean([d for d, _ in partners])) if partners else 0.0)
    out = [Couple(members, float(np.mean(agr))) for members, agr in found.items()]
    return sorted(out, key=lambda c: (-c.priority, c.members))


def merge_predictions(
    predictions: Mapping[Key, np.ndarray], spacing_kji: Sequence[float], min_piece_mm3: float = MIN_PIECE_MM3
) -> np.ndarray:
    """Instance map (uint16, 1..n top to bottom) fused from the per-cutout predictions on one array."""
    masks = {k: m for k, p in predictions.items() if (m := BoxMask.of(np.asarray(p, bool))) is not None}
    shape = next(iter(predictions.values())).shape if predictions else ()
    return merge_masks(masks, shape, spacing_kji, min_piece_mm3)


def merge_masks(
    masks: Mapping[Key, BoxMask], shape: tuple[int, ...], spacing_kji: Sequence[float], min_piece_mm3: float
) -> np.ndarray:
    """:func:`merge_predictions` of predictions stored as boxes in an array of ``shape``."""
    out = np.zeros(shape, np.uint16)
    next_id = 1
    for couple in couples(masks):
        members = [masks[k] for k in couple.members]
        lo = tuple(min(m.lo[a] for m in members) for a in range(out.ndim))
        hi = tuple(max(m.hi[a] for m in members) for a in range(out.ndim))
        region = tuple(slice(a, b) for a, b in zip(lo, hi))
        count = np.zeros(tuple(b - a for a, b in zip(lo, hi)), np.uint8)
        for m in members:
            count[tuple(slice(a - o, b - o) for a, b, o in zip(m.lo, m.hi, lo))] += m.box
        vote = count >= (2 if couple.majority else 1)
        n = int(np.count_nonzero(vote))
        if n == 0:
            continue
        placed = out[region] > 0
        if np.count_nonzero(vote & placed) > MAX_PLACED_OVERLAP * n:
            continue
        out[region][vote & ~placed] = next_id
        next_id += 1
    return clean_instances(out, spacing_kji, min_piece_mm3)


def clean_instances(instances: np.ndarray, spacing_kji: Sequence[float], min_piece_mm3: float) -> np.ndarray:
    """Small pieces dropped, enclosed holes filled, ids renumbered 1..n top to bottom (axis 0 descending)."""
    out = np.zeros_like(instances)
    min_vox = min_piece_mm3 / float(np.prod(spacing_kji))
    objects = ndimage.find_objects(instances)
    centres = []
    for lab, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        m = instances[sl] == lab
        comp, n = ndimage.label(m)
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        keep = np.isin(comp, [i for i in range(1, n + 1) if sizes[i] >= min_vox])
        if not keep.any():
            continue
        keep = ndimage.binary_fill_holes(keep) & ((instances[sl] == 0) | m)
        centres.append((ndimage.center_of_mass(keep)[0] + sl[0].start, sl, keep))
    for new, (_, sl, keep) in enumerate(sorted(centres, key=lambda t: -t[0]), start=1):
        out[sl][keep & (out[sl] == 0)] = new
    return out
