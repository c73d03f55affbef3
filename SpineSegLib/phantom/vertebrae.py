"""The parts of each vertebra, in its own frame (x left, y posterior, z cranial, mm).

One recipe per kind, with the cues that make levels identifiable:

- atlas (C1): no body; a ring of anterior arch, two lateral masses and a thin posterior
  arch with a small posterior tubercle; long transverse processes with a foramen.
- axis (C2): body plus the dens rising into the atlas ring, big bifid spinous process,
  broad superior facets under the atlas' lateral masses.
- cervical (C3-C7): small wide bodies, wide canal, transverse processes with a foramen
  transversarium, short bifid spinous processes; C7 has a long single one with a knob.
- thoracic: heart-shaped mid-size bodies, steep long spinous processes, laminae that
  overlap like roof tiles, coronal facets, transverse processes tilted back (rib tubercles).
- lumbar: big bodies, thick pedicles, hatchet-shaped horizontal spinous processes, long
  flat transverse processes, sagittal facets.
- sacrum: S1 body, four fused segments curving forward, alae, sacral canal, median crest.

Subregion ids (SPINEPS): 41 arch, 42 spinous, 43/44 transverse L/R, 45/46 superior
articular L/R, 47/48 inferior articular L/R, 49 body, 51 dens, 26 sacrum. "Left" is +x
(patient left in LPS).

Facet joints: the inferior articular processes of a level are built from the superior
ones of the level below (expressed in this level's frame), so the joint surfaces are
parallel with a ~1.2 mm joint space whatever the curvature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import ATLAS, AXIS, CERVICAL, LUMBAR, SACRUM, THORACIC, LevelSpec
from .curve import Frame, Spine
from .raster import Part, box_between, capsule_between, place
from .shapes import Box, Capsule, Difference, Ellipsoid, NeuralArch, VertebralBody, axis_rotation, rotation_between

# Subregion ids (SPINEPS).
ARCH, SPINOUS, TP_L, TP_R, BODY, DENS, SACRUM_SUB = 41, 42, 43, 44, 49, 51, 26
SAP_L, SAP_R, IAP_L, IAP_R = 45, 46, 47, 48
JOINT_GAP = 1.2  # mm of facet joint space
POST_WALL = 0.85  # posterior body wall at y = POST_WALL * b


@dataclass(frozen=True)
class ArchGeometry:
    """Where the canal and the neural arch sit in a vertebra's frame (mm)."""

    ac: float  # canal half-width
    bc: float  # canal half-depth
    yc: float  # canal centre (y)
    ao: float  # arch outer half-width
    bo: float  # arch outer half-depth
    z_front: float  # pedicle centre height
    hz_front: float  # pedicle half-height
    hz_back: float  # lamina half-height
    drop: float  # how far the laminae hang below the pedicles


def arch_geometry(spec: LevelSpec) -> ArchGeometry:
    b = spec.body_d / 2.0
    h = spec.body_h
    ac, bc = spec.canal_w / 2.0, spec.canal_d / 2.0
    yc = POST_WALL * b + bc + 0.3
    ped_w = spec.ped_w if spec.ped_w > 0 else 10.0 * spec.scale
    ped_h = spec.ped_h if spec.ped_h > 0 else 0.6 * h
    lam_h, drop = {CERVICAL: (0.85, 0.15), AXIS: (0.8, 0.15), THORACIC: (1.0, 0.35), LUMBAR: (0.8, 0.15)}.get(
        spec.kind, (0.8, 0.15)
    )
    z_front = h / 2.0 - ped_h / 2.0 - 0.08 * h
    return ArchGeometry(ac, bc, yc, ac + ped_w, bc + spec.lam_t, z_front, ped_h / 2.0, lam_h * h / 2.0, drop * h)


@dataclass(frozen=True)
class Facet:
    """A superior articular process (box in its vertebra's frame) and the joint type it makes."""

    style: str  # "cervical" | "thoracic" | "lumbar"
    side: int  # +1 left, -1 right
    centre: np.ndarray
    half: tuple[float, float, float]


def _facet_style(spec: LevelSpec) -> str:
    if spec.kind in (CERVICAL, AXIS):
        return "cervical"
    if spec.kind == THORACIC:
        return "thoracic"
    return "lumbar"


def superior_facets(spec: LevelSpec, disc_above: float, h_above: float) -> list[Facet]:
    """Superior articular processes of ``spec`` (both sides); their tops reach the level above."""
    g = arch_geometry(spec)
    s = spec.scale
    style = _facet_style(spec)
    h = spec.body_h
    z_joint = h / 2.0 + disc_above / 2.0
    ped_w = g.ao - g.ac
    out = []
    for side in (1, -1):
        if style == "cervical":
            x, y, hx, hy = side * (g.ac + 0.5 * ped_w + 1.5), g.yc + 1.0, 5.0 * s, 6.0 * s
            top = z_joint - JOINT_GAP / 2.0
        elif style == "thoracic":
            x, y, hx, hy = side * (g.ac + 0.8 * ped_w + 1.0 * s), g.yc + 0.1 * g.bc, 4.5 * s, 1.8 * s
            top = z_joint + 0.3 * h_above
        else:
            x, y, hx, hy = side * (g.ac + 0.35 * ped_w + 4.0 * s), g.yc + 0.45 * g.bc, 2.0 * s, 5.5 * s
            top = z_joint + 0.22 * h_above
        bottom = g.z_front - 1.0
        hz = max((top - bottom) / 2.0, 2.0)
        out.append(Facet(style, side, np.array([x, y, top - hz]), (hx, hy, hz)))
    return out


def _facet_parts(facets: list[Facet]) -> list[Part]:
    return [place(Box(f.half, 1.2), f.centre, sub=SAP_L if f.side > 0 else SAP_R) for f in facets]


def _inferior_parts(facets_below: list[Facet], frame: Frame, frame_below: Frame, h_up: float) -> list[Part]:
    """Inferior articular processes of a level, opposite the superior ones of the level below."""
    rot = frame.axes.T @ frame_below.axes  # below-frame -> this frame
    parts = []
    for f in facets_below:
        hx, hy, hz = f.half
        top = f.centre[2] + hz
        if f.style == "cervical":
            hz_i = 0.3 * h_up
            c = f.centre + np.array([0.0, 0.0, hz + JOINT_GAP + hz_i])
            half = (hx, hy, hz_i)
        else:
            lo, hi = top - 1.0 * hz, top + 0.5 * h_up
            hz_i = (hi - lo) / 2.0
            if f.style == "thoracic":
                hy_i = hy
                c = np.array([f.centre[0], f.centre[1] + hy + JOINT_GAP + hy_i, lo + hz_i])
                half = (hx, hy_i, hz_i)
            else:
                hx_i = hx
                c = np.array([f.centre[0] - f.side * (hx + JOINT_GAP + hx_i), f.centre[1] - 0.5, lo + hz_i])
                half = (hx_i, hy * 0.9, hz_i)
        centre = frame.to_local(frame_below.to_world(c))
        parts.append(place(Box(half, 1.2), centre, rot, sub=IAP_L if f.side > 0 else IAP_R))
    return parts


def _spinous(spec: LevelSpec, g: ArchGeometry) -> list[Part]:
    s = spec.scale
    phi = np.deg2rad(spec.sp_angle)
    direction = np.array([0.0, np.cos(phi), -np.sin(phi)])
    start = np.array([0.0, g.yc + g.bc + 0.5 * spec.lam_t, g.z_front - g.drop])
    length = spec.sp_len + spec.lam_t
    rot = axis_rotation("x", -phi)
    parts = []
    if spec.bifid:
        core = 0.72 * length
        parts.append(
            place(Box((spec.sp_w / 2, core / 2, spec.sp_h / 2), 1.5), start + direction * core / 2, rot, SPINOUS)
        )
        fork = start + direction * 0.6 * length
        for side in (1, -1):
            tip = start + direction * length + np.array([side * (spec.sp_w / 2 + 1.5 * s), 0.0, 0.0])
            parts.append(capsule_between(fork, tip, 2.4 * s, 2.0 * s, SPINOUS))
        return parts
    half = (spec.sp_w / 2, length / 2, spec.sp_h / 2)
    parts.append(place(Box(half, min(2.0, spec.sp_w / 2 - 0.5)), start + direction * length / 2, rot, SPINOUS))
    if spec.prominens or spec.kind == LUMBAR:
        knob = Ellipsoid(spec.sp_w / 2 + 1.0 * s, 4.0 * s, spec.sp_h / 2 + 0.5 * s)
        parts.append(place(knob, start + direction * (length - 3.0 * s), rot, SPINOUS))
    return parts


def _transverse(spec: LevelSpec, g: ArchGeometry) -> list[Part]:
    s = spec.scale
    a, b = spec.body_w / 2.0, spec.body_d / 2.0
    parts = []
    for side in (1, -1):
        sub = TP_L if side > 0 else TP_R
        if spec.kind in (CERVICAL, AXIS) and not spec.prominens:
            x0 = a - 1.0 * s
            length = max(spec.tp_x - x0, 6.0 * s)
            bar = Box((length / 2, 5.0 * s, g.hz_front + 0.5 * s), 1.5 * s)
            hole = Capsule(2 * g.hz_front + 6.0 * s, 2.6 * s)
            tp = Difference(bar, hole, hole_translation=(-length / 2 + 4.8 * s, 0.5 * s, -g.hz_front - 3.0 * s))
            rot = np.diag([float(side), float(side), 1.0])  # mirror x (and y, to stay a rotation) for the right
            parts.append(place(tp, (side * (x0 + length / 2), 0.55 * b, g.z_front), rot, sub))
            continue
        ang = np.deg2rad(spec.tp_angle)
        root = np.array([side * (g.ac + 0.5 * (g.ao - g.ac)), g.yc - 0.2 * g.bc, g.z_front])
        reach = spec.tp_x - abs(root[0])
        tip = np.array([side * spec.tp_x, root[1] + reach * np.tan(ang), g.z_front + 1.0 * s])
        if spec.kind == LUMBAR:
            stout = spec.name in ("L5", "L6")
            half_yz = (4.5 * s, 7.0 * s) if stout else (3.0 * s, 5.0 * s)
            root_l = root - np.array([side * 2.0 * s, 0.0, 1.0 * s])
            parts.append(box_between(root_l, tip, half_yz, 2.2 * s, sub))
        else:
            parts.append(capsule_between(root, tip, spec.tp_r, spec.tp_r * 0.85, sub))
            if spec.kind == THORACIC:
                parts.append(place(Ellipsoid(spec.tp_r, spec.tp_r * 1.05, spec.tp_r * 1.2), tip, sub=sub))
    return parts


def generic_parts(spec: LevelSpec, wedge: float) -> list[Part]:
    """Body, arch, spinous and transverse processes, superior facets of C3-L6."""
    a, b, h = spec.body_w / 2.0, spec.body_d / 2.0, spec.body_h
    g = arch_geometry(spec)
    body = VertebralBody(a, b, h, wedge=wedge, concavity=0.06 * h, radius=min(2.0, 0.12 * h), post=POST_WALL)
    arch = NeuralArch(g.ao, g.bo, g.ac, g.bc, g.yc, POST_WALL * b - 3.0, g.z_front, g.hz_front, g.hz_back, g.drop)
    return [place(body, sub=BODY), place(arch, sub=ARCH), *_spinous(spec, g), *_transverse(spec, g)]


# ----------------------------------------------------------------------------------------
# Atlas and axis

DENS_RADIUS = 4.6  # x scale, mm


def atlas_parts(spec: LevelSpec) -> list[Part]:
    """C1: lateral masses + anterior arch (sub 49, the "body" of the atlas), posterior arch, TPs."""
    s = spec.scale
    lx = (DENS_RADIUS + 2.5 + 6.0) * s
    ly = 1.0 * s
    parts = []
    for side in (1, -1):
        parts.append(place(Box((6.0 * s, 8.0 * s, 10.0 * s), 3.0 * s), (side * lx, ly, 0.0), sub=BODY))
    front = (DENS_RADIUS + 2.0 + 4.0) * s  # anterior arch centre-line distance in front of the dens axis
    parts += _arc(lx, ly, -(front + ly), 4.0 * s, BODY, n=6)
    parts.append(place(Ellipsoid(4.0 * s, 3.0 * s, 5.0 * s), (0.0, -front - 2.5 * s, 0.0), sub=BODY))
    back = 26.0 * s
    parts += _arc(lx + 2.0 * s, ly, back, 3.5 * s, ARCH, n=6)
    parts.append(place(Ellipsoid(4.0 * s, 3.5 * s, 5.0 * s), (0.0, ly + back + 3.0 * s, -1.0 * s), sub=SPINOUS))
    for side in (1, -1):
        sub = TP_L if side > 0 else TP_R
        root = np.array([side * (lx + 4.0 * s), ly, 0.0])
        tip = np.array([side * spec.tp_x, ly - 2.0 * s, -2.0 * s])
        v = tip - root
        bar = Capsule(float(np.linalg.norm(v)), 4.5 * s, 3.5 * s)
        rot = rotation_between(np.array([0, 0, 1.0]), v)
        hole_axis = rot.T @ np.array([0.0, 0.0, 1.0])  # the foramen runs vertically
        hole_rot = rotation_between(np.array([0, 0, 1.0]), hole_axis)
        hole_centre = np.array([0.0, 0.0, 5.0 * s]) - hole_axis * 8.0 * s
        tp = Difference(bar, Capsule(16.0 * s, 2.4 * s), tuple(map(tuple, hole_rot)), tuple(hole_centre))
        parts.append(place(tp, root, rot, sub))
    return parts


def _arc(half_width: float, y0: float, reach: float, radius: float, sub: int, n: int) -> list[Part]:
    """Half-elliptic tube from (-half_width, y0) through (0, y0 + reach) to (+half_width, y0)."""
    psi = np.linspace(-np.pi / 2, np.pi / 2, n + 1)
    pts = np.stack([half_width * np.sin(psi), y0 + reach * np.cos(psi), np.zeros_like(psi)], axis=1)
    return [capsule_between(pts[i], pts[i + 1], radius, radius, sub) for i in range(n)]


def axis_parts(spec: LevelSpec, frame: Frame, atlas_frame: Frame, atlas_centre: np.ndarray) -> list[Part]:
    """C2: body, dens aimed through the atlas centre, superior facets under the lateral masses."""
    s = spec.scale
    a, b, h = spec.body_w / 2.0, spec.body_d / 2.0, spec.body_h
    g = arch_geometry(spec)
    body = VertebralBody(a, b, h, concavity=0.3, radius=2.0, post=POST_WALL)
    parts = [place(body, sub=BODY)]
    centre_local = frame.to_local(atlas_centre)
    tip = frame.to_local(atlas_centre + 6.0 * s * atlas_frame.axes[:, 2])
    base = np.array([centre_local[0], centre_local[1], h / 2.0 - 3.0 * s])
    parts.append(capsule_between(base, tip, DENS_RADIUS * s, 0.85 * DENS_RADIUS * s, DENS))
    lx = (DENS_RADIUS + 2.5 + 6.0) * s
    for side in (1, -1):
        lm_bottom = frame.to_local(atlas_frame.to_world(np.array([side * lx, 1.0 * s, -10.0 * s])))
        top = lm_bottom[2] - 1.5
        bottom = h / 2.0 - 6.0 * s
        hz = max((top - bottom) / 2.0, 2.0)
        centre = np.array([lm_bottom[0], lm_bottom[1], top - hz])
        parts.append(place(Box((5.5 * s, 7.0 * s, hz), 2.0), centre, sub=SAP_L if side > 0 else SAP_R))
    arch = NeuralArch(g.ao, g.bo, g.ac, g.bc, g.yc, POST_WALL * b - 3.0, g.z_front, g.hz_front, g.hz_back, g.drop)
    parts.append(place(arch, sub=ARCH))
    parts += _spinous(spec, g)
    parts += _transverse(spec, g)
    return parts


# ----------------------------------------------------------------------------------------
# Sacrum

_SACRAL_SEGMENTS = ((0.78, 0.80, 22.0), (0.60, 0.68, 19.0), (0.45, 0.58, 16.0), (0.32, 0.50, 13.0))


def sacrum_parts(spec: LevelSpec, spine: Spine, s_centre: float, frame: Frame, disc_above: float, h_above: float):
    """S1 body (the sacrum's centre part, first in the list), S2-S5, alae, canal roof, crest, facets."""
    s = spec.scale
    a, b, h = spec.body_w / 2.0, spec.body_d / 2.0, spec.body_h
    parts = [place(VertebralBody(a, b, h, concavity=0.8, radius=2.5, post=POST_WALL), sub=SACRUM_SUB)]
    canal_w, canal_d = spec.canal_w, spec.canal_d
    pos = s_centre + h / 2.0
    seg_frames = [(frame, a, b, h, canal_w, canal_d)]
    for fw, fd, length in _SACRAL_SEGMENTS:
        seg_len = length * s
        centre_s = pos + seg_len / 2.0 - 1.0
        pos += seg_len - 1.0
        f = spine.frame_at(centre_s)
        rot = frame.axes.T @ f.axes
        body = VertebralBody(a * fw, b * fd, seg_len + 2.0, concavity=0.0, radius=2.0, post=POST_WALL)
        parts.append(place(body, frame.to_local(f.origin), rot, SACRUM_SUB))
        seg_frames.append((f, a * fw, b * fd, seg_len, canal_w * fw, canal_d * fd))
    for f, _, sb, sh, cw, cd in seg_frames:
        rot = frame.axes.T @ f.axes
        y_canal_back = POST_WALL * sb + cd + 0.3
        pieces = [
            (Box((cw / 2 + 6.0 * s, 3.0 * s, sh / 2 + 1.0), 2.0), (0.0, y_canal_back + 3.0 * s, 0.0)),
            (Box((2.5 * s, 4.0 * s, max(sh / 2 - 2.0, 2.0)), 1.5), (0.0, y_canal_back + 8.0 * s, 0.0)),
        ]
        for side in (1, -1):
            wall = Box((3.5 * s, cd / 2 + 2.0, sh / 2), 1.5)
            pieces.append((wall, (side * (cw / 2 + 3.0 * s), POST_WALL * sb + cd / 2, 0.0)))
        for shape, at in pieces:
            parts.append(place(shape, frame.to_local(f.to_world(np.asarray(at, float))), rot, SACRUM_SUB))
    for side in (1, -1):
        ala = Box((17.0 * s, 13.0 * s, 15.0 * s), 5.0 * s)
        tilt = axis_rotation("y", np.deg2rad(side * 12.0))
        parts.append(place(ala, (side * (a + 12.0 * s), 3.0 * s, -4.0 * s), tilt, SACRUM_SUB))
        f1 = seg_frames[1][0]
        mass = Box((12.0 * s, 11.0 * s, 14.0 * s), 4.0 * s)
        at = frame.to_local(f1.to_world(np.array([side * (0.78 * a + 9.0 * s), 2.0 * s, -2.0 * s])))
        parts.append(place(mass, at, frame.axes.T @ f1.axes, SACRUM_SUB))
    for facet in superior_facets(spec, disc_above, h_above):
        parts.append(place(Box(facet.half, 1.2), facet.centre, sub=SACRUM_SUB))
    return parts


# ----------------------------------------------------------------------------------------


def level_parts(levels: list[LevelSpec], spine: Spine, atlas_centre: np.ndarray | None) -> list[list[Part]]:
    """Parts of every level, in the level's frame (the axis needs the atlas centre in LPS)."""
    out: list[list[Part]] = []
    frames = spine.frames
    for i, spec in enumerate(levels):
        above = levels[i - 1] if i > 0 else None
        disc_above = above.disc_below if above is not None and above.kind != ATLAS else 0.0
        h_above = above.body_h if above is not None else 0.0
        if spec.kind == ATLAS:
            parts = atlas_parts(spec)
        elif spec.kind == AXIS:
            if atlas_centre is None:
                raise ValueError("the axis needs the atlas centre")
            parts = axis_parts(spec, frames[i], frames[i - 1], atlas_centre)
        elif spec.kind == SACRUM:
            parts = sacrum_parts(spec, spine, float(spine.level_s[i]), frames[i], disc_above, h_above)
        else:
            parts = generic_parts(spec, float(spine.wedges[i])) + _facet_parts(
                superior_facets(spec, disc_above, h_above)
            )
        if spec.kind not in (ATLAS, SACRUM) and i + 1 < len(levels):
            below = levels[i + 1]
            facets = superior_facets(below, spec.disc_below, spec.body_h)
            parts += _inferior_parts(facets, frames[i], frames[i + 1], spec.body_h)
        out.append(parts)
    return out


def centre_parts(spec: LevelSpec, parts: list[Part]) -> list[Part]:
    """The parts whose centre of mass is the level's "body centre".

    Body (49) for C2-L6, the S1 body for the sacrum, and for the atlas (no body) the
    anterior arch + lateral masses, which are labelled 49 too: their centre lies between
    the lateral masses, in the dens of C2.
    """
    if spec.kind == SACRUM:
        return parts[:1]
    return [p for p in parts if p.subregion == BODY]
