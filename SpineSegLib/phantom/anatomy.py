"""Per-level dimensions of the phantom spine and their per-subject variation.

The reference table is a medium adult (mm), rounded from textbook morphometry and from the
bundled VerSe masks (Testing/data/real): body sizes grow smoothly from C3 to L5, centre
distances come out at 15-20 mm (cervical), 20-30 mm (thoracic) and 30-36 mm (lumbar), and
whole-vertebra extents match the real masks to ~10 %. The columns carry the cues a
network needs to tell the levels apart (long C7 spinous process, steep thoracic spinous
processes, lumbar hatchet-shaped processes and long transverse processes, ...).

VerSe ids: 1-7 C1-C7, 8-19 T1-T12, 28 T13, 20-24 L1-L5, 25 L6, 26 sacrum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labels import id_of

# Kinds of vertebrae (the shape builder has one recipe per kind).
ATLAS, AXIS, CERVICAL, THORACIC, LUMBAR, SACRUM = "atlas", "axis", "cervical", "thoracic", "lumbar", "sacrum"

_COLUMNS = (
    "body_w body_d body_h disc_below canal_w canal_d ped_w ped_h lam_t "
    "sp_len sp_angle sp_h sp_w tp_x tp_angle tp_r cord_w cord_d"
).split()

# fmt: off
# body_w/d/h: body width (LR), depth (AP), height; disc_below: gap to the next body (C1: atlas
# centre to the C2 body top); canal_w/d; ped_w/h: pedicle width/height; lam_t: lamina
# thickness; sp_len: spinous process length behind the laminae, sp_angle: its downward tilt
# (deg), sp_h/sp_w: its height/width; tp_x: transverse process tip distance from the
# midline, tp_angle: its backward tilt (deg), tp_r: its radius; cord_w/d: spinal cord size.
_REFERENCE: dict[str, tuple[float, ...]] = {
    #       bw    bd    bh   disc  cw    cd   pw    ph    lt   spl  spa  sph  spw   tpx  tpa  tpr  corw cord
    "C1":  (40.0, 16.0, 20.0, 11.5, 28.0, 30.0, 0.0, 0.0, 0.0, 6.0, 0.0, 8.0, 8.0, 38.0, 0.0, 4.0, 11.0, 8.0),
    "C2":  (17.0, 15.0, 17.0, 4.5, 24.0, 15.0, 6.0, 8.0, 6.0, 24.0, 20.0, 11.0, 9.0, 25.0, -10.0, 3.5, 11.0, 8.0),
    "C3":  (17.5, 16.0, 13.0, 5.0, 24.0, 14.0, 5.0, 7.0, 4.0, 16.0, 15.0, 7.0, 6.0, 27.0, -15.0, 3.5, 12.0, 8.0),
    "C4":  (18.5, 16.0, 13.0, 5.0, 25.0, 14.0, 5.0, 7.0, 4.0, 17.0, 15.0, 7.0, 6.0, 28.0, -15.0, 3.5, 12.5, 8.0),
    "C5":  (19.5, 17.0, 13.0, 5.2, 25.0, 14.0, 5.0, 7.0, 4.0, 18.0, 15.0, 7.0, 6.0, 29.0, -15.0, 3.5, 13.0, 8.0),
    "C6":  (21.5, 17.0, 13.5, 5.2, 25.0, 14.0, 5.5, 7.5, 4.5, 22.0, 15.0, 7.0, 6.0, 30.0, -15.0, 3.5, 12.5, 8.0),
    "C7":  (22.0, 17.0, 14.5, 4.5, 24.0, 14.0, 6.0, 8.0, 5.0, 38.0, 22.0, 9.0, 8.0, 35.0, -5.0, 4.0, 11.0, 7.5),
    "T1":  (27.3, 19.4, 15.5, 4.0, 21.0, 15.0, 7.0, 10.0, 6.0, 40.0, 35.0, 8.0, 8.0, 38.0, 15.0, 5.3, 9.5, 7.5),
    "T2":  (28.4, 21.6, 16.5, 4.0, 18.0, 15.0, 6.0, 11.0, 6.5, 42.0, 45.0, 8.0, 8.0, 36.0, 20.0, 5.3, 8.5, 7.0),
    "T3":  (28.4, 22.7, 17.0, 4.0, 17.0, 15.0, 5.5, 11.5, 6.5, 42.0, 50.0, 8.0, 8.0, 35.0, 25.0, 5.3, 8.0, 7.0),
    "T4":  (29.4, 23.8, 17.5, 4.2, 16.0, 15.0, 5.5, 12.0, 7.0, 42.0, 55.0, 8.0, 8.0, 34.0, 25.0, 5.1, 8.0, 6.5),
    "T5":  (30.5, 25.9, 18.0, 4.5, 16.0, 15.0, 5.5, 12.0, 7.0, 42.0, 60.0, 8.0, 8.0, 33.0, 28.0, 5.1, 8.0, 6.5),
    "T6":  (31.5, 27.0, 18.5, 4.8, 16.0, 15.0, 5.5, 12.5, 7.0, 42.0, 60.0, 8.0, 8.0, 32.0, 30.0, 5.1, 8.0, 6.5),
    "T7":  (32.6, 28.1, 19.0, 5.0, 16.0, 15.0, 6.0, 13.0, 7.0, 42.0, 60.0, 8.5, 8.0, 31.0, 30.0, 4.9, 8.0, 6.5),
    "T8":  (33.6, 29.2, 20.0, 5.2, 16.0, 15.0, 6.5, 13.5, 7.0, 40.0, 55.0, 9.0, 8.0, 30.0, 30.0, 4.9, 8.0, 6.5),
    "T9":  (35.5, 29.3, 20.5, 5.5, 17.0, 15.0, 7.0, 14.0, 7.5, 38.0, 45.0, 9.5, 8.5, 29.0, 30.0, 4.7, 8.0, 6.5),
    "T10": (37.5, 30.0, 21.5, 6.0, 17.0, 15.5, 7.5, 14.5, 7.5, 36.0, 40.0, 10.0, 8.5, 27.0, 30.0, 4.5, 8.5, 7.0),
    "T11": (39.0, 30.8, 22.5, 6.8, 18.0, 16.0, 8.0, 15.0, 8.0, 34.0, 30.0, 12.0, 9.0, 24.0, 25.0, 4.3, 9.0, 7.0),
    "T12": (40.5, 31.5, 23.5, 7.0, 20.0, 16.0, 8.5, 15.0, 8.0, 32.0, 18.0, 15.0, 9.0, 22.0, 20.0, 4.1, 9.0, 7.0),
    "L1":  (42.0, 32.0, 24.0, 8.0, 21.0, 16.0, 9.0, 15.0, 7.0, 31.0, 8.0, 17.0, 8.5, 37.0, 10.0, 3.5, 6.0, 5.0),
    "L2":  (44.0, 33.0, 25.0, 9.0, 22.0, 15.5, 9.5, 15.0, 7.5, 31.0, 5.0, 18.0, 9.0, 42.0, 8.0, 3.5, 0.0, 0.0),
    "L3":  (46.0, 34.0, 25.5, 9.5, 23.0, 15.0, 11.0, 15.0, 8.0, 31.0, 3.0, 19.0, 9.5, 47.0, 5.0, 3.5, 0.0, 0.0),
    "L4":  (48.0, 35.0, 25.5, 10.0, 24.0, 15.0, 13.0, 15.0, 8.0, 29.0, 3.0, 18.0, 9.5, 45.0, 5.0, 4.0, 0.0, 0.0),
    "L5":  (50.0, 35.0, 25.0, 9.5, 26.0, 15.0, 16.0, 14.0, 8.0, 26.0, 0.0, 15.0, 9.0, 44.0, 5.0, 5.0, 0.0, 0.0),
    "S":   (48.0, 33.0, 28.0, 0.0, 24.0, 12.0, 0.0, 0.0, 6.0, 0.0, 0.0, 0.0, 0.0, 56.0, 0.0, 0.0, 0.0, 0.0),
}
# fmt: on


@dataclass(frozen=True)
class LevelSpec:
    """Dimensions (mm, degrees) of one vertebra of one subject (see the table columns)."""

    label: int
    name: str
    kind: str
    body_w: float
    body_d: float
    body_h: float
    disc_below: float
    canal_w: float
    canal_d: float
    ped_w: float
    ped_h: float
    lam_t: float
    sp_len: float
    sp_angle: float
    sp_h: float
    sp_w: float
    tp_x: float
    tp_angle: float
    tp_r: float
    cord_w: float
    cord_d: float
    rib: float = 0.0  # rib length factor (0 = no rib; first rib and floating ribs are shorter)
    first_rib: bool = False
    bifid: bool = False  # cervical bifid spinous process
    prominens: bool = False  # C7: long, single spinous process with a knob
    scale: float = 1.0  # the subject's size factor (for the few dimensions not in the table)


@dataclass(frozen=True)
class Subject:
    """Whole-body factors of one random subject (drawn from the anatomy stream of the seed)."""

    scale: float  # overall vertebra size
    disc_scale: float  # disc height factor
    t13: bool
    l6: bool
    cortical_mm: float  # cortical shell thickness


def level_names(t13: bool, l6: bool) -> list[str]:
    """Level names in anatomical order, C1 to sacrum, with the transitional ones when present."""
    names = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)]
    if t13:
        names.append("T13")
    names += [f"L{i}" for i in range(1, 6)]
    if l6:
        names.append("L6")
    return [*names, "S"]


def _kind(name: str) -> str:
    if name == "C1":
        return ATLAS
    if name == "C2":
        return AXIS
    if name == "S":
        return SACRUM
    return {"C": CERVICAL, "T": THORACIC, "L": LUMBAR}[name[0]]


def _reference_row(name: str) -> np.ndarray:
    """Table row; T13 is the mean of T12 and L1 bodies with a T12 arch, L6 is an L5."""
    if name == "T13":
        t12, l1 = np.asarray(_REFERENCE["T12"]), np.asarray(_REFERENCE["L1"])
        row = t12.copy()
        row[:4] = (t12[:4] + l1[:4]) / 2.0  # body and disc between T12 and L1, arch and rib of a T12
        return row
    if name == "L6":
        row = np.asarray(_REFERENCE["L5"], float).copy()
        row[:3] *= 1.01
        return row
    return np.asarray(_REFERENCE[name], float)


def sample_subject(
    rng: np.random.Generator, transitional: str, size_variation: float, p_t13: float, p_l6: float
) -> Subject:
    """Draw the subject's size, disc height and transitional anatomy."""
    scale = 1.0 + float(np.clip(rng.normal(0.0, 0.06), -0.12, 0.12)) * size_variation
    disc_scale = 1.0 + float(np.clip(rng.normal(0.0, 0.1), -0.2, 0.15)) * size_variation
    u_t13, u_l6 = rng.random(), rng.random()
    t13 = transitional == "t13" or (transitional == "random" and u_t13 < p_t13)
    l6 = transitional == "l6" or (transitional == "random" and u_l6 < p_l6)
    cortical = float(rng.uniform(0.9, 1.5))
    return Subject(scale=scale, disc_scale=disc_scale, t13=t13, l6=l6, cortical_mm=cortical)


def build_levels(subject: Subject, rng: np.random.Generator, size_variation: float) -> list[LevelSpec]:
    """The subject's level table: reference rows x subject scale x small per-level jitter."""
    names = level_names(subject.t13, subject.l6)
    thoracic = [n for n in names if n.startswith("T")]
    lumbar_discs = [n for n in names if n.startswith("L")][-2:]
    degenerate = rng.random() < 0.3
    degen_factor = rng.uniform(0.55, 0.85, size=2)
    levels = []
    for name in names:
        row = _reference_row(name) * subject.scale
        vals = dict(zip(_COLUMNS, row.tolist()))
        jitter_body = 1.0 + np.clip(rng.normal(0.0, 0.02, size=3), -0.05, 0.05) * size_variation
        jitter_post = 1.0 + np.clip(rng.normal(0.0, 0.05, size=2), -0.1, 0.1) * size_variation
        vals["body_w"] *= jitter_body[0]
        vals["body_d"] *= jitter_body[1]
        vals["body_h"] *= jitter_body[2]
        vals["sp_len"] *= jitter_post[0]
        vals["tp_x"] *= jitter_post[1]
        # Angles are not sizes: take them from the unscaled row.
        vals["sp_angle"] = float(_reference_row(name)[_COLUMNS.index("sp_angle")] + rng.uniform(-5, 5) * size_variation)
        vals["tp_angle"] = float(_reference_row(name)[_COLUMNS.index("tp_angle")])
        if name != "C1":
            vals["disc_below"] *= subject.disc_scale
        if degenerate and name in lumbar_discs:
            vals["disc_below"] *= float(degen_factor[lumbar_discs.index(name)])
        rib = 0.0
        if name in thoracic:
            from_last = len(thoracic) - 1 - thoracic.index(name)
            rib = {0: 0.35, 1: 0.62, 2: 0.85}.get(from_last, 1.0)
        levels.append(
            LevelSpec(
                label=id_of(name) if name != "S" else 26,
                name=name,
                kind=_kind(name),
                rib=rib,
                first_rib=name == "T1",
                bifid=name in ("C2", "C3", "C4", "C5", "C6"),
                prominens=name == "C7",
                scale=subject.scale,
                **vals,
            )
        )
    return levels
