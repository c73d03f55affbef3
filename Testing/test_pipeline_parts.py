"""Building blocks of the inference stages, checked against independent computations."""

import dataclasses
import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SpineSegLib.errors import CancelledError, SpineSegError
from SpineSegLib.geometry import Grid, resample_to_grid
from SpineSegLib.pipeline import parse_stages
from SpineSegLib.pipeline.checks import ct_intensity_warning
from SpineSegLib.pipeline.device import resolve_device
from SpineSegLib.pipeline.intensity import CT_NORMALIZATION, normalize
from SpineSegLib.pipeline.network_input import box_grid
from SpineSegLib.pipeline.params import SegmentationParams, SpineParams
from SpineSegLib.pipeline.progress import Reporter
from SpineSegLib.pipeline.segmentation import (
    crop_probabilities,
    input_subgrid,
    keep_largest_component,
    merge_into,
)
from SpineSegLib.pipeline.spine import spine_box_from_heatmap
from SpineSegLib.pipeline.tiling import run_tiled_max, tile_starts


def test_tile_starts_cover_everything_with_bounded_steps():
    for length, tile, step in [(10, 16, 8), (100, 32, 16), (97, 32, 24), (64, 64, 32)]:
        starts = tile_starts(length, tile, step)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + tile] = True
            assert s + min(tile, length) <= length
        assert covered.all()
        assert all(b - a <= step for a, b in itertools.pairwise(starts))


def test_tiled_max_equals_max_over_tiles_and_whole_for_pointwise_functions():
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(1, 50, 6, 5)).astype(np.float32)
    # A point-wise predictor gives the same result tiled or not.
    out = run_tiled_max(vol, lambda t: np.stack([t[0] * 2, -t[0]]), tile=16, step=8, axis=1)
    np.testing.assert_array_equal(out, np.stack([vol[0] * 2, -vol[0]]))
    # A tile-dependent predictor: each voxel gets the max over the tiles that contain it.
    calls = []

    def predict(t):
        calls.append(t.shape[1])
        return np.full_like(t, float(len(calls)))

    out = run_tiled_max(vol, predict, tile=16, step=8, axis=1)
    starts = tile_starts(50, 16, 8)
    expected = np.zeros(50)
    for n, s in enumerate(starts, start=1):
        expected[s : s + 16] = np.maximum(expected[s : s + 16], n)
    np.testing.assert_array_equal(out[0, :, 0, 0], expected)
    assert calls == [16] * len(starts)


def test_ct_normalisation_is_payers():
    hu = np.array([-3000, -1024, 0, 1024, 2048, 5000], np.int16)
    np.testing.assert_allclose(normalize(hu, CT_NORMALIZATION), [-0.5, -0.5, 0, 0.5, 1, 1])


def test_box_grid_covers_box_and_respects_divisor():
    g = box_grid([-10.0, 5.0, 100.0], [50.0, 41.0, 300.0], 2.0, divisor=16)
    assert all(s % 16 == 0 for s in g.size)
    corners = g.corners()
    assert np.all(corners.min(0) <= [-10, 5, 100]) and np.all(corners.max(0) >= [50, 41, 300])
    np.testing.assert_allclose(g.center, [20, 23, 200])


def test_spine_box_is_the_largest_component_and_none_without_peak():
    grid = Grid((20, 20, 30), (8.0, 8.0, 8.0), (0.0, 0.0, 0.0))
    heat = np.zeros(grid.shape_kji, np.float32)
    heat[5:25, 9:12, 9:12] = 1.0  # the spine: k 5..24, j 9..11, i 9..11
    heat[2, 2, 2] = 0.9  # a small separate blob
    img = grid.apply(sitk.GetImageFromArray(heat))
    box = spine_box_from_heatmap(heat, grid, img, SpineParams())
    np.testing.assert_allclose(box.lo, [8 * 8.5, 8 * 8.5, 8 * 4.5])
    np.testing.assert_allclose(box.hi, [8 * 11.5, 8 * 11.5, 8 * 24.5])
    np.testing.assert_allclose(box.center, [80, 80, 8 * 14.5])
    assert spine_box_from_heatmap(heat * 0.1, grid, img, SpineParams()) is None


def test_keep_largest_component_zeroes_only_other_supra_threshold_parts():
    p = np.zeros((10, 10, 10), np.float32)
    p[1:6, 1:6, 1:6] = 0.9
    p[8:10, 8:10, 8:10] = 0.8
    p[0, 9, 0] = 0.3  # below threshold: kept as it is
    out = keep_largest_component(p.copy(), 0.5)
    assert out[1:6, 1:6, 1:6].min() == pytest.approx(0.9)
    assert out[8:10, 8:10, 8:10].max() == 0
    assert out[0, 9, 0] == pytest.approx(0.3)
    lab, n = ndimage.label(out > 0.5)
    assert n == 1


def test_flip_x_makes_the_crop_probabilities_mirror_equivariant():
    import torch

    from SpineSegLib.networks import build_network

    torch.manual_seed(0)
    net = build_network(
        {"architecture": "unet", "in_channels": 2, "out_channels": 1, "num_filters": 4, "num_levels": 2}
    ).eval()
    batch = np.random.default_rng(2).normal(size=(2, 2, 6, 8, 10)).astype(np.float32)
    mirrored = np.ascontiguousarray(batch[..., ::-1])
    cpu = torch.device("cpu")
    params = SegmentationParams(mixed_precision=False)
    plain, tta = (crop_probabilities(net, batch, cpu, dataclasses.replace(params, flip_x=f)) for f in (False, True))
    plain_m, tta_m = (
        crop_probabilities(net, mirrored, cpu, dataclasses.replace(params, flip_x=f)) for f in (False, True)
    )
    # A random network is not mirror-equivariant by itself; the flip test-time augmentation makes it so (x = last axis).
    assert np.abs(plain_m[..., ::-1] - plain).max() > 1e-3
    np.testing.assert_allclose(tta_m[..., ::-1], tta, atol=1e-6)
    assert tta.shape == (2, 6, 8, 10) and 0.0 < tta.min() and tta.max() < 1.0


def test_input_subgrid_matches_resampling_of_the_whole_grid():
    rng = np.random.default_rng(1)
    image = sitk.GetImageFromArray(rng.normal(size=(40, 30, 20)).astype(np.float32))
    image.SetSpacing((0.7, 0.9, 1.5))
    image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    image_grid = Grid.of(image)
    crop = Grid.centered(image_grid.center + 3.0, (10, 12, 8), (1.0, 1.0, 1.0))
    prob = crop.apply(sitk.GetImageFromArray(rng.random(crop.shape_kji).astype(np.float32)))
    sub, slices = input_subgrid(image_grid, crop)
    part = sitk.GetArrayFromImage(resample_to_grid(prob, sub, interpolator="linear"))
    whole = sitk.GetArrayFromImage(resample_to_grid(prob, image_grid, interpolator="linear"))
    np.testing.assert_allclose(part, whole[slices], atol=1e-6)
    assert whole.sum() == pytest.approx(part.sum(), rel=1e-5)  # nothing of the crop lies outside the sub-grid


def test_merge_into_replaces_only_the_given_labels():
    base = np.zeros((4, 4, 4), np.uint8)
    base[0] = 20
    base[1] = 21
    base[2] = 22
    update = np.zeros_like(base)
    update[1:3, :2] = 21  # L2 grows into L3's territory and loses part of its old voxels
    b = sitk.GetImageFromArray(base)
    out = sitk.GetArrayFromImage(merge_into(b, sitk.GetImageFromArray(update), [21]))
    assert (out[0] == 20).all()
    assert (out[1, :2] == 21).all() and (out[1, 2:] == 0).all()
    assert (out[2, :2] == 22).all()  # voxels of a label not being redone are kept
    assert (out[2, 2:] == 22).all()


def test_reporter_maps_progress_and_cancels():
    seen = []
    r = Reporter(lambda f, m: seen.append(f)).part(0.5, 1.0).part(0.0, 0.5)
    r(0.5, "x")
    assert seen == [pytest.approx(0.625)]
    flag = {"stop": False}
    r = Reporter(cancel=lambda: flag["stop"])
    r.check()
    flag["stop"] = True
    with pytest.raises(CancelledError):
        r.check()


def test_stage_names_and_devices():
    assert parse_stages("segmentation, spine") == ("spine", "segmentation")
    with pytest.raises(SpineSegError, match="unknown stage"):
        parse_stages("spine,heart")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(SpineSegError, match="unknown device"):
        resolve_device("tpu")


def test_ct_warning_for_mr_like_intensities(real_data):
    ct = sitk.ReadImage(str(real_data / "totalseg_example_abdomen_ct" / "example_ct.nii.gz"))
    mr = sitk.ReadImage(str(real_data / "sct_t2_cervical_mr" / "t2.nii.gz"))
    assert ct_intensity_warning(ct) is None
    msg = ct_intensity_warning(mr)
    assert msg is not None and "do not look like CT" in msg


def test_test_time_passes_average_the_crops_on_the_input_grid():
    import torch
    from slicer_fixtures import synthetic_lumbar_ct, tiny_models

    from SpineSegLib.models import ModelCard
    from SpineSegLib.networks import build_network
    from SpineSegLib.pipeline.segmentation import vertebra_probabilities

    s = synthetic_lumbar_ct()
    _, card = tiny_models()["segmentation"]
    torch.manual_seed(0)  # a random network: the hand-set tiny one is mirror-symmetric
    spec = {"architecture": "unet", "in_channels": 2, "out_channels": 1, "num_filters": 4, "num_levels": 2}
    net = build_network(spec).eval()
    labels = s.centroids.labels  # five vertebrae: with 2 crops each and batch_size 4, three batches
    shape = Grid.of(s.image).shape_kji
    cpu = torch.device("cpu")

    def run(*passes, flip_x=False):
        tta = [{"offset_vox": list(offset), "mirror_x": mirror} for offset, mirror in passes]
        params = {**card.params, "mixed_precision": False, "batch_size": 4, "tta_passes": tta, "flip_x": flip_x}
        trial = ModelCard.from_json({**card.to_json(), "params": params})
        out = {}
        for lab, prob, sl in vertebra_probabilities(s.image, s.centroids, labels, net, trial, cpu):
            whole = np.zeros(shape, np.float32)
            whole[sl] = prob
            out[lab] = whole
        return out

    origin, half = (0, 0, 0), (0.5, 0.5, 0.5)
    plain, twice, moved = run((origin, False)), run((origin, False), (origin, False)), run((half, False))
    mirrored, both = run((origin, True)), run((origin, False), (half, True))
    moved_mirrored, flip_tta = run((half, True)), run((origin, False), flip_x=True)
    assert list(both) == labels
    for lab in labels:
        np.testing.assert_allclose(twice[lab], plain[lab], atol=1e-6)  # the same crop twice: no change
        assert np.abs(moved[lab] - plain[lab]).max() > 1e-3  # half a voxel moves the prediction
        assert np.abs(mirrored[lab] - plain[lab]).max() > 1e-3  # a random network is not mirror-symmetric
        np.testing.assert_allclose(both[lab], (plain[lab] + moved_mirrored[lab]) / 2, atol=1e-6)  # voxel-wise mean
        # A plain and a mirrored pass at the same place are the flip_x augmentation.
        np.testing.assert_allclose(run((origin, False), (origin, True))[lab], flip_tta[lab], atol=1e-6)
