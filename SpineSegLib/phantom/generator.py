"""Assemble one synthetic spine scan: anatomy -> scan grid -> tissues -> bones -> labels -> noise.

Consistency rule (VerSe-like: a vertebra is annotated when its centre is in view):
a level is labelled in ``vertebra_labels`` and listed in both centroid sets exactly when its
body centre lies inside the image box (voxel edges). Bone of levels whose body centre is
outside stays in the image but is label 0 and subregion 0. The body centre is the centre of
mass of the level's body shape (subregion 49), computed on a fine lattice in the level's
frame, so it does not depend on the output grid; for the sacrum it is the S1 body's, for
the atlas (no body) that of its anterior arch and lateral masses, which lies between the
lateral masses, in the dens of C2. Whole-vertebra centroids are the centres of mass of the
labelled voxels (``SpineSegLib.labelmap.label_centroids``).

Random streams per seed: anatomy (subject, curve, body, ribs), scan (field of view,
orientation), appearance (tissue values) and noise are separate, so one seed is one patient
under every scan setting and modality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..centroids import Centroids
from ..geometry import Grid
from ..labelmap import label_centroids
from .anatomy import build_levels, sample_subject
from .config import PhantomConfig, PhantomConfigError
from .curve import Frame, build_spine, sample_curve_params
from .extras import Group, extra_groups, skull_sphere
from .fov import choose_grid
from .intensities import Appearance, finish, sample_appearance, trabecular_texture
from .raster import FAR, Part, Raster, blend_bone, blend_soft, group_box, union_distance
from .segments import paint_segments
from .softtissue import BodyModel, sample_habitus
from .vertebrae import centre_parts, level_parts

F32 = np.float32
_STREAM_ANATOMY, _STREAM_SCAN, _STREAM_LOOK, _STREAM_NOISE, _STREAM_TEXTURE = 1, 2, 3, 4, 5


@dataclass
class Phantom:
    """One synthetic scan with exactly consistent labels and centroids (see the module docstring).

    image: CT int16 HU or MR uint16; vertebra_labels: uint8 VerSe ids; subregion_labels:
    uint8 SPINEPS ids (41-49, 51, 26, 60, 61, 100); all three on one grid.
    body_centroids: vertebral-body centres (LPS mm), what VerSe ``*_ctd.json`` hold;
    vertebra_centroids: centres of mass of the labelled voxels; meta: JSON-serialisable.
    """

    image: sitk.Image
    vertebra_labels: sitk.Image
    subregion_labels: sitk.Image
    body_centroids: Centroids
    vertebra_centroids: Centroids
    meta: dict


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([stream, seed])


def centre_of_mass(parts: list[Part], step: float = 0.6) -> np.ndarray:
    """Centre of mass (local frame) of the union of ``parts``, on a lattice of ``step`` mm."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for p in parts:
        plo, phi = p.shape.bounds()
        c = np.array([[x, y, z] for x in (plo[0], phi[0]) for y in (plo[1], phi[1]) for z in (plo[2], phi[2])])
        w = c @ p.rotation.T + p.translation
        lo, hi = np.minimum(lo, w.min(axis=0)), np.maximum(hi, w.max(axis=0))
    axes = [np.arange(lo[a], hi[a] + step, step, dtype=F32) for a in range(3)]
    gx, gy, gz = axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]
    inside = np.zeros((len(axes[0]), len(axes[1]), len(axes[2])), dtype=bool)
    for p in parts:
        r = p.rotation.astype(F32)
        dx, dy, dz = gx - F32(p.translation[0]), gy - F32(p.translation[1]), gz - F32(p.translation[2])
        u = r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz
        v = r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz
        w = r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz
        inside |= p.shape.sdf(u, v, w) <= 0
    idx = np.nonzero(inside)
    if idx[0].size == 0:
        raise RuntimeError("a level's centre parts are empty")
    return np.array([axes[a][idx[a]].mean(dtype=np.float64) for a in range(3)])


def generate_phantom(seed: int, config: PhantomConfig | None = None) -> Phantom:
    """A synthetic spine scan for ``seed`` (deterministic: same seed + config -> identical arrays).

    Consistency rule: a level is in ``vertebra_labels`` and in both centroid sets exactly
    when its body centre lies inside the image box (voxel edges); bone of the other levels
    is in the image with label 0 and subregion 0. Body centres are centres of mass of the
    body shapes (the atlas: anterior arch + lateral masses, which puts its centre in the
    dens of C2; the sacrum: the S1 body), independent of the grid. Raises
    :class:`PhantomConfigError` for a bad seed or config, or a grid over 250 M voxels.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise PhantomConfigError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    cfg = config if config is not None else PhantomConfig()
    if not isinstance(cfg, PhantomConfig):
        raise PhantomConfigError(f"config must be a PhantomConfig, got {type(cfg).__name__}")

    # Anatomy (grid independent).
    rng = _rng(seed, _STREAM_ANATOMY)
    subject = sample_subject(rng, cfg.transitional, cfg.size_variation, cfg.t13_probability, cfg.l6_probability)
    levels = build_levels(subject, rng, cfg.size_variation)
    spine = build_spine(levels, sample_curve_params(rng, levels, cfg.scoliosis, cfg.curvature_variation))
    habitus = sample_habitus(rng, spine, levels)
    frames = spine.frames
    atlas = level_parts(levels[:1], spine, None)[0]
    atlas_centre = frames[0].to_world(centre_of_mass(centre_parts(levels[0], atlas)))
    parts = level_parts(levels, spine, atlas_centre)
    centres = [frames[i].to_world(centre_of_mass(centre_parts(lv, parts[i]))) for i, lv in enumerate(levels)]
    sk_centre, sk_radius, sk_thick, _ = skull_sphere(levels, spine)
    body = BodyModel(levels, spine, habitus, (sk_centre, sk_radius - sk_thick) if cfg.extras else None)
    groups = extra_groups(levels, spine, body, cfg.extras)

    # Scan.
    grid, fov_info = choose_grid(cfg, _rng(seed, _STREAM_SCAN), levels, spine, body)
    look = sample_appearance(_rng(seed, _STREAM_LOOK), cfg.modality, len(levels), cfg.noise, cfg.appearance)
    texture_rng = _rng(seed, _STREAM_TEXTURE)
    raster = Raster(grid)
    sp = np.asarray(grid.spacing)
    edge = float(np.prod(sp) ** (1.0 / 3.0)) if cfg.partial_volume else 1e-3
    pad = edge + float(sp.max())

    tissue = body.classify(raster)
    subregion = np.zeros(raster.shape_kji, dtype=np.uint8)
    paint_segments(raster, tissue, subregion, levels, spine)
    image = look.lut[tissue]
    del tissue
    if cfg.partial_volume:
        # Soft-tissue partial volume (bone edges are exact analytic blends, painted after).
        ndimage.gaussian_filter(image, sigma=0.45, output=image, truncate=2.5)

    labels = np.zeros(raster.shape_kji, dtype=np.uint8)
    best = np.full(raster.shape_kji, FAR, dtype=F32)
    in_view = [bool(grid.contains(c)[0]) for c in centres]
    for g in groups:
        _paint_group(raster, image, g, look, subject.cortical_mm, edge, pad)
    for i, lv in enumerate(levels):
        box = group_box(raster, frames[i].axes, frames[i].origin, parts[i], pad)
        if box is None:
            continue
        dist, which = union_distance(raster, box, frames[i].axes, frames[i].origin, parts[i], pad)
        texture = trabecular_texture(texture_rng, dist.shape, look, sp[::-1]) if look.texture_sd > 0 else None
        blend_bone(image[box], dist, subject.cortical_mm, look.cortical[i], look.cancellous[i], edge, texture)
        if in_view[i]:
            subs = np.array([0] + [p.subregion for p in parts[i]], dtype=np.uint8)
            own = (dist <= 0) & (dist < best[box])
            best[box][own] = dist[own]
            labels[box][own] = lv.label
            subregion[box][own] = subs[which[own]]
        else:
            # Bone of a level out of view is subregion 0 too (not disc/canal painted before it).
            subregion[box][(dist <= 0) & (best[box] == FAR)] = 0
    del best
    # A level in view always has voxels: on absurdly coarse grids mark the voxel at its centre.
    present = set(np.flatnonzero(np.bincount(labels.ravel(), minlength=256)).tolist())
    for i, lv in enumerate(levels):
        if in_view[i] and lv.label not in present:
            ijk = np.rint(grid.physical_to_index(centres[i])[0]).astype(int)
            labels[ijk[2], ijk[1], ijk[0]] = lv.label
            subregion[ijk[2], ijk[1], ijk[0]] = 26 if lv.label == 26 else 49
    pixels = finish(image, look, raster, _rng(seed, _STREAM_NOISE), frames[len(levels) // 2].origin)
    del image

    img = grid.apply(sitk.GetImageFromArray(pixels))
    vert = grid.apply(sitk.GetImageFromArray(labels))
    sub = grid.apply(sitk.GetImageFromArray(subregion))
    labelled = [lv.label for i, lv in enumerate(levels) if in_view[i]]
    body_centroids = Centroids({lv.label: centres[i] for i, lv in enumerate(levels) if in_view[i]})
    vertebra_centroids = label_centroids(vert, labelled)
    meta = _meta(seed, cfg, subject, levels, frames, centres, in_view, grid, fov_info, look, spine)
    return Phantom(img, vert, sub, body_centroids, vertebra_centroids, meta)


def _paint_group(raster: Raster, image: np.ndarray, g: Group, look: Appearance, cortical_mm, edge, pad) -> None:
    eye, zero = np.eye(3), np.zeros(3)
    box = group_box(raster, eye, zero, g.parts, pad)
    if box is None:
        return
    dist, _ = union_distance(raster, box, eye, zero, g.parts, pad)
    if g.material == "cartilage":
        blend_soft(image[box], dist, look.cartilage, edge)
    else:
        blend_bone(image[box], dist, cortical_mm, look.extra_cortical, look.extra_cancellous, edge)


def _meta(seed, cfg, subject, levels, frames: tuple[Frame, ...], centres, in_view, grid: Grid, fov, look, spine):
    return {
        "seed": seed,
        "config": cfg.as_dict(),
        "levels": [lv.name for lv in levels],
        "labels": [lv.label for lv in levels],
        "labelled": [lv.label for i, lv in enumerate(levels) if in_view[i]],
        "transitional": {"t13": subject.t13, "l6": subject.l6},
        "scoliosis": bool(spine.rotation.any()),
        "subject": {
            "scale": round(subject.scale, 4),
            "disc_scale": round(subject.disc_scale, 4),
            "cortical_mm": round(subject.cortical_mm, 3),
        },
        "frames": {
            lv.name: {
                "label": lv.label,
                "body_centre": [round(float(v), 4) for v in centres[i]],
                "origin": [round(float(v), 4) for v in frames[i].origin],
                "axes": [[round(float(v), 6) for v in row] for row in frames[i].axes.T],
                "in_view": in_view[i],
            }
            for i, lv in enumerate(levels)
        },
        "grid": {
            "size": list(grid.size),
            "spacing": list(grid.spacing),
            "origin": list(grid.origin),
            "direction": list(grid.direction),
        },
        "fov": fov,
        "appearance": look.as_dict(),
    }
