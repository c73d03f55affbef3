"""The spine centreline (sagittal curves, optional scoliosis) and one local frame per vertebra.

The centreline runs through the vertebral-body centres. It is built from a curvature
profile along the arc length s (0 at the atlas, growing caudally): cervical lordosis,
thoracic kyphosis, lumbar lordosis peaking low (as the L4-S1 discs carry most of it),
and the sacral kyphosis below S1, each a smooth bump with a random amplitude. Bodies are
placed at arc-length distances of half-height + disc + half-height, so disc heights and
centre distances stay exact however the spine bends. A scoliosis is a lateral bump
(C- or S-shaped) with vertebral axial rotation towards the convexity.

Frame of a vertebra (all in LPS mm): origin = body centre on the curve; z = the local
spine tangent pointing cranially; x = patient left projected perpendicular to z and
rotated by the axial rotation; y = z cross x, pointing posterior. So in every vertebra's
frame the spinous process points to +y and the body is around the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import LevelSpec
from .shapes import axis_rotation

DS = 0.5  # mm, step of the dense centreline


@dataclass(frozen=True)
class Frame:
    """A rigid local frame: ``world = origin + axes @ local`` (axes are the columns)."""

    origin: np.ndarray
    axes: np.ndarray

    def to_world(self, local: np.ndarray) -> np.ndarray:
        return self.origin + np.asarray(local, float) @ self.axes.T

    def to_local(self, world: np.ndarray) -> np.ndarray:
        return (np.asarray(world, float) - self.origin) @ self.axes


@dataclass(frozen=True)
class CurveParams:
    """Random shape of one spine (degrees and mm)."""

    cervical_lordosis: float
    thoracic_kyphosis: float
    lumbar_lordosis: float
    sacral_kyphosis: float
    sagittal_offset: float  # mm of C7 in front (-) / behind (+) the S1 centre: sagittal balance
    scoliosis: tuple[tuple[int, int, float], ...]  # (first level index, last level index, amplitude mm)
    axial_rotation_per_mm: float  # deg of axial rotation per mm of lateral deviation
    global_angles: tuple[float, float, float]  # pitch, roll, yaw of the whole patient (deg)
    offset: tuple[float, float, float]


def sample_curve_params(
    rng: np.random.Generator, levels: list[LevelSpec], scoliosis_probability: float, variation: float
) -> CurveParams:
    """Draw curvature amplitudes (scaled around typical values by ``variation``) and a scoliosis."""

    def around(mean: float, lo: float, hi: float) -> float:
        # Spread scaled by ``variation``, kept within twice the realistic range.
        v = mean + (rng.uniform(lo, hi) - mean) * variation
        return float(np.clip(v, mean - 2 * (mean - lo), mean + 2 * (hi - mean)))

    cerv = around(20.0, -5.0, 40.0)
    kyph = around(40.0, 22.0, 58.0)
    lord = around(50.0, 35.0, 65.0)
    sacr = around(55.0, 40.0, 70.0)
    sva = around(10.0, -20.0, 40.0)
    names = [lv.name for lv in levels]
    u_scol = rng.random()
    kind = rng.integers(0, 4)
    amps = rng.uniform(8.0, 30.0, size=2) * rng.choice([-1.0, 1.0])
    rot = rng.uniform(0.3, 0.8)
    curves: list[tuple[int, int, float]] = []
    if u_scol < scoliosis_probability:
        t1, t12 = names.index("T1"), max(i for i, n in enumerate(names) if n.startswith("T"))
        l5 = max(i for i, n in enumerate(names) if n.startswith("L"))
        if kind == 0:  # right thoracic
            curves.append((t1 + 2, t12, float(amps[0])))
        elif kind == 1:  # thoracolumbar
            curves.append((t12 - 5, l5 - 1, float(amps[0])))
        elif kind == 2:  # lumbar
            curves.append((t12, l5 + 1, float(amps[0])))
        else:  # double (S-shaped)
            curves.append((t1 + 2, t12 - 1, float(amps[0])))
            curves.append((t12 - 1, l5 + 1, -float(amps[1])))
    angles = tuple(float(a) for a in rng.uniform(-1.0, 1.0, size=3) * np.array([4.0, 3.0, 5.0]) * variation)
    offset = tuple(float(v) for v in rng.uniform(-40.0, 40.0, size=3))
    return CurveParams(cerv, kyph, lord, sacr, sva, tuple(curves), rot, angles, offset)  # type: ignore[arg-type]


def _bump(s: np.ndarray, a: float, b: float, pa: float = 1.0, pb: float = 1.0) -> np.ndarray:
    """Smooth non-negative bump ``u^pa (1-u)^pb`` on [a, b] with unit integral (peak at pa / (pa + pb))."""
    u = np.clip((s - a) / max(b - a, 1e-6), 0.0, 1.0)
    w = u**pa * (1.0 - u) ** pb
    w[(s <= a) | (s >= b)] = 0.0
    total = np.sum(w) * DS
    return w / total if total > 0 else w


@dataclass(frozen=True)
class Spine:
    """The centreline of one subject and the frames of its levels."""

    s: np.ndarray  # (N,) arc length, 0 at the atlas, increasing caudally
    points: np.ndarray  # (N, 3) LPS mm
    tangents: np.ndarray  # (N, 3) unit, pointing cranially
    rotation: np.ndarray  # (N,) axial rotation (rad)
    reference_x: np.ndarray  # patient left after the global rotation
    level_s: np.ndarray  # arc length of each level's body centre
    frames: tuple[Frame, ...]  # one per level
    wedges: np.ndarray  # per level endplate slope (tan of half the wedge angle; > 0 kyphotic)

    def frame_at(self, s: float) -> Frame:
        """Frame of the centreline at arc length ``s`` (for sacral segments, coccyx...)."""
        p = np.array([np.interp(s, self.s, self.points[:, a]) for a in range(3)])
        t = np.array([np.interp(s, self.s, self.tangents[:, a]) for a in range(3)])
        rot = float(np.interp(s, self.s, self.rotation))
        return Frame(p, _axes(t, self.reference_x, rot))

    def centre_at_z(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the centreline at world heights ``z`` (the curve is monotonic in z)."""
        zs = self.points[::-1, 2]
        return np.interp(z, zs, self.points[::-1, 0]), np.interp(z, zs, self.points[::-1, 1])


def _axes(tangent: np.ndarray, ref_x: np.ndarray, rotation: float) -> np.ndarray:
    ez = tangent / np.linalg.norm(tangent)
    ex = ref_x - np.dot(ref_x, ez) * ez
    ex /= np.linalg.norm(ex)
    ey = np.cross(ez, ex)
    c, s = np.cos(rotation), np.sin(rotation)
    ex2 = c * ex + s * ey
    ey2 = np.cross(ez, ex2)
    return np.stack([ex2, ey2, ez], axis=1)


def level_arc_positions(levels: list[LevelSpec]) -> np.ndarray:
    """Arc length of each body centre: half-height + disc + half-height apart (atlas: its own gap)."""
    s = np.zeros(len(levels))
    for i in range(1, len(levels)):
        prev, cur = levels[i - 1], levels[i]
        if prev.name == "C1":
            s[i] = s[i - 1] + prev.disc_below + cur.body_h / 2.0
        else:
            s[i] = s[i - 1] + prev.body_h / 2.0 + prev.disc_below + cur.body_h / 2.0
    return s


def build_spine(levels: list[LevelSpec], params: CurveParams) -> Spine:
    """Integrate the curvature profile into a 3-D centreline and place the level frames."""
    names = [lv.name for lv in levels]
    s_lev = level_arc_positions(levels)
    i_t1 = names.index("T1")
    i_l1 = names.index("L1")
    i_s = names.index("S")
    i_c2 = names.index("C2")
    s_min, s_max = -160.0, s_lev[i_s] + 190.0
    s = np.arange(s_min, s_max + DS, DS)
    deg = np.pi / 180.0
    kappa = (
        params.cervical_lordosis * deg * _bump(s, s_lev[i_c2] - 5.0, s_lev[i_t1])
        - params.thoracic_kyphosis * deg * _bump(s, s_lev[i_t1], s_lev[i_l1] - 0.5 * (s_lev[i_l1] - s_lev[i_l1 - 1]))
        # Lumbar lordosis grows caudally: most of it sits in the L4-L5 and L5-S1 discs.
        + params.lumbar_lordosis * deg * _bump(s, s_lev[i_l1] - 10.0, s_lev[i_s] + 8.0, 2.5, 0.6)
        - params.sacral_kyphosis * deg * _bump(s, s_lev[i_s], s_lev[i_s] + 120.0)
    )
    theta = np.cumsum(kappa) * DS
    theta -= np.interp(0.5 * (s_lev[i_l1 - 1] + s_lev[i_l1]), s, theta)
    y = np.cumsum(np.sin(theta)) * DS
    z = -np.cumsum(np.cos(theta)) * DS
    # Sagittal balance: turn the curve so that C7 sits ``sagittal_offset`` mm behind S1, as
    # in a standing or supine patient (the C7 plumb line falls near the sacrum).
    i_c7 = names.index("C7")
    c7 = np.array([np.interp(s_lev[i_c7], s, y), np.interp(s_lev[i_c7], s, z)])
    s1 = np.array([np.interp(s_lev[i_s], s, y), np.interp(s_lev[i_s], s, z)])
    chord = c7 - s1
    tilt = np.arctan2(chord[0], chord[1]) - np.arcsin(np.clip(params.sagittal_offset / np.linalg.norm(chord), -1, 1))
    theta = np.clip(theta + tilt, -85 * deg, 85 * deg)  # rotating the curve = shifting its angle
    y = np.cumsum(np.sin(theta)) * DS
    z = -np.cumsum(np.cos(theta)) * DS
    x = np.zeros_like(s)
    for first, last, amp in params.scoliosis:
        a = s_lev[max(first, 0)]
        b = s_lev[min(last, len(levels) - 1)]
        u = np.clip((s - a) / max(b - a, 1e-6), 0.0, 1.0)
        x += amp * np.sin(np.pi * u) ** 2
    pts = np.stack([x, y, z], axis=1)
    # Re-parametrise by true arc length (lateral deviation lengthens the curve) with s = 0 at the atlas.
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s_true = np.concatenate([[0.0], np.cumsum(seg)])
    s_true -= np.interp(0.0, s, s_true)
    pts = np.stack([np.interp(s, s_true, pts[:, a]) for a in range(3)], axis=1)
    lateral = np.interp(s, s_true, x)
    # Whole-patient rotation (pitch about x, roll about y, yaw about z) and translation.
    pitch, roll, yaw = (a * deg for a in params.global_angles)
    r_glob = axis_rotation("z", yaw) @ axis_rotation("y", roll) @ axis_rotation("x", pitch)
    centre = np.array([np.interp(s_lev[len(levels) // 2], s, pts[:, a]) for a in range(3)])
    pts = (pts - centre) @ r_glob.T + np.asarray(params.offset)
    tang = -np.gradient(pts, DS, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    rotation = params.axial_rotation_per_mm * deg * lateral
    ref_x = r_glob @ np.array([1.0, 0.0, 0.0])
    spine_wo_frames = Spine(s, pts, tang, rotation, ref_x, s_lev, (), np.zeros(len(levels)))
    frames = tuple(spine_wo_frames.frame_at(float(v)) for v in s_lev)
    # Bodies take part of the local bend as wedging (real thoracic kyphosis is mostly wedged bodies).
    k_lev = np.interp(s_lev, s, kappa)
    wedges = np.zeros(len(levels))
    for i, lv in enumerate(levels):
        if lv.kind in ("thoracic", "lumbar", "cervical"):
            omega = np.clip(-k_lev[i] * (lv.body_h + lv.disc_below) * 0.45, -0.17, 0.17)
            wedges[i] = np.tan(omega / 2.0)
    return Spine(s, pts, tang, rotation, ref_x, s_lev, frames, wedges)
