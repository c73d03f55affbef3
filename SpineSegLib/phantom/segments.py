"""Spinal canal (CSF), spinal cord and intervertebral discs, evaluated in the vertebra frames.

The spine is cut into one segment per level by the bisector planes between neighbouring
body centres (normal = mean of the two tangents), so segments tile the spine without gaps
or overlaps whatever its curvature. Inside its segment a level owns:

- the canal: an ellipse behind the body whose size and position blend half-way towards
  the neighbour's at the segment border (so the tube is continuous);
- the cord inside it, ending at L1 (conus), CSF below;
- the half discs above and below its body: the column between the endplates with the
  mean cross-section of the two bodies, with a nucleus in its posterior centre.

These are labelled in the subregion map (100 disc, 60 cord, 61 canal); bone painted later
always wins over them.
"""

from __future__ import annotations

import numpy as np

from .anatomy import ATLAS, SACRUM, LevelSpec
from .curve import Spine
from .raster import Raster
from .tissues import SUB_CANAL, SUB_CORD, SUB_DISC, Tissue
from .vertebrae import POST_WALL, arch_geometry

F32 = np.float32


def canal_of(spec: LevelSpec) -> tuple[float, float, float]:
    """(half-width, half-depth, centre y) of the canal in the level's frame."""
    s = spec.scale
    if spec.kind == ATLAS:
        return 11.0 * s, 8.0 * s, 16.0 * s
    g = arch_geometry(spec)
    return g.ac, g.bc, g.yc


def _extent_up(spec: LevelSpec, above: LevelSpec | None) -> float:
    if above is None:
        return 22.0 * spec.scale
    if above.kind == ATLAS:
        return spec.body_h / 2.0 + above.disc_below / 2.0
    return spec.body_h / 2.0 + above.disc_below / 2.0


def _extent_down(spec: LevelSpec) -> float:
    if spec.kind == SACRUM:
        return 70.0 * spec.scale
    if spec.kind == ATLAS:
        return spec.disc_below / 2.0 + 2.0
    return spec.body_h / 2.0 + spec.disc_below / 2.0


def paint_segments(raster: Raster, tissue: np.ndarray, subregion: np.ndarray, levels: list[LevelSpec], spine: Spine):
    """Write canal, cord and discs of every level into the tissue and subregion maps (in place)."""
    frames = spine.frames
    n = len(levels)
    for i, spec in enumerate(levels):
        f = frames[i]
        above = levels[i - 1] if i > 0 else None
        below = levels[i + 1] if i + 1 < n else None
        ac, bc, yc = canal_of(spec)
        up, down = _extent_up(spec, above), _extent_down(spec)
        a, b, h = spec.body_w / 2, spec.body_d / 2, spec.body_h
        lo = np.array([-max(ac, a) - 3.0, -b - 3.0, -down - 6.0])
        hi = np.array([max(ac, a) + 3.0, yc + bc + 3.0, up + 6.0])
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        box = raster.box_of_points(f.to_world(corners), 1.0)
        if box is None:
            continue
        x, y, z = raster.coords(box, f.axes, f.origin)
        shape = tuple(sl.stop - sl.start for sl in box)
        x, y, z = (np.broadcast_to(c, shape) for c in (x, y, z))
        # Segment membership: below the upper bisector, above the lower one.
        member = np.ones(shape, dtype=bool)
        if i > 0:
            member &= _plane(x, y, z, f, frames[i - 1], frames[i]) < 0
        else:
            member &= z < F32(up)
        if below is not None:
            member &= _plane(x, y, z, f, frames[i], frames[i + 1]) >= 0
        else:
            member &= z > F32(-down)
        t_view = tissue[box]
        s_view = subregion[box]
        # Half discs: between this body's endplate and the bisector, mean section of the two bodies.
        wedge = F32(spine.wedges[i])
        for nb, sign in ((above, 1.0), (below, -1.0)):
            if nb is None or ATLAS in (nb.kind, spec.kind):
                continue
            if sign < 0 and spec.kind == SACRUM:
                continue
            ad = 0.5 * (a + nb.body_w / 2) * 0.97
            bd = 0.5 * (b + nb.body_d / 2) * 0.97
            rim = F32(0.44 * h - 1.0)  # below the endplate's central dip
            past_endplate = (z > rim + wedge * y) if sign > 0 else (z < -rim - wedge * y)
            u, v = x * F32(1.0 / ad), (y + F32(0.02 * b)) * F32(1.0 / bd)
            column = (u * u + v * v <= F32(1.0)) & (y <= F32(POST_WALL * bd + 1.0))
            disc = column & past_endplate & member
            t_view[disc] = Tissue.ANNULUS
            s_view[disc] = SUB_DISC
            un, vn = x * F32(1.0 / (0.5 * ad)), (y - F32(0.1 * bd)) * F32(1.0 / (0.45 * bd))
            nucleus = disc & (un * un + vn * vn <= F32(1.0))
            t_view[nucleus] = Tissue.NUCLEUS
        # Canal and cord, blended half-way to the neighbours' sizes at the segment borders.
        ca, cb, cy = _blend(z, spec, above, below, up, down, canal_of)
        cu, cv = x / ca, (y - cy) / cb
        canal = (cu * cu + cv * cv <= F32(1.0)) & member
        t_view[canal] = Tissue.CSF
        s_view[canal] = SUB_CANAL
        if spec.cord_w > 0 or (below is not None and below.cord_w > 0) or (above is not None and above.cord_w > 0):
            wa, wb, _ = _blend(z, spec, above, below, up, down, _cord_of)
            ok = (wa > F32(0.3)) & (wb > F32(0.3))
            wa = np.maximum(wa, F32(0.3))
            wb = np.maximum(wb, F32(0.3))
            ku, kv = x / wa, (y - cy + F32(0.1) * cb) / wb
            cord = (ku * ku + kv * kv <= F32(1.0)) & canal & ok
            t_view[cord] = Tissue.CORD
            s_view[cord] = SUB_CORD


def _cord_of(spec: LevelSpec) -> tuple[float, float, float]:
    return spec.cord_w / 2.0, spec.cord_d / 2.0, 0.0


def _blend(z, spec, above, below, up, down, fn):
    """Per-voxel (a, b, c) = fn(level), moving linearly to the mean with the neighbour at the borders."""
    own = np.asarray(fn(spec), float)
    ab = np.asarray(fn(above), float) if above is not None else own
    be = np.asarray(fn(below), float) if below is not None else own
    if spec.kind == SACRUM:
        # The sacral canal narrows towards S4.
        taper = np.clip(1.0 + z / F32(down), F32(0.45), F32(1.0))
    else:
        taper = F32(1.0)
    w_up = np.clip(z * F32(0.5 / max(up, 1e-3)), F32(0.0), F32(0.5))
    w_dn = np.clip(-z * F32(0.5 / max(down, 1e-3)), F32(0.0), F32(0.5))
    out = []
    for k in range(3):
        v = F32(own[k]) + w_up * F32(ab[k] - own[k]) + w_dn * F32(be[k] - own[k])
        out.append(v * taper if k < 2 else v)
    return out


def _plane(x, y, z, f, f_upper, f_lower):
    """Signed distance (in f's local coordinates) to the bisector plane between two level frames."""
    m = 0.5 * (f_upper.origin + f_lower.origin)
    nvec = f_upper.axes[:, 2] + f_lower.axes[:, 2]
    nvec /= np.linalg.norm(nvec)
    cl = f.axes.T @ nvec  # plane normal in the local frame
    c0 = float(np.dot(f.origin - m, nvec))
    return x * F32(cl[0]) + y * F32(cl[1]) + z * F32(cl[2]) + F32(c0)
