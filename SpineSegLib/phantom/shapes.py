"""Implicit bone shapes: signed distances (mm, negative inside) in a shape's own frame.

Why signed distances and not voxel masks: the generator evaluates every shape directly at
the physical centres of the output voxels, so labels have no resampling artefacts on any
grid (oblique, anisotropic), the cortical shell is the band ``-t < d <= 0`` and the
partial-volume edge of the image is ``clip(0.5 - d / width, 0, 1)``. Exact distances are
used where they are cheap (boxes, capsules); ellipses use the first-order estimate
``(q - 1) / |grad q|``, which is exact on the surface and good to a fraction of a mm in
the few-mm band that matters (shell and edge).

Every shape takes float32 coordinate arrays (any broadcastable shapes) and returns float32.
``bounds()`` is the shape's axis-aligned box in its own frame: nothing outside it is inside
the shape, which lets the rasteriser evaluate each shape only inside its own small box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32
_TINY = 1e-12


def _f(v: float) -> np.float32:
    return F32(v)


def ellipse_distance(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """Approximate signed distance to the ellipse (x/a)^2 + (y/b)^2 = 1 (negative inside).

    First-order estimate (q - 1) / |grad q| with q the normalised radius; at the centre it
    tends to -inf (deep inside), which is what the cortical-shell test needs.
    """
    ia, ib = _f(1.0 / a), _f(1.0 / b)
    xa = x * ia
    yb = y * ib
    q = np.sqrt(xa * xa + yb * yb)
    g = np.sqrt((xa * ia) ** 2 + (yb * ib) ** 2)
    return (q - _f(1.0)) * q / np.maximum(g, _f(_TINY))


def rounded_intersection(d1: np.ndarray, d2: np.ndarray, r: float) -> np.ndarray:
    """Distance to the intersection of two shapes with the edge rounded by radius ``r``."""
    r32 = _f(r)
    u = d1 + r32
    v = d2 + r32
    inside = np.minimum(np.maximum(u, v), _f(0.0))
    uo = np.maximum(u, _f(0.0))
    vo = np.maximum(v, _f(0.0))
    return inside + np.sqrt(uo * uo + vo * vo) - r32


class Shape:
    """Base class: a signed distance in the shape's frame and its bounding box there."""

    def sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Box(Shape):
    """Box with half-sizes ``half`` (x, y, z) and edges rounded by ``radius`` (exact distance)."""

    half: tuple[float, float, float]
    radius: float = 1.0

    def sdf(self, x, y, z):
        r = min(self.radius, *self.half)
        hx, hy, hz = (_f(h - r) for h in self.half)
        qx = np.abs(x) - hx
        qy = np.abs(y) - hy
        qz = np.abs(z) - hz
        zero = _f(0.0)
        ox = np.maximum(qx, zero)
        oy = np.maximum(qy, zero)
        oz = np.maximum(qz, zero)
        outside = np.sqrt(ox * ox + oy * oy + oz * oz)
        inside = np.minimum(np.maximum(np.maximum(qx, qy), qz), zero)
        return outside + inside - _f(r)

    def bounds(self):
        h = np.asarray(self.half, float)
        return -h, h


@dataclass(frozen=True)
class Capsule(Shape):
    """Segment from the origin to (0, 0, ``length``) swept by a radius going ``r0`` -> ``r1``.

    The tapered radius makes the distance approximate (exact for ``r0 == r1``); fine for
    the gentle tapers of processes, ribs and the dens.
    """

    length: float
    r0: float
    r1: float | None = None

    def sdf(self, x, y, z):
        r1 = self.r0 if self.r1 is None else self.r1
        length = _f(self.length)
        t = np.clip(z * _f(1.0 / max(self.length, _TINY)), _f(0.0), _f(1.0))
        dz = z - t * length
        return np.sqrt(x * x + y * y + dz * dz) - (_f(self.r0) + t * _f(r1 - self.r0))

    def bounds(self):
        r = max(self.r0, self.r0 if self.r1 is None else self.r1)
        return np.array([-r, -r, -r]), np.array([r, r, self.length + r])


@dataclass(frozen=True)
class Ellipsoid(Shape):
    """Ellipsoid with half-axes (a, b, c) (first-order distance)."""

    a: float
    b: float
    c: float

    def sdf(self, x, y, z):
        ia, ib, ic = _f(1.0 / self.a), _f(1.0 / self.b), _f(1.0 / self.c)
        xa, yb, zc = x * ia, y * ib, z * ic
        q = np.sqrt(xa * xa + yb * yb + zc * zc)
        g = np.sqrt((xa * ia) ** 2 + (yb * ib) ** 2 + (zc * ic) ** 2)
        return (q - _f(1.0)) * q / np.maximum(g, _f(_TINY))

    def bounds(self):
        h = np.array([self.a, self.b, self.c], float)
        return -h, h


@dataclass(frozen=True)
class VertebralBody(Shape):
    """Vertebral body: elliptic cylinder, flattened posterior wall, concave endplates, wedge.

    Cross-section: ellipse (a, b) cut by the posterior wall at ``y = post * b`` (the wall the
    spinal canal sits on). Endplates: ``z = +-(h/2 + wedge * y)`` (``wedge > 0`` = anterior
    shorter, the kyphotic wedge), each dipping by ``concavity`` towards the centre; the
    sides have a slight waist. Rim edges are rounded by ``radius``.
    """

    a: float
    b: float
    h: float
    wedge: float = 0.0
    concavity: float = 1.0
    radius: float = 2.0
    post: float = 0.85
    waist: float = 0.06

    def sdf(self, x, y, z):
        hz = _f(self.h / 2.0)
        # Waist: the body is a little narrower at mid-height than at the endplates.
        zn = z * _f(1.0 / max(hz, _TINY))
        shrink = _f(1.0) - _f(self.waist) * np.maximum(_f(0.0), _f(1.0) - zn * zn)
        xs = x / shrink
        ys = y / shrink
        d_ell = ellipse_distance(xs, ys, self.a, self.b)
        d_post = y - _f(self.post * self.b)
        d_xy = np.maximum(d_ell, d_post)
        q2 = np.minimum((xs * _f(1.0 / self.a)) ** 2 + (ys * _f(1.0 / self.b)) ** 2, _f(1.0))
        dip = _f(self.concavity) * (_f(1.0) - q2)
        top = hz + _f(self.wedge) * y - dip
        bottom = -hz - _f(self.wedge) * y + dip
        d_z = np.maximum(z - top, bottom - z)
        return rounded_intersection(d_xy, d_z, self.radius)

    def bounds(self):
        extra = abs(self.wedge) * self.b + 1.0
        return np.array([-self.a, -self.b, -self.h / 2 - extra]), np.array([self.a, self.b, self.h / 2 + extra])


@dataclass(frozen=True)
class NeuralArch(Shape):
    """The bony ring behind the body: pedicles in front, laminae behind, around the canal.

    Outer ellipse (ao, bo) minus the canal ellipse (ac, bc), both centred at (0, yc), cut in
    front at ``y = y_front`` (inside the body, so the pedicles join it). Vertically a slab
    whose centre drops by ``drop`` and whose half-height grows from ``hz_front``
    (pedicles) to ``hz_back`` (laminae) from the canal centre backwards: laminae overlap
    the next level like roof tiles, as in the thoracic spine.
    """

    ao: float
    bo: float
    ac: float
    bc: float
    yc: float
    y_front: float
    z_front: float
    hz_front: float
    hz_back: float
    drop: float

    def sdf(self, x, y, z):
        yy = y - _f(self.yc)
        d_out = ellipse_distance(x, yy, self.ao, self.bo)
        d_in = ellipse_distance(x, yy, self.ac, self.bc)
        w = np.clip(yy * _f(1.0 / self.bo), _f(0.0), _f(1.0))
        zc = _f(self.z_front) - _f(self.drop) * w
        hz = _f(self.hz_front) + _f(self.hz_back - self.hz_front) * w
        d_slab = np.abs(z - zc) - hz
        d = np.maximum(np.maximum(d_out, -d_in), _f(self.y_front) - y)
        return rounded_intersection(d, d_slab, 1.0)

    def bounds(self):
        zlo = self.z_front - self.drop - max(self.hz_front, self.hz_back)
        zhi = self.z_front + max(self.hz_front, self.hz_back)
        return np.array([-self.ao, self.y_front, zlo]), np.array([self.ao, self.yc + self.bo, zhi])


@dataclass(frozen=True)
class Difference(Shape):
    """``base`` with ``hole`` removed; the hole is placed by (rotation, translation) in base's frame."""

    base: Shape
    hole: Shape
    hole_rotation: tuple[tuple[float, float, float], ...] = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    hole_translation: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def sdf(self, x, y, z):
        r = np.asarray(self.hole_rotation, dtype=F32)
        t = np.asarray(self.hole_translation, dtype=F32)
        dx, dy, dz = x - t[0], y - t[1], z - t[2]
        # Hole frame coordinates = R^T (p - t).
        hx = r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz
        hy = r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz
        hz = r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz
        return np.maximum(self.base.sdf(x, y, z), -self.hole.sdf(hx, hy, hz))

    def bounds(self):
        return self.base.bounds()


@dataclass(frozen=True)
class Shell(Shape):
    """Lower part of a spherical shell (skull base) with a round hole at the bottom (foramen magnum).

    Sphere radius ``radius`` and wall ``thickness`` centred at the origin; only the part
    below ``z_top`` is kept; a vertical cylinder of radius ``hole`` around (0, hole_y) is cut out.
    """

    radius: float
    thickness: float
    z_top: float
    hole: float
    hole_y: float = 0.0

    def sdf(self, x, y, z):
        rho = np.sqrt(x * x + y * y + z * z)
        d_shell = np.abs(rho - _f(self.radius - self.thickness / 2)) - _f(self.thickness / 2)
        d_cut = z - _f(self.z_top)
        yy = y - _f(self.hole_y)
        d_hole = _f(self.hole) - np.sqrt(x * x + yy * yy)
        return np.maximum(np.maximum(d_shell, d_cut), d_hole)

    def bounds(self):
        r = self.radius
        return np.array([-r, -r, -r]), np.array([r, r, min(self.z_top, r)])


def rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector ``u`` onto unit vector ``v`` (Rodrigues)."""
    u = np.asarray(u, float) / np.linalg.norm(u)
    v = np.asarray(v, float) / np.linalg.norm(v)
    c = float(np.dot(u, v))
    w = np.cross(u, v)
    s = float(np.linalg.norm(w))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # 180 degrees: any axis perpendicular to u.
        axis = np.cross(u, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(u, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
    return np.eye(3) + k + k @ k * ((1 - c) / (s * s))


def axis_rotation(axis: str, angle_rad: float) -> np.ndarray:
    """Rotation matrix about the x, y or z axis (right-handed)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    raise ValueError(f"axis must be x, y or z, got {axis!r}")
