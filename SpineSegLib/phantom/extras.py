"""Bones that are in the image but never labelled: ribs, costal cartilage, sternum, skull base, pelvis, coccyx.

VerSe masks do not include ribs, pelvis or skull, so neither do ours; but they are the
strongest cues for identification (the first rib on T1, the last rib on T12/T13, the
sacrum between the iliac bones, the skull above C1), so the image must have them.

Ribs: head next to the upper body (1.2 mm joint space), tubercle in front of the
transverse-process tip, then around the rib cage (an ellipse hugging the chest wall,
passing behind the transverse-process tips), dropping anteriorly. The first rib is short
and strongly curved; the last two are floating ribs (62 % and 35 % of a full rib).
All parts are in world (LPS) coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import THORACIC, LevelSpec
from .curve import Frame, Spine
from .raster import Part, box_between, capsule_between
from .shapes import Box, Shell, axis_rotation
from .softtissue import BodyModel
from .vertebrae import _SACRAL_SEGMENTS, arch_geometry


@dataclass(frozen=True)
class Group:
    """Image-only structure: parts in world coordinates, painted as one union."""

    name: str
    parts: tuple[Part, ...]
    material: str = "bone"  # "bone" (cortex + marrow) or "cartilage" (homogeneous)


def skull_sphere(levels: list[LevelSpec], spine: Spine) -> tuple[np.ndarray, float, float, float]:
    """(centre, outer radius, thickness, foramen y) of the skull-base bowl above the atlas."""
    s = levels[0].scale
    f = spine.frames[0]
    radius, thick = 64.0 * s, 7.0 * s
    centre = f.to_world(np.array([0.0, -5.0 * s, 15.0 * s + radius]))
    return centre, radius, thick, 21.0 * s


def skull_group(levels: list[LevelSpec], spine: Spine) -> Group:
    centre, radius, thick, hole_y = skull_sphere(levels, spine)
    shell = Shell(radius, thick, z_top=-0.15 * radius, hole=16.0 * levels[0].scale, hole_y=hole_y)
    return Group("skull", (Part(shell, spine.frames[0].axes, centre),))


def rib_groups(levels: list[LevelSpec], spine: Spine, body: BodyModel, cartilage: bool = True) -> list[Group]:
    thoracic = [i for i, lv in enumerate(levels) if lv.kind == THORACIC]
    groups = []
    for k, i in enumerate(thoracic):
        spec, f = levels[i], spine.frames[i]
        for side in (1, -1):
            parts, end = _rib(spec, f, side, k, len(thoracic), body)
            groups.append(Group(f"rib {spec.name} {'L' if side > 0 else 'R'}", tuple(parts)))
            if cartilage and spec.rib >= 1.0 and k < 10:
                groups.append(Group(f"cartilage {spec.name}", tuple(_cartilage(end, side, k, spec, body)), "cartilage"))
    return groups


def _rib(spec: LevelSpec, f: Frame, side: int, k: int, n_thor: int, body: BodyModel):
    s = spec.scale
    a, b, h = spec.body_w / 2, spec.body_d / 2, spec.body_h
    g = arch_geometry(spec)
    r = (4.8 if spec.first_rib else 4.0) * s
    head = f.to_world(np.array([side * (0.89 * a + 0.8 * r + 1.2), 0.45 * b, 0.3 * h]))
    root_x = g.ac + 0.5 * (g.ao - g.ac)
    tip_y = g.yc - 0.2 * g.bc + (spec.tp_x - root_x) * np.tan(np.deg2rad(spec.tp_angle))
    tubercle = f.to_world(np.array([side * spec.tp_x, tip_y - (spec.tp_r * 1.05 + r + 1.2), g.z_front + 0.5 * s]))
    z0 = float(tubercle[2])
    if spec.first_rib:
        xc, ys = float(body.table.at(z0, "xs")), float(body.table.at(z0, "ys"))
        post = float(tubercle[1]) + 12.0 * s
        front = ys - (b + 52.0 * s)
        cage = lambda z: (xc, (post + front) / 2, spec.tp_x + 26.0 * s, (post - front) / 2)  # noqa: E731
        psi_end_full, drop = 0.85 * np.pi, 28.0 * s
    else:
        cage = body.rib_cage
        psi_end_full = 0.8 * np.pi
        from_last = n_thor - 1 - k
        drop = {0: 40.0, 1: 50.0, 2: 62.0}.get(from_last, {1: 45.0, 2: 60.0}.get(k, 75.0)) * s
    xc, yc, ar, br = cage(z0)
    psi0 = float(np.arcsin(np.clip((abs(tubercle[0] - xc) + 10.0 * s) / ar, 0.0, 0.95)))
    psi_end = psi0 + (psi_end_full - psi0) * spec.rib
    n = max(3, int(np.ceil((psi_end - psi0) * ar / 18.0)))
    pts = [head, tubercle]
    for psi in np.linspace(psi0, psi_end, n + 1):
        frac = (psi - psi0) / (np.pi - psi0)
        zz = z0 - drop * frac**1.15
        xc, yc, ar, br = cage(zz)
        pts.append(np.array([xc + side * ar * np.sin(psi), yc + br * np.cos(psi), zz]))
    radii = [0.75 * r, 0.85 * r] + list(np.linspace(r, 0.8 * r, n + 1))
    parts = [capsule_between(pts[j], pts[j + 1], radii[j], radii[j + 1]) for j in range(len(pts) - 1)]
    return parts, pts[-1]


def _cartilage(end: np.ndarray, side: int, k: int, spec: LevelSpec, body: BodyModel) -> list[Part]:
    """Costal cartilage from a rib's anterior end to the sternum (ribs 1-7) or upwards (8-10)."""
    s = spec.scale
    r = 3.6 * s
    if k < 7:
        z_st = float(end[2]) + (6.0 + 3.0 * k) * s
        xw, yw = body.anterior_wall(z_st)
        target = np.array([xw + side * 13.0 * s, yw + 5.0 * s, z_st])
    else:
        target = end + np.array([-side * 25.0 * s, -12.0 * s, 30.0 * s])
    mid = 0.5 * (end + target) + np.array([0.0, -4.0 * s, -4.0 * s])
    return [capsule_between(end, mid, r, r), capsule_between(mid, target, r, 0.9 * r)]


def sternum_group(levels: list[LevelSpec], spine: Spine, body: BodyModel) -> Group | None:
    names = [lv.name for lv in levels]
    if "T2" not in names or "T9" not in names:
        return None
    s = levels[0].scale
    z_top = float(spine.frames[names.index("T2")].origin[2]) + 12.0 * s
    z_bot = float(spine.frames[names.index("T9")].origin[2])
    zs = np.linspace(z_top, z_bot, 6)
    pts = []
    for z in zs:
        xw, yw = body.anterior_wall(float(z))
        pts.append(np.array([xw, yw + 6.0 * s, z]))
    parts = []
    for j in range(len(pts) - 1):
        width = (25.0 if j == 0 else 15.0) * s
        parts.append(box_between(pts[j], pts[j + 1], (width, 5.5 * s), 3.0 * s, up=(0.0, 1.0, 0.0)))
    return Group("sternum", tuple(parts))


def pelvis_groups(levels: list[LevelSpec], spine: Spine) -> list[Group]:
    """Iliac bones next to the sacrum: posterior ilium at the SI joint, wing, acetabular block."""
    spec = levels[-1]
    f = spine.frames[-1]
    s = spec.scale
    a = spec.body_w / 2
    groups = []
    for side in (1, -1):
        pieces = [
            (Box((8.0 * s, 14.0 * s, 30.0 * s), 4.0 * s), (side * (a + 40.0 * s), 6.0 * s, -8.0 * s), np.eye(3)),
            (
                Box((4.0 * s, 55.0 * s, 40.0 * s), 3.0 * s),
                (side * (a + 68.0 * s), -22.0 * s, 22.0 * s),
                axis_rotation("z", np.deg2rad(side * 35.0)) @ axis_rotation("y", np.deg2rad(side * 20.0)),
            ),
            (Box((14.0 * s, 18.0 * s, 30.0 * s), 5.0 * s), (side * (a + 62.0 * s), -25.0 * s, -72.0 * s), np.eye(3)),
        ]
        parts = tuple(Part(shape, f.axes @ rot, f.to_world(np.asarray(at))) for shape, at, rot in pieces)
        groups.append(Group(f"ilium {'L' if side > 0 else 'R'}", parts))
    return groups


def coccyx_group(levels: list[LevelSpec], spine: Spine) -> Group:
    spec = levels[-1]
    s = spec.scale
    pos = float(spine.level_s[-1]) + spec.body_h / 2 + sum(seg[2] * s - 1.0 for seg in _SACRAL_SEGMENTS)
    pts = [spine.frame_at(pos + d * s).origin for d in (0.0, 10.0, 19.0, 27.0)]
    radii = [4.5 * s, 3.8 * s, 3.0 * s, 2.4 * s]
    return Group("coccyx", tuple(capsule_between(pts[j], pts[j + 1], radii[j], radii[j + 1]) for j in range(3)))


def extra_groups(levels: list[LevelSpec], spine: Spine, body: BodyModel, with_extras: bool) -> list[Group]:
    """Image-only groups: ribs always (an identification cue); with ``with_extras`` also costal
    cartilage, sternum, skull base, iliac bones and coccyx."""
    groups = rib_groups(levels, spine, body, cartilage=with_extras)
    if with_extras:
        sternum = sternum_group(levels, spine, body)
        if sternum is not None:
            groups.append(sternum)
        groups.append(skull_group(levels, spine))
        groups += pelvis_groups(levels, spine)
        groups.append(coccyx_group(levels, spine))
    return groups
