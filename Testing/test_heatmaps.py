"""Heatmap targets and maxima: analytic values, sub-voxel recovery in LPS, maxima rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.geometry import Grid
from SpineSegLib.heatmaps import (
    Candidate,
    gaussian_heatmap,
    gaussian_heatmaps_torch,
    heatmap_candidates,
    heatmap_targets,
    local_maxima,
    refine_quadratic,
    spine_heatmap,
)


def dense_gaussian(shape_kji, center_ijk, sigma, scale=1.0):
    """Independent full-grid evaluation of scale * exp(-|x - mu|^2 / (2 sigma^2)) (sigma per axis i, j, k)."""
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape_kji), indexing="ij")
    s = np.broadcast_to(np.asarray(sigma, float), (3,))
    r2 = ((i - center_ijk[0]) / s[0]) ** 2 + ((j - center_ijk[1]) / s[1]) ** 2 + ((k - center_ijk[2]) / s[2]) ** 2
    return scale * np.exp(-0.5 * r2)


def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


# ---------------------------------------------------------------------------------------- targets


def test_peak_equals_scale_at_voxel_aligned_centre_and_axes_are_not_mixed():
    shape = (20, 14, 9)  # k, j, i all different
    center = (3.0, 10.0, 15.0)  # i, j, k
    h = gaussian_heatmap(shape, center, 2.5, scale=0.8, truncate=None)
    assert h.dtype == np.float32 and h.shape == shape
    assert h[15, 10, 3] == pytest.approx(0.8, rel=1e-6)
    assert np.unravel_index(np.argmax(h), shape) == (15, 10, 3)
    np.testing.assert_allclose(h, dense_gaussian(shape, center, 2.5, 0.8), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("sigma", [1.5, 3.0, (2.0, 3.0, 4.5)])
def test_subvoxel_target_matches_formula_and_truncation_box(sigma):
    rng = np.random.default_rng(1)
    shape = (40, 33, 27)
    for _ in range(5):
        center = rng.uniform([5, 5, 5], [22, 28, 35])
        ref = dense_gaussian(shape, center, sigma, 1.3)
        full = gaussian_heatmap(shape, center, sigma, scale=1.3, truncate=None)
        np.testing.assert_allclose(full, ref, rtol=1e-5, atol=1e-7)
        cut = gaussian_heatmap(shape, center, sigma, scale=1.3, truncate=4.0)
        s = np.broadcast_to(np.asarray(sigma, float), (3,))
        k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
        inside = (np.abs(i - center[0]) <= 4 * s[0]) & (np.abs(j - center[1]) <= 4 * s[1])
        inside &= np.abs(k - center[2]) <= 4 * s[2]
        np.testing.assert_allclose(cut[inside], ref[inside], rtol=1e-5, atol=1e-7)
        assert np.all(cut[~inside] == 0)
        assert np.abs(cut - ref).max() <= 1.3 * np.exp(-8) + 1e-7


def test_normalized_gaussian_has_unit_integral():
    shape = (48, 48, 48)
    h = gaussian_heatmap(shape, (23.3, 24.6, 22.1), 3.0, scale=2.0, normalize=True)
    assert float(h.sum(dtype=np.float64)) == pytest.approx(2.0, rel=1e-3)
    assert h.max() == pytest.approx(2.0 / (np.sqrt(2 * np.pi) * 3.0) ** 3, rel=2e-2)


def test_centre_far_outside_gives_zero_and_bad_sigma_is_refused():
    assert not gaussian_heatmap((10, 10, 10), (100.0, 5.0, 5.0), 2.0).any()
    with pytest.raises(ValueError):
        gaussian_heatmap((10, 10, 10), (5, 5, 5), 0.0)


def oblique_grid():
    d = rotation((1, 2, 3), 0.4)
    return Grid((30, 26, 40), (1.2, 0.9, 2.5), (-20.0, 15.0, 100.0), tuple(d.ravel()))


def test_heatmap_targets_channels_missing_and_outside_landmarks():
    grid = oblique_grid()
    idx = {14: (10.3, 12.7, 20.2), 15: (17.6, 9.1, 30.8), 3: (-30.0, 5.0, 5.0)}  # C3 lies outside the grid
    # Independent index -> LPS map: origin + D @ (spacing * index).
    m = np.asarray(grid.direction).reshape(3, 3) * np.asarray(grid.spacing)
    pts = {lab: np.asarray(grid.origin) + m @ np.asarray(ijk) for lab, ijk in idx.items()}
    labels = (15, 14, 3, 20)  # T8, T7, C3 (outside), L1 (missing)
    t = heatmap_targets(grid, Centroids(pts), labels, sigma_vox=2.0)
    assert t.shape == (4, 40, 26, 30) and t.dtype == np.float32
    tail = np.exp(-8.0) + 1e-6  # default truncation at 4 sigma
    np.testing.assert_allclose(t[0], dense_gaussian(grid.shape_kji, idx[15], 2.0), atol=tail)
    np.testing.assert_allclose(t[1], dense_gaussian(grid.shape_kji, idx[14], 2.0), atol=tail)
    assert not t[2].any() and not t[3].any()
    per_channel = heatmap_targets(grid, Centroids(pts), labels, sigma_vox=[2.0, 4.0, 1.0, 1.0], truncate=None)
    np.testing.assert_allclose(per_channel[1], dense_gaussian(grid.shape_kji, idx[14], 4.0), rtol=1e-5, atol=1e-7)


def test_default_targets_have_26_channels_in_heatmap_label_order():
    grid = Grid((16, 16, 16), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    t = heatmap_targets(grid, Centroids({28: (15.0, 14.0, 16.0)}))
    assert t.shape == (26, 16, 16, 16)
    assert [c for c in range(26) if t[c].any()] == [L.HEATMAP_LABELS.index(28)] == [25]


def test_torch_heatmaps_match_numpy():
    shape = (12, 10, 9)
    centers = torch.tensor([[[3.2, 4.7, 6.1], [7.9, 2.2, 5.5]], [[0.5, 9.0, 11.2], [4.0, 4.0, 4.0]]])
    sigma = torch.tensor([[2.0, 3.0], [1.5, 2.5]], requires_grad=True)
    valid = torch.tensor([[True, False], [True, True]])
    h = gaussian_heatmaps_torch(shape, centers, sigma, scale=0.7, valid=valid)
    assert h.shape == (2, 2, 12, 10, 9)
    for b in range(2):
        for c in range(2):
            ref = gaussian_heatmap(shape, centers[b, c].numpy(), float(sigma[b, c].detach()), 0.7, truncate=None)
            ref = ref if valid[b, c] else np.zeros_like(ref)
            np.testing.assert_allclose(h[b, c].detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    h.sum().backward()
    assert sigma.grad is not None and sigma.grad[0, 0] > 0 and sigma.grad[0, 1] == 0


def test_spine_heatmap_is_normalised_and_matches_the_analytic_convolution():
    grid = Grid((48, 48, 48), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    s = spine_heatmap(grid, Centroids({12: (48.0, 46.0, 50.0)}), sigma_vox=3.0)
    assert s.dtype == np.float32 and s.min() == 0.0 and s.max() == pytest.approx(1.0)
    # A Gaussian (sigma 3) smoothed by a Gaussian (sigma 3) is a Gaussian of sigma sqrt(18).
    ref = dense_gaussian(grid.shape_kji, (24.0, 23.0, 25.0), np.sqrt(18.0))
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    np.testing.assert_allclose(s, ref, atol=2e-3)
    several = spine_heatmap(grid, Centroids({12: (30.0, 46.0, 30.0), 13: (50.0, 46.0, 60.0)}), 3.0)
    assert several.min() == 0.0 and several.max() == pytest.approx(1.0) and several.shape == grid.shape_kji
    assert not spine_heatmap(grid, Centroids({}), 3.0).any()


# ---------------------------------------------------------------------------------------- maxima


def test_refine_quadratic_is_exact_on_a_parabola_and_guards_degenerate_axes():
    k, j, i = np.meshgrid(np.arange(7.0), np.arange(7.0), np.arange(7.0), indexing="ij")
    true_ijk = np.array([3.31, 2.8, 3.45])
    h = 10 - (i - true_ijk[0]) ** 2 - 2 * (j - true_ijk[1]) ** 2 - 0.5 * (k - true_ijk[2]) ** 2
    np.testing.assert_allclose(refine_quadratic(h, (3, 3, 3)), true_ijk, atol=1e-12)
    flat = np.ones((5, 5, 5))
    np.testing.assert_array_equal(refine_quadratic(flat, (2, 1, 3)), [3, 1, 2])  # zero curvature: no shift
    convex = np.zeros((5, 5, 5))
    convex[2, 2, 1] = convex[2, 2, 3] = 1.0  # local minimum along i
    np.testing.assert_array_equal(refine_quadratic(convex, (2, 2, 2)), [2, 2, 2])
    ramp = np.zeros((5, 5, 5))
    ramp[2, 2, :] = [0, 1, 2, 2.9, 0]  # concave but rising: delta clipped to +0.5
    np.testing.assert_array_equal(refine_quadratic(ramp, (2, 2, 2)), [2.5, 2, 2])
    np.testing.assert_array_equal(refine_quadratic(ramp, (0, 2, 4)), [4, 2, 0])  # border voxel: no shift


@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0, 4.0])
def test_maxima_recover_subvoxel_centres_in_lps_on_an_anisotropic_grid(sigma):
    rng = np.random.default_rng(int(sigma * 10))
    spacing = np.array([0.8, 1.3, 2.5])
    grid = Grid((40, 36, 44), tuple(spacing), (-12.0, 30.0, -200.0))
    labels = (10, 11, 12)
    for _ in range(4):
        true_idx = {lab: rng.uniform(8, [31, 27, 35]) for lab in labels}
        pts = {lab: grid.origin + spacing * ijk for lab, ijk in true_idx.items()}  # identity direction
        hm = heatmap_targets(grid, Centroids(pts), labels, sigma_vox=sigma)
        for smoothing in (0.0, 2.0):
            cands = heatmap_candidates(hm, grid, labels, smoothing_sigma=smoothing)
            for lab in labels:
                assert len(cands[lab]) == 1
                cand = cands[lab][0]
                assert isinstance(cand, Candidate) and cand.label == lab
                assert np.all(np.abs(cand.point_lps - pts[lab]) < 0.1 * spacing)
                nearest = np.round(true_idx[lab])  # value = heatmap at the maximum voxel
                expected = np.exp(-np.sum((nearest - true_idx[lab]) ** 2) / (2 * sigma**2))
                assert cand.value == pytest.approx(expected, rel=1e-5)


def test_maxima_on_an_oblique_grid_within_a_tenth_of_a_voxel():
    grid = oblique_grid()
    rng = np.random.default_rng(7)
    m = np.asarray(grid.direction).reshape(3, 3) * np.asarray(grid.spacing)
    for _ in range(5):
        ijk = rng.uniform(6, [23, 19, 33])
        point = np.asarray(grid.origin) + m @ ijk
        hm = heatmap_targets(grid, Centroids({5: point}), (5,), sigma_vox=2.5)
        (cand,) = heatmap_candidates(hm, grid, (5,))[5]
        err_idx = np.linalg.solve(m, cand.point_lps - point)
        assert np.all(np.abs(err_idx) < 0.1)


def test_local_maxima_strictness_plateaus_threshold_order_and_border():
    h = np.zeros((9, 9, 9))
    h[2, 2, 2] = 0.9
    h[6, 6, 5] = h[6, 6, 6] = 0.7  # plateau of two voxels: not a strict maximum
    h[5, 2, 6] = 0.04  # below min_value
    h[2, 6, 3] = 0.3
    h[0, 4, 4] = 0.8  # on the border
    found = local_maxima(h, min_value=0.05)
    assert [v for _, v in found] == [0.9, 0.3]
    np.testing.assert_array_equal(found[0][0], [2, 2, 2])
    np.testing.assert_array_equal(found[1][0], [3, 6, 2])
    with_border = local_maxima(h, min_value=0.05, include_border=True)
    assert [v for _, v in with_border] == [0.9, 0.8, 0.3]
    np.testing.assert_array_equal(with_border[1][0], [4, 4, 0])
    assert [v for _, v in local_maxima(h, min_value=0.01)] == [0.9, 0.3, 0.04]
    assert local_maxima(h, min_value=0.95) == []


def test_smoothing_merges_noise_maxima_of_one_peak():
    rng = np.random.default_rng(3)
    shape = (30, 30, 30)
    h = gaussian_heatmap(shape, (14.4, 15.2, 14.7), 4.0) + rng.normal(0, 0.05, shape).astype(np.float32)
    noisy = local_maxima(h, min_value=0.4)
    smooth = local_maxima(h, min_value=0.4, smoothing_sigma=2.0)
    assert len(noisy) > 1
    assert len(smooth) == 1
    assert np.all(np.abs(smooth[0][0] - [14.4, 15.2, 14.7]) < 1.0)


def test_candidates_refuse_mismatched_shapes_and_limit_per_channel():
    grid = Grid((10, 12, 14), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="do not match"):
        heatmap_candidates(np.zeros((2, 10, 12, 14)), grid, (1, 2))
    hm = np.zeros((1, 14, 12, 10))
    hm[0, 3, 3, 3], hm[0, 9, 8, 6], hm[0, 6, 3, 7] = 0.5, 0.8, 0.2
    cands = heatmap_candidates(hm, grid, (4,), smoothing_sigma=0.0, max_per_channel=2)[4]
    assert [c.value for c in cands] == [0.8, 0.5]
    np.testing.assert_allclose(cands[0].point_lps, [6, 8, 9])
    with pytest.raises(ValueError, match="non-finite"):
        local_maxima(np.full((3, 3, 3), np.nan))


def _brute_force_maxima(h: np.ndarray, min_value: float, sigma: float) -> list[tuple[tuple[int, int, int], float]]:
    """Strict 26-neighbour maxima of the smoothed whole heatmap, interior voxels only, by plain loops."""
    s = ndimage.gaussian_filter(h.astype(np.float64), sigma, mode="nearest") if sigma > 0 else h.astype(np.float64)
    out = []
    nk, nj, ni = h.shape
    for k in range(1, nk - 1):
        for j in range(1, nj - 1):
            for i in range(1, ni - 1):
                if h[k, j, i] <= min_value:
                    continue
                block = s[k - 1 : k + 2, j - 1 : j + 2, i - 1 : i + 2]
                if np.count_nonzero(block >= s[k, j, i]) == 1:
                    out.append(((k, j, i), float(h[k, j, i])))
    return sorted(out, key=lambda m: -m[1])


@pytest.mark.parametrize("sigma", [0.0, 1.0, 2.0])
def test_local_maxima_equal_a_whole_volume_brute_force(sigma):
    """Working in the supra-threshold box must not change which maxima are found (sparse network output)."""
    rng = np.random.default_rng(5)
    h = rng.normal(0.0, 0.02, (30, 26, 22))
    for _ in range(4):
        c = rng.uniform([6, 6, 6], [24, 20, 16])
        kk, jj, ii = np.indices(h.shape)
        h += rng.uniform(0.3, 1.0) * np.exp(-((kk - c[0]) ** 2 + (jj - c[1]) ** 2 + (ii - c[2]) ** 2) / 8.0)
    found = local_maxima(h, min_value=0.1, smoothing_sigma=sigma)
    expected = _brute_force_maxima(h, 0.1, sigma)
    assert [round(v, 12) for _, v in found] == [round(v, 12) for _, v in expected]
    for (ijk, _), (kji, _) in zip(found, expected):
        assert np.all(np.abs(ijk[::-1] - np.asarray(kji)) <= 0.5)
