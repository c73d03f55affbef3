"""Tests of SpineSegLib.geometry: grids, point maps and resampling, cross-checked against SimpleITK.

Every image here is built with a known geometry (oblique, anisotropic, non-zero origin) and
known content, so that each assertion compares a result with an independent computation:
SimpleITK's own point transforms and resampling, an analytic function of the physical
position, or a brute-force lookup through the original image.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from SpineSegLib import geometry as G
from SpineSegLib.geometry import Grid

ANISO = (0.7, 1.3, 2.5)
ORIGIN = (-112.25, 37.5, -803.0)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def random_rotation(seed: int) -> np.ndarray:
    """A random proper rotation (det +1) that is far from axis-aligned."""
    rng = np.random.default_rng(seed)
    while True:
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] *= -1
        if np.abs(q).max() < 0.95:  # truly oblique: no axis within ~18 degrees of an LPS axis
            return q


def direction_of(code: str) -> tuple[float, ...]:
    return tuple(sitk.DICOMOrientImageFilter.GetDirectionCosinesFromOrientation(code))


OBLIQUE = tuple(random_rotation(7).ravel().tolist())
DIRECTIONS = {"LPS": IDENTITY, "PIR": direction_of("PIR"), "RAS": direction_of("RAS"), "oblique": OBLIQUE}


def image_from_array(arr_kji: np.ndarray, spacing, origin, direction) -> sitk.Image:
    img = sitk.GetImageFromArray(arr_kji)
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in origin])
    img.SetDirection([float(d) for d in direction])
    return img


def all_indices(size) -> np.ndarray:
    """(N, 3) integer (i, j, k) indices in the ravel order of the [k, j, i] numpy array."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    return np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)


def voxel_points(image: sitk.Image) -> np.ndarray:
    """(N, 3) LPS centres of all voxels, in ravel order, computed by SimpleITK itself."""
    return np.array(
        [image.TransformIndexToPhysicalPoint([int(v) for v in idx]) for idx in all_indices(image.GetSize())]
    )


def random_image(size, spacing, origin, direction, seed=0, dtype=np.int16) -> sitk.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(-1000, 2000, size=tuple(size[::-1])).astype(dtype)
    return image_from_array(arr, spacing, origin, direction)


# ----------------------------------------------------------------------------------------
# Point maps


@pytest.mark.parametrize("dname", list(DIRECTIONS))
def test_point_maps_agree_with_simpleitk(dname):
    img = sitk.Image([17, 11, 9], sitk.sitkFloat32)
    img.SetSpacing(ANISO)
    img.SetOrigin(ORIGIN)
    img.SetDirection(DIRECTIONS[dname])
    grid = Grid.of(img)
    rng = np.random.default_rng(1)
    idx = rng.uniform(-3.0, 20.0, size=(60, 3))

    expected_pts = np.array([img.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in idx])
    np.testing.assert_allclose(grid.index_to_physical(idx), expected_pts, rtol=0, atol=1e-9)
    np.testing.assert_allclose(G.index_to_physical(img, idx), expected_pts, rtol=0, atol=1e-9)

    pts = rng.uniform(-900.0, 900.0, size=(60, 3))
    expected_idx = np.array([img.TransformPhysicalPointToContinuousIndex(p.tolist()) for p in pts])
    np.testing.assert_allclose(grid.physical_to_index(pts), expected_idx, rtol=0, atol=1e-9)
    np.testing.assert_allclose(G.physical_to_index(img, pts), expected_idx, rtol=0, atol=1e-9)

    # Round trips in both directions.
    np.testing.assert_allclose(grid.physical_to_index(grid.index_to_physical(idx)), idx, rtol=0, atol=1e-9)
    np.testing.assert_allclose(grid.index_to_physical(grid.physical_to_index(pts)), pts, rtol=0, atol=1e-9)

    # A single point comes back as a (1, 3) array; the 4x4 matrix maps homogeneous indices.
    assert grid.index_to_physical([1.0, 2.0, 3.0]).shape == (1, 3)
    homog = np.c_[idx, np.ones(len(idx))] @ grid.index_to_physical_matrix.T
    np.testing.assert_allclose(homog[:, :3], expected_pts, rtol=0, atol=1e-9)


def test_grid_of_and_apply_round_trip():
    img = sitk.Image([17, 11, 9], sitk.sitkInt16)
    img.SetSpacing(ANISO)
    img.SetOrigin(ORIGIN)
    img.SetDirection(OBLIQUE)
    grid = Grid.of(img)
    assert grid.size == (17, 11, 9)
    assert grid.shape_kji == sitk.GetArrayViewFromImage(img).shape

    other = grid.apply(sitk.Image([17, 11, 9], sitk.sitkFloat32))
    assert other.GetSpacing() == img.GetSpacing()
    assert other.GetOrigin() == img.GetOrigin()
    assert other.GetDirection() == img.GetDirection()
    assert Grid.of(other) == grid
    assert grid.same_as(Grid.of(other))

    empty = grid.empty_image(sitk.sitkUInt16)
    assert Grid.of(empty) == grid
    assert empty.GetPixelID() == sitk.sitkUInt16

    with pytest.raises(ValueError, match="does not match grid size"):
        grid.apply(sitk.Image([17, 11, 8], sitk.sitkFloat32))

    moved = Grid(grid.size, grid.spacing, tuple(np.add(grid.origin, [0, 0, 1e-3]).tolist()), grid.direction)
    assert not grid.same_as(moved, tol=1e-4)
    assert grid.same_as(moved, tol=1e-2)
    assert not grid.same_as(Grid((17, 11, 10), grid.spacing, grid.origin, grid.direction))


@pytest.mark.parametrize("dname", ["LPS", "PIR", "oblique"])
def test_centered_grid(dname):
    center = np.array([12.5, -40.25, 311.0])
    size, spacing = (8, 5, 6), (0.7, 1.3, 2.5)
    grid = Grid.centered(center, size, spacing, DIRECTIONS[dname])
    img = grid.empty_image()
    # The requested point is the centre of the index box, as SimpleITK sees it.
    middle = (np.asarray(size) - 1) / 2.0
    np.testing.assert_allclose(img.TransformContinuousIndexToPhysicalPoint(middle.tolist()), center, atol=1e-9)
    np.testing.assert_allclose(grid.center, center, atol=1e-9)
    np.testing.assert_allclose(grid.physical_to_index(center)[0], middle, atol=1e-9)

    # The box: corners are centre +- half the extent along each (signed) axis.
    d = np.asarray(DIRECTIONS[dname]).reshape(3, 3)
    half = np.asarray(size) * np.asarray(spacing) / 2.0
    expected = np.array([center + d @ (np.array(s) * half) for s in itertools.product((-1, 1), repeat=3)])
    np.testing.assert_allclose(np.sort(grid.corners(), axis=0), np.sort(expected, axis=0), atol=1e-9)
    # Origin = first voxel centre, half a voxel inside the box corner.
    np.testing.assert_allclose(grid.origin, center - d @ (half - np.asarray(spacing) / 2.0), atol=1e-9)


def test_centered_grid_identity_box():
    grid = Grid.centered((10.0, 20.0, 30.0), (4, 6, 10), (1.0, 2.0, 0.5))
    corners = grid.corners()
    np.testing.assert_allclose(corners.min(axis=0), [8.0, 14.0, 27.5], atol=1e-12)
    np.testing.assert_allclose(corners.max(axis=0), [12.0, 26.0, 32.5], atol=1e-12)
    np.testing.assert_allclose(grid.origin, [8.5, 15.0, 27.75], atol=1e-12)


@pytest.mark.parametrize("dname", ["LPS", "oblique"])
def test_contains_at_box_edges(dname):
    grid = Grid((10, 6, 4), ANISO, ORIGIN, DIRECTIONS[dname])
    size = np.asarray(grid.size, float)
    eps = 1e-3
    # Faces of the box (index -0.5 and size - 0.5) are inside; a hair beyond is outside.
    for axis in range(3):
        for edge, outward in ((-0.5, -1.0), (size[axis] - 0.5, 1.0)):
            idx = (size - 1) / 2.0
            idx[axis] = edge
            on_face = grid.index_to_physical(idx)
            idx[axis] = edge + outward * eps
            beyond = grid.index_to_physical(idx)
            idx[axis] = edge - outward * eps
            within = grid.index_to_physical(idx)
            assert grid.contains(on_face)[0], (axis, edge)
            assert grid.contains(within)[0], (axis, edge)
            assert not grid.contains(beyond)[0], (axis, edge)
    # All eight corners are inside; points a margin in are inside only without the margin.
    assert grid.contains(grid.corners()).all()
    assert not grid.contains(grid.corners(), margin_vox=0.25).any()
    assert grid.contains(grid.center, margin_vox=1.5)[0]
    assert not grid.contains(grid.center, margin_vox=2.5)[0]  # k has 4 voxels: centre is 2 from the edge


def test_orientation_code_and_is_oblique():
    for code in ("LPS", "RAS", "PIR", "ASL"):
        img = sitk.Image([3, 3, 3], sitk.sitkUInt8)
        img.SetDirection(direction_of(code))
        assert G.orientation_code(img) == code
        assert G.orientation_code(img.GetDirection()) == code
        assert not G.is_oblique(img)
    img = sitk.Image([3, 3, 3], sitk.sitkUInt8)
    img.SetDirection(OBLIQUE)
    assert G.is_oblique(img)


# ----------------------------------------------------------------------------------------
# Reorientation


@pytest.mark.parametrize("source", ["LPS", "PIR", "RAS", "oblique"])
@pytest.mark.parametrize("target", ["LPS", "RAS", "PIR", "SAL"])
def test_reorient_keeps_every_voxel(source, target):
    img = random_image((7, 5, 4), ANISO, ORIGIN, DIRECTIONS[source], seed=3)
    out = G.reorient(img, target)
    assert sorted(out.GetSize()) == sorted(img.GetSize())
    if source != "oblique":
        assert G.orientation_code(out) == target
    if target == "LPS" and source != "oblique":
        np.testing.assert_allclose(out.GetDirection(), IDENTITY, atol=1e-12)

    # For every voxel of the result, its physical centre (by SimpleITK) is the centre of a
    # voxel of the original image with the same value.
    pts = voxel_points(out)
    idx = np.array([img.TransformPhysicalPointToContinuousIndex(p.tolist()) for p in pts])
    np.testing.assert_allclose(idx, np.round(idx), atol=1e-6)
    idx = np.round(idx).astype(int)
    assert (idx >= 0).all() and (idx < np.asarray(img.GetSize())).all()
    src = sitk.GetArrayFromImage(img)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out).ravel(), src[idx[:, 2], idx[:, 1], idx[:, 0]])
    # Each original voxel is used exactly once (a permutation, no interpolation).
    assert len({tuple(v) for v in idx}) == src.size
    # Spacing is the original's, permuted.
    assert sorted(out.GetSpacing()) == sorted(img.GetSpacing())


# ----------------------------------------------------------------------------------------
# Resampling to a spacing


def linear_field(points: np.ndarray) -> np.ndarray:
    return 3.0 * points[:, 0] - 2.0 * points[:, 1] + 0.5 * points[:, 2] + 7.0


def test_resample_to_spacing_keeps_box_and_is_linear_for_images():
    size = (20, 10, 8)  # extents 14, 13, 20 mm: whole multiples of 1 mm
    img = sitk.Image(list(size), sitk.sitkFloat64)
    img.SetSpacing(ANISO)
    img.SetOrigin(ORIGIN)
    img.SetDirection(OBLIQUE)
    arr = linear_field(voxel_points(img)).reshape(size[::-1])
    img = image_from_array(arr, ANISO, ORIGIN, OBLIQUE)

    out = G.resample_to_spacing(img, 1.0)
    g_in, g_out = Grid.of(img), Grid.of(out)
    assert g_out.size == (14, 13, 20)
    assert g_out.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(g_out.direction, g_in.direction, atol=1e-12)
    np.testing.assert_allclose(g_out.corners(), g_in.corners(), atol=1e-9)
    np.testing.assert_allclose(g_out.center, g_in.center, atol=1e-9)

    # Linear interpolation reproduces a linear function exactly wherever all 8 neighbours exist.
    pts = voxel_points(out)
    interior = g_in.contains(pts, margin_vox=0.5 + 1e-9)
    assert interior.sum() > 0.5 * len(pts)
    vals = sitk.GetArrayFromImage(out).ravel()
    np.testing.assert_allclose(vals[interior], linear_field(pts[interior]), rtol=0, atol=1e-6)

    # It is SimpleITK's resampling on an explicitly built grid, voxel for voxel.
    d = np.asarray(OBLIQUE).reshape(3, 3)
    corner = np.asarray(ORIGIN) - d @ (np.asarray(ANISO) / 2.0)
    direct = sitk.Resample(
        img,
        [14, 13, 20],
        sitk.Transform(),
        sitk.sitkLinear,
        (corner + d @ np.full(3, 0.5)).tolist(),
        [1.0] * 3,
        OBLIQUE,
    )
    # (Equal up to the last bit of the output origin, which is computed in a different order.)
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(direct), rtol=0, atol=1e-9)
    assert Grid.of(out).same_as(Grid.of(direct), tol=1e-9)


def test_resample_to_spacing_non_divisible_extent():
    img = random_image((20, 10, 8), ANISO, ORIGIN, OBLIQUE, seed=4)
    out = G.resample_to_spacing(img, (2.0, 3.0, 1.5))
    g_in, g_out = Grid.of(img), Grid.of(out)
    ext_in = np.asarray(g_in.size) * np.asarray(g_in.spacing)
    ext_out = np.asarray(g_out.size) * np.asarray(g_out.spacing)
    new_sp = np.asarray([2.0, 3.0, 1.5])
    # The box is kept to within half a new voxel per axis, its first corner exactly.
    assert np.all(np.abs(ext_out - ext_in) <= new_sp / 2 + 1e-9)
    np.testing.assert_allclose(g_out.corners()[0], g_in.corners()[0], atol=1e-9)
    d = np.asarray(OBLIQUE).reshape(3, 3)
    shift_axes = d.T @ (g_out.center - g_in.center)
    assert np.all(np.abs(shift_axes) <= new_sp / 4 + 1e-9)


def sphere_labels(size, spacing, origin, direction, centres, radii) -> sitk.Image:
    """A label map with label n+1 = the voxels within radii[n] mm of centres[n] (LPS)."""
    probe = sitk.Image(list(size), sitk.sitkUInt8)
    probe.SetSpacing(spacing)
    probe.SetOrigin(origin)
    probe.SetDirection(direction)
    pts = voxel_points(probe)
    lab = np.zeros(len(pts), np.uint8)
    for n, (c, r) in enumerate(zip(centres, radii)):
        lab[np.linalg.norm(pts - np.asarray(c), axis=1) <= r] = n + 1
    return image_from_array(lab.reshape(tuple(size[::-1])), spacing, origin, direction)


def test_resample_to_spacing_nearest_for_labels():
    size = (40, 24, 12)
    img = image_from_array(np.zeros(size[::-1], np.uint8), ANISO, ORIGIN, OBLIQUE)
    c = Grid.of(img).center
    centres = [c + [-5.0, 0.0, 0.0], c + [5.0, 2.0, -3.0], c + [0.0, -6.0, 4.0]]
    labels = sphere_labels(size, ANISO, ORIGIN, OBLIQUE, centres, [4.0, 3.5, 3.0])
    src = sitk.GetArrayFromImage(labels)

    for new_sp in (1.0, 2.0):
        out = G.resample_to_spacing(labels, new_sp, is_label=True)
        assert out.GetPixelID() == sitk.sitkUInt8
        res = sitk.GetArrayFromImage(out)
        assert set(np.unique(res)) <= set(np.unique(src))
        # Nearest neighbour: each output voxel holds the value of the source voxel nearest to it.
        pts = voxel_points(out)
        idx = Grid.of(labels).physical_to_index(pts)
        inside = Grid.of(labels).contains(pts)
        near = np.clip(np.round(idx).astype(int), 0, np.asarray(size) - 1)
        # Leave out output voxels that lie exactly between two source voxels (a tie either way is right).
        tie = np.any(np.abs(np.abs(idx - np.floor(idx)) - 0.5) < 1e-6, axis=1)
        check = inside & ~tie
        assert check.sum() > 0.5 * len(pts)
        np.testing.assert_array_equal(res.ravel()[check], src[near[check, 2], near[check, 1], near[check, 0]])
        # Physical centroids stay within half a new voxel of the original.
        src_pts = voxel_points(labels)
        for lab in (1, 2, 3):
            before = src_pts[src.ravel() == lab].mean(axis=0)
            after = pts[res.ravel() == lab].mean(axis=0)
            assert np.linalg.norm(after - before) <= new_sp / 2, (lab, new_sp, np.linalg.norm(after - before))


def test_label_round_trip_1mm_2mm_1mm_matches_simpleitk():
    """An anisotropic (1, 1, 2 mm) label map of 2x2x1 blocks survives 1 -> 2 -> 1 mm exactly."""
    rng = np.random.default_rng(5)
    coarse = rng.integers(0, 6, size=(6, 7, 8)).astype(np.uint8)  # [k, j, i] at 2 mm
    fine = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)  # [k, j, i] at (1, 1, 2) mm
    spacing = (1.0, 1.0, 2.0)
    labels = image_from_array(fine, spacing, ORIGIN, OBLIQUE)

    down = G.resample_to_spacing(labels, 2.0, is_label=True)
    assert down.GetSize() == (8, 7, 6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(down), coarse)
    back = G.resample_to_spacing(down, spacing, is_label=True)
    assert Grid.of(back).same_as(Grid.of(labels), tol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), fine)

    # Same as two SimpleITK resamplings on grids built here from the box corner.
    d = np.asarray(OBLIQUE).reshape(3, 3)
    corner = np.asarray(ORIGIN) - d @ (np.asarray(spacing) / 2.0)
    nn = sitk.sitkNearestNeighbor
    s_down = sitk.Resample(
        labels, [8, 7, 6], sitk.Transform(), nn, (corner + d @ np.full(3, 1.0)).tolist(), [2.0] * 3, OBLIQUE
    )
    s_back = sitk.Resample(s_down, labels, sitk.Transform(), nn)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(down), sitk.GetArrayFromImage(s_down))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(s_back))


def test_resample_like_and_to_grid():
    img = random_image((12, 9, 7), ANISO, ORIGIN, OBLIQUE, seed=6)
    ref = random_image((10, 10, 10), (1.0, 1.0, 1.0), Grid.of(img).center - 5.0, IDENTITY, seed=7)
    out = G.resample_like(img, ref, is_label=True, default_value=-5)
    assert Grid.of(out).same_as(Grid.of(ref), tol=1e-12)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(out),
        sitk.GetArrayFromImage(sitk.Resample(img, ref, sitk.Transform(), sitk.sitkNearestNeighbor, -5)),
    )
    f32 = G.resample_to_grid(img, Grid.of(ref), interpolator="linear", pixel_type=sitk.sitkFloat32)
    assert f32.GetPixelID() == sitk.sitkFloat32
    expected = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(f32), sitk.GetArrayFromImage(expected))


def test_grid_with_spacing_rejects_non_positive():
    grid = Grid((4, 4, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    for bad in (0.0, -1.0, (1.0, 0.0, 1.0), (1.0, 1.0, -2.0)):
        with pytest.raises(ValueError, match="positive"):
            G.grid_with_spacing(grid, bad)
    img = grid.empty_image()
    with pytest.raises(ValueError, match="positive"):
        G.resample_to_spacing(img, 0.0)


# ----------------------------------------------------------------------------------------
# Axis-aligned grids


def test_axis_aligned_grid_covers_oblique_box():
    for seed in range(8):
        d = tuple(random_rotation(seed).ravel().tolist())
        img = sitk.Image([37, 23, 11], sitk.sitkUInt8)
        img.SetSpacing(ANISO)
        img.SetOrigin(ORIGIN)
        img.SetDirection(d)
        grid = G.axis_aligned_grid(img)
        assert grid.direction == IDENTITY
        assert grid.spacing == (0.7, 0.7, 0.7)  # the finest spacing
        corners = Grid.of(img).corners()
        assert grid.contains(corners).all(), seed
        # ...and no more than one voxel larger than the corners' bounding box on each side.
        lo, hi = grid.corners().min(axis=0), grid.corners().max(axis=0)
        assert np.all(corners.min(axis=0) - lo <= 0.7 + 1e-9)
        assert np.all(hi - corners.max(axis=0) <= 0.7 + 1e-9)

        g1 = G.axis_aligned_grid(img, 1.5)
        assert g1.spacing == (1.5, 1.5, 1.5)
        assert g1.contains(corners).all(), seed


@pytest.mark.parametrize("code", ["PIR", "RAS", "SAL", "LPS"])
def test_axis_aligned_grid_of_permuted_image(code):
    img = random_image((9, 6, 5), ANISO, ORIGIN, direction_of(code), seed=8)
    grid = G.axis_aligned_grid(img)
    # The LPS axis that each image axis runs along gets that image axis's spacing.
    lps_axis = {"L": 0, "R": 0, "P": 1, "A": 1, "S": 2, "I": 2}
    expected = [0.0] * 3
    for image_axis, letter in enumerate(code):
        expected[lps_axis[letter]] = ANISO[image_axis]
    assert grid.spacing == pytest.approx(tuple(expected), abs=1e-12)
    assert grid.direction == IDENTITY
    np.testing.assert_allclose(np.sort(grid.corners(), axis=0), np.sort(Grid.of(img).corners(), axis=0), atol=1e-9)
    # It is the grid SimpleITK's DICOMOrient gives, and resampling onto it moves no voxel.
    lps = sitk.DICOMOrient(img, "LPS")
    assert grid.same_as(Grid.of(lps), tol=1e-9)
    moved = G.resample_to_grid(img, grid, interpolator="nearest")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(moved), sitk.GetArrayFromImage(lps))


# ----------------------------------------------------------------------------------------
# Crops


def blob(points: np.ndarray, centre, sigma=4.0) -> np.ndarray:
    return 1000.0 * np.exp(-np.sum((points - np.asarray(centre)) ** 2, axis=1) / (2 * sigma**2))


def blob_image(size, spacing, origin, direction, centre) -> sitk.Image:
    probe = image_from_array(np.zeros(size[::-1], np.float32), spacing, origin, direction)
    vals = blob(voxel_points(probe), centre).astype(np.float32)
    return image_from_array(vals.reshape(size[::-1]), spacing, origin, direction)


@pytest.mark.parametrize("dname", ["LPS", "PIR", "oblique"])
def test_crop_box_centres_the_requested_point(dname):
    size = (48, 30, 16)
    grid = Grid((48, 30, 16), ANISO, ORIGIN, DIRECTIONS[dname])
    centre = grid.center + np.array([3.2, -2.1, 1.7])
    img = blob_image(size, ANISO, ORIGIN, DIRECTIONS[dname], centre)

    crop = G.crop_box(img, centre, (21, 19, 23), 1.0)
    assert crop.GetSize() == (21, 19, 23)
    assert crop.GetSpacing() == (1.0, 1.0, 1.0)
    assert crop.GetDirection() == IDENTITY
    arr = sitk.GetArrayFromImage(crop)
    # The brightest voxel is the crop's numpy centre, and the intensity centroid is there too.
    assert np.unravel_index(np.argmax(arr), arr.shape) == (11, 9, 10)
    kji = np.stack(np.meshgrid(*(np.arange(n) for n in arr.shape), indexing="ij"), axis=-1)
    com = (kji * arr[..., None]).sum(axis=(0, 1, 2)) / arr.sum()
    np.testing.assert_allclose(com, [11.0, 9.0, 10.0], atol=0.15)
    # Values are the blob at each crop voxel's physical point (up to linear interpolation error).
    np.testing.assert_allclose(arr.ravel(), blob(voxel_points(crop), centre), atol=60.0)


@pytest.mark.parametrize("dname", ["LPS", "oblique"])
def test_crop_box_around_a_bright_sphere(dname):
    size = (48, 30, 16)
    grid = Grid(size, ANISO, ORIGIN, DIRECTIONS[dname])
    centre = grid.center + np.array([-2.3, 1.9, 2.6])
    sphere = sphere_labels(size, ANISO, ORIGIN, DIRECTIONS[dname], [centre], [6.0])
    img = sitk.Cast(sphere, sitk.sitkFloat32) * 1000.0
    crop = G.crop_box(img, centre, (25, 25, 25), 0.8)
    arr = sitk.GetArrayFromImage(crop)
    assert arr[12, 12, 12] == pytest.approx(1000.0)
    # The sphere sits in the middle of the crop: its intensity centroid is the numpy centre.
    kji = np.stack(np.meshgrid(*(np.arange(n) for n in arr.shape), indexing="ij"), axis=-1)
    com = (kji * arr[..., None]).sum(axis=(0, 1, 2)) / arr.sum()
    np.testing.assert_allclose(com, [12.0, 12.0, 12.0], atol=0.35)
    # Linear interpolation reaches one source voxel diagonal: nothing bright farther out, all bright farther in.
    diag = float(np.linalg.norm(ANISO))
    dist = np.linalg.norm(voxel_points(crop) - centre, axis=1)
    assert np.all(arr.ravel()[dist > 6.0 + diag] == 0.0)
    assert np.all(arr.ravel()[dist < 6.0 - diag] > 0.0)


def test_crop_box_with_direction_and_nearest():
    size = (48, 30, 16)
    img = blob_image(size, ANISO, ORIGIN, OBLIQUE, Grid((48, 30, 16), ANISO, ORIGIN, OBLIQUE).center)
    centre = Grid.of(img).center
    rot = tuple(random_rotation(11).ravel().tolist())
    crop = G.crop_box(img, centre, (15, 15, 15), (1.0, 1.0, 1.0), direction=rot)
    np.testing.assert_allclose(crop.GetDirection(), rot, atol=1e-12)
    np.testing.assert_allclose(crop.TransformContinuousIndexToPhysicalPoint([7.0, 7.0, 7.0]), centre, atol=1e-9)
    arr = sitk.GetArrayFromImage(crop)
    assert np.unravel_index(np.argmax(arr), arr.shape) == (7, 7, 7)

    labels = sphere_labels(size, ANISO, ORIGIN, OBLIQUE, [centre], [5.0])
    lab_crop = G.crop_box(labels, centre, (15, 15, 15), 1.0, interpolator="nearest")
    assert set(np.unique(sitk.GetArrayFromImage(lab_crop))) == {0, 1}
    assert sitk.GetArrayFromImage(lab_crop)[7, 7, 7] == 1


def test_crop_box_pads_outside_the_image():
    size = (20, 14, 8)
    img = blob_image(size, ANISO, ORIGIN, OBLIQUE, Grid((20, 14, 8), ANISO, ORIGIN, OBLIQUE).center)
    img = sitk.Cast(img, sitk.sitkFloat32) + 1.0  # all values >= 1
    corner = Grid.of(img).corners()[0]
    crop = G.crop_box(img, corner, (16, 16, 16), 1.0, default_value=-1024.0)
    vals = sitk.GetArrayFromImage(crop).ravel()
    pts = voxel_points(crop)
    src = Grid.of(img)
    outside = ~src.contains(pts)
    assert 0 < outside.sum() < len(pts)
    assert np.all(vals[outside] == -1024.0)
    inside = src.contains(pts, margin_vox=0.01)
    assert inside.sum() > 0
    assert np.all(vals[inside] >= 1.0)


# ----------------------------------------------------------------------------------------
# The whole chain


def test_point_to_index_through_resampling_chain():
    """point -> index in A (oblique, anisotropic) -> resample A onto an LPS 1 mm grid B -> index in B."""
    size = (35, 25, 15)
    block = 5  # A is constant on 5x5x5 voxel blocks
    rng = np.random.default_rng(9)
    coarse = rng.integers(1, 30000, size=(size[2] // block, size[1] // block, size[0] // block)).astype(np.int16)
    arr = np.repeat(np.repeat(np.repeat(coarse, block, 0), block, 1), block, 2)
    a = image_from_array(arr, ANISO, ORIGIN, OBLIQUE)

    grid_b = G.axis_aligned_grid(a, 1.0)
    b = G.resample_to_grid(a, grid_b, interpolator="nearest")
    arr_b = sitk.GetArrayFromImage(b)

    # Physical points at the centres of A's blocks.
    centres_idx = np.array(list(itertools.product(*(np.arange(n // block) * block + 2 for n in size))))
    points = Grid.of(a).index_to_physical(centres_idx)
    idx_a = np.round(G.physical_to_index(a, points)).astype(int)
    np.testing.assert_array_equal(idx_a, centres_idx)
    idx_b = np.round(G.physical_to_index(b, points)).astype(int)
    assert grid_b.contains(points).all()
    np.testing.assert_array_equal(
        arr_b[idx_b[:, 2], idx_b[:, 1], idx_b[:, 0]], arr[idx_a[:, 2], idx_a[:, 1], idx_a[:, 0]]
    )
