"""Evaluate shapes at the physical centres of the output voxels, each inside its own box.

Why boxes: a full-spine scan at 1 mm has ~40 M voxels but a vertebra's process covers a
few thousand; evaluating each shape only inside the voxel box that its bounds map to
keeps a full spine within seconds. Coordinates in a shape's frame are affine in the
voxel index, ``u = A @ (i, j, k) + b``, built by broadcasting three 1-D ramps, so no
per-voxel matrix product and no resampling: labels are exact on every grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..geometry import Grid
from .shapes import Box, Capsule, Shape, rotation_between

F32 = np.float32
FAR = F32(1e6)  # signed distance of voxels no shape was evaluated at

Box3 = tuple[slice, slice, slice]  # numpy order (k, j, i)


@dataclass(frozen=True)
class Part:
    """A shape placed in a parent frame (``parent = rotation @ local + translation``)."""

    shape: Shape
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    subregion: int = 0


def place(shape: Shape, at: Sequence[float] = (0.0, 0.0, 0.0), rotation: np.ndarray | None = None, sub: int = 0):
    """A :class:`Part` at ``at`` (parent frame) with an optional rotation."""
    r = np.eye(3) if rotation is None else np.asarray(rotation, float)
    return Part(shape, r, np.asarray(at, float), int(sub))


def capsule_between(p0, p1, r0: float, r1: float, sub: int = 0) -> Part:
    """A (tapered) capsule from point ``p0`` to ``p1`` of the parent frame."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    v = p1 - p0
    return place(Capsule(float(np.linalg.norm(v)), r0, r1), p0, rotation_between(np.array([0, 0, 1.0]), v), sub)


def box_between(p0, p1, half_yz: tuple[float, float], radius: float, sub: int = 0, up=(0.0, 0.0, 1.0)) -> Part:
    """A rounded box whose local x runs from ``p0`` to ``p1``; ``half_yz`` are its half-sizes across.

    Local z is ``up`` made perpendicular to the box axis, local y completes the frame.
    """
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    v = p1 - p0
    length = float(np.linalg.norm(v))
    ex = v / length
    up = np.asarray(up, float)
    ez = up - np.dot(up, ex) * ex
    ez /= np.linalg.norm(ez)
    ey = np.cross(ez, ex)
    rot = np.stack([ex, ey, ez], axis=1)
    return place(Box((length / 2.0, *half_yz), radius), (p0 + p1) / 2.0, rot, sub)


def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], float)


class Raster:
    """Index <-> physical maps of the output grid, specialised for box-wise evaluation."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.size = np.asarray(grid.size, int)  # (i, j, k)
        self.matrix = grid.direction_matrix * np.asarray(grid.spacing)  # index -> mm (3x3)
        self.origin = np.asarray(grid.origin, float)
        self.inverse = np.linalg.inv(self.matrix)
        self.shape_kji = grid.shape_kji

    def box_of_points(self, points: np.ndarray, pad_mm: float) -> Box3 | None:
        """Smallest voxel box holding every point of ``points`` (N, 3 LPS) grown by ``pad_mm``; None if empty."""
        idx = (np.asarray(points, float) - self.origin) @ self.inverse.T
        pad = pad_mm / np.asarray(self.grid.spacing)
        lo = np.floor(idx.min(axis=0) - pad).astype(int)
        hi = np.ceil(idx.max(axis=0) + pad).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, self.size)
        if np.any(hi <= lo):
            return None
        return (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))

    def box_of_shape(self, shape: Shape, rotation: np.ndarray, translation: np.ndarray, pad_mm: float) -> Box3 | None:
        lo, hi = shape.bounds()
        world = _corners(lo, hi) @ np.asarray(rotation).T + translation
        return self.box_of_points(world, pad_mm)

    def coords(self, box: Box3, rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, ...]:
        """Coordinates of the voxel centres of ``box`` in the frame (rotation, translation).

        Returns three float32 arrays broadcastable to the box shape (k, j, i); terms with a
        zero coefficient are left out, so axis-aligned frames give cheap 1-D/2-D arrays.
        """
        a = np.asarray(rotation, float).T @ self.matrix
        b = np.asarray(rotation, float).T @ (self.origin - np.asarray(translation, float))
        ramps = (
            np.arange(box[2].start, box[2].stop, dtype=np.float64)[None, None, :],
            np.arange(box[1].start, box[1].stop, dtype=np.float64)[None, :, None],
            np.arange(box[0].start, box[0].stop, dtype=np.float64)[:, None, None],
        )
        out = []
        for row in range(3):
            comp: np.ndarray | None = None
            for col in range(3):
                coef = a[row, col]
                if abs(coef) < 1e-9:
                    continue
                term = (coef * ramps[col] + (b[row] if comp is None else 0.0)).astype(F32)
                comp = term if comp is None else comp + term
            if comp is None:
                comp = np.full((1, 1, 1), b[row], dtype=F32)
            out.append(comp)
        return tuple(out)

    def world_coords(self, box: Box3) -> tuple[np.ndarray, ...]:
        """LPS coordinates of the voxel centres of ``box`` (broadcastable float32 arrays)."""
        return self.coords(box, np.eye(3), np.zeros(3))


def group_box(raster: Raster, frame_axes: np.ndarray, frame_origin: np.ndarray, parts: Sequence[Part], pad_mm: float):
    """Voxel box holding every part of a group (None when the group misses the grid)."""
    pts = []
    for p in parts:
        lo, hi = p.shape.bounds()
        local = _corners(lo, hi) @ p.rotation.T + p.translation
        pts.append(local @ frame_axes.T + frame_origin)
    return raster.box_of_points(np.concatenate(pts), pad_mm)


def union_distance(
    raster: Raster,
    box: Box3,
    frame_axes: np.ndarray,
    frame_origin: np.ndarray,
    parts: Sequence[Part],
    pad_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance to the union of ``parts`` over ``box`` and which part is nearest/inside.

    Returns (D float32, P uint8) of the box shape; P is 1 + the index of the part with the
    smallest distance (0 where no part was evaluated). Each part is evaluated only in
    its own sub-box (its bounds grown by ``pad_mm``), elsewhere D stays ``FAR``.
    """
    shape = tuple(s.stop - s.start for s in box)
    dist = np.full(shape, FAR, dtype=F32)
    which = np.zeros(shape, dtype=np.uint8)
    for n, part in enumerate(parts):
        rot = frame_axes @ part.rotation
        trans = frame_origin + frame_axes @ part.translation
        sub = raster.box_of_shape(part.shape, rot, trans, pad_mm)
        if sub is None:
            continue
        sub = _intersect(sub, box)
        if sub is None:
            continue
        x, y, z = raster.coords(sub, rot, trans)
        d = part.shape.sdf(x, y, z)
        rel = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sub, box))
        dv = dist[rel]
        d = np.broadcast_to(d, dv.shape)
        better = d < dv
        np.copyto(dv, d, where=better)
        wv = which[rel]
        wv[better] = n + 1
    return dist, which


def _intersect(a: Box3, b: Box3) -> Box3 | None:
    out = []
    for sa, sb in zip(a, b):
        lo, hi = max(sa.start, sb.start), min(sa.stop, sb.stop)
        if hi <= lo:
            return None
        out.append(slice(lo, hi))
    return (out[0], out[1], out[2])


def blend_bone(
    image: np.ndarray,
    dist: np.ndarray,
    cortical_mm: float,
    cortical: float,
    cancellous: float,
    edge_mm: float,
    texture: np.ndarray | None = None,
) -> None:
    """Paint bone over ``image`` (a view of the box) in place, with partial-volume edges.

    Occupancy of the bone and of its cancellous core are ``clip(0.5 - d / edge)`` at the
    surface and at ``cortical_mm`` inside it; the image becomes
    ``(1 - f_bone) * image + (f_bone - f_core) * cortical + f_core * cancellous``.
    ``edge_mm`` -> 0 gives hard edges. ``texture`` (HU, the box's shape) is added to the
    cancellous value voxel by voxel (trabecular lattice).
    """
    inv = F32(1.0 / max(edge_mm, 1e-3))
    f_bone = np.clip(F32(0.5) - dist * inv, F32(0.0), F32(1.0))
    f_core = np.clip(F32(0.5) - (dist + F32(cortical_mm)) * inv, F32(0.0), F32(1.0))
    image += f_bone * (F32(cortical) - image)
    image += f_core * F32(cancellous - cortical)
    if texture is not None:
        image += f_core * texture


def blend_soft(image: np.ndarray, dist: np.ndarray, value: float, edge_mm: float) -> None:
    """Paint a homogeneous structure (cartilage) over ``image`` in place with a soft edge."""
    inv = F32(1.0 / max(edge_mm, 1e-3))
    f = np.clip(F32(0.5) - dist * inv, F32(0.0), F32(1.0))
    image += f * (F32(value) - image)
