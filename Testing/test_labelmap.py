"""Tests of SpineSegLib.labelmap: label ids, bounding boxes and physical centroids of label maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SpineSegLib import geometry as G
from SpineSegLib.labelmap import bounding_boxes, fill_enclosed_background, label_centroids, label_ids, relabelled

REAL_TS = Path(__file__).parent / "data" / "real" / "totalseg_example_abdomen_ct"
REAL_MASK = REAL_TS / "derived_vert_verse-labels.nii.gz"


def random_labels(shape, labels, seed, dtype) -> np.ndarray:
    """Sparse random label array: each label in a few random blobs, plenty of background."""
    rng = np.random.default_rng(seed)
    arr = np.zeros(shape, dtype)
    for lab in labels:
        for _ in range(3):
            lo = [rng.integers(0, n - 2) for n in shape]
            hi = [min(n, a + rng.integers(1, 6)) for a, n in zip(lo, shape)]
            arr[tuple(slice(a, b) for a, b in zip(lo, hi))] = lab
    return arr


def oblique_image(arr_kji: np.ndarray) -> sitk.Image:
    rng = np.random.default_rng(42)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    img = sitk.GetImageFromArray(arr_kji)
    img.SetSpacing((0.7, 1.3, 2.5))
    img.SetOrigin((-35.5, 120.25, -410.0))
    img.SetDirection(q.ravel().tolist())
    assert G.is_oblique(img)
    return img


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.int64, np.uint32])
def test_label_ids(dtype):
    labels = [1, 7, 26, 200] if np.iinfo(dtype).max < 1000 else [1, 7, 26, 200, 300, 1000]
    arr = random_labels((12, 15, 9), labels, seed=1, dtype=dtype)
    ids = label_ids(arr)
    assert ids == sorted(set(np.unique(arr).tolist()) - {0})
    assert set(ids) <= set(labels) and len(ids) >= len(labels) - 1
    assert all(type(v) is int for v in ids)
    assert label_ids(np.zeros((3, 3), dtype)) == []
    assert label_ids(np.array([], dtype)) == []


def test_label_ids_sees_label_255_in_uint8():
    arr = np.zeros((4, 4), np.uint8)
    arr[0, 0], arr[3, 3] = 255, 1
    assert label_ids(arr) == [1, 255]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, bool])
def test_label_functions_reject_non_integer(dtype):
    arr = np.zeros((3, 3, 3), dtype)
    with pytest.raises(TypeError, match="integer"):
        label_ids(arr)
    with pytest.raises(TypeError, match="integer"):
        bounding_boxes(arr)
    with pytest.raises(TypeError, match="integer"):
        label_centroids(sitk.GetImageFromArray(arr.astype(np.float32) if dtype is bool else arr))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.int64])
def test_bounding_boxes_match_argwhere(dtype):
    arr = random_labels((20, 17, 11), [1, 2, 5, 19, 28, 250], seed=2, dtype=dtype)
    boxes = bounding_boxes(arr)
    assert sorted(boxes) == label_ids(arr)
    for lab, sl in boxes.items():
        where = np.argwhere(arr == lab)
        expected = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(where.min(axis=0), where.max(axis=0)))
        assert sl == expected, lab
        # The box holds every voxel of the label.
        assert (arr[sl] == lab).sum() == len(where)
    assert bounding_boxes(np.zeros((2, 2, 2), dtype)) == {}


def test_bounding_boxes_rejects_bad_values():
    arr = np.zeros((3, 3, 3), np.int32)
    arr[1, 1, 1] = 70000
    with pytest.raises(ValueError, match="65535"):
        bounding_boxes(arr)
    arr[1, 1, 1] = -2
    with pytest.raises(ValueError, match="negative"):
        bounding_boxes(arr)


def test_label_centroids_equal_brute_force_on_oblique_image():
    arr = random_labels((14, 18, 22), [3, 8, 20, 28, 300], seed=3, dtype=np.uint16)
    img = oblique_image(arr)
    got = label_centroids(img)
    assert got.labels == [3, 8, 28, 20, 300]  # anatomical order, then ids outside the table
    for lab in label_ids(arr):
        # Brute force: SimpleITK's physical point of every voxel of the label, averaged.
        pts = [img.TransformIndexToPhysicalPoint([int(i), int(j), int(k)]) for k, j, i in np.argwhere(arr == lab)]
        np.testing.assert_allclose(got[lab], np.mean(pts, axis=0), rtol=0, atol=1e-9)

    # Peer library: SimpleITK's label shape statistics (physical centroid).
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(img)
    assert sorted(stats.GetLabels()) == label_ids(arr)
    for lab in stats.GetLabels():
        np.testing.assert_allclose(got[lab], stats.GetCentroid(lab), rtol=0, atol=1e-6)

    # Only the labels asked for; absent ones are skipped.
    sub = label_centroids(img, [20, 8, 4])
    assert sub.labels == [8, 20]
    np.testing.assert_array_equal(sub[20], got[20])


def test_label_centroids_on_real_mask_match_reference_json():
    mask = sitk.ReadImage(str(REAL_MASK))
    got = label_centroids(mask)
    world = json.loads((REAL_TS / "derived_vert_ctd_world.json").read_text())["centroids_world_RAS_mm"]
    assert got.labels == [18, 19, 20, 21, 22, 23, 24, 26]
    assert sorted(int(k) for k in world) == sorted(got.labels)
    for k, v in world.items():
        ras = np.asarray(v["ras_mm"], float)
        lps = ras * [-1.0, -1.0, 1.0]
        np.testing.assert_allclose(got[int(k)], lps, rtol=0, atol=0.01)


def test_label_centroids_do_not_depend_on_orientation():
    mask = sitk.ReadImage(str(REAL_MASK))
    ref = label_centroids(mask)
    for code in ("LPS", "PIR", "SAL"):
        turned = G.reorient(mask, code)
        assert G.orientation_code(turned) == code
        got = label_centroids(turned)
        assert got.labels == ref.labels
        np.testing.assert_allclose(got.array(), ref.array(), rtol=0, atol=1e-6)


def _shells(shape=(30, 40, 36)) -> np.ndarray:
    """Label 3: a hollow ball; label 4: a hollow box pierced by a canal (a tunnel, not a cavity)."""
    k, j, i = np.indices(shape)
    r = np.sqrt((k - 15) ** 2 + (j - 12) ** 2 + (i - 12) ** 2)
    arr = np.zeros(shape, np.uint8)
    arr[(r <= 8) & (r > 5)] = 3
    box = np.zeros(shape, bool)
    box[5:25, 25:37, 5:30] = True
    inner = np.zeros(shape, bool)
    inner[8:22, 28:34, 8:27] = True
    arr[box & ~inner] = 4
    arr[13:17, 29:33, :] = 0  # the canal runs through the box along i
    return arr


def test_fill_enclosed_background_fills_cavities_only_and_agrees_with_monai():
    from monai.transforms import FillHoles

    arr = _shells()
    expected = FillHoles()(arr[None].copy())[0]  # MONAI: per label, background enclosed by that label
    out = arr.copy()
    filled = fill_enclosed_background(out)
    assert filled == int(((out == 3) & (arr == 0)).sum()) > 0
    assert np.array_equal(out, np.asarray(expected))
    assert np.array_equal(out == 4, arr == 4)  # the pierced box has a tunnel, no cavity: unchanged


def test_fill_enclosed_background_keeps_other_labels_inside_a_cavity():
    arr = _shells()
    arr[14:17, 11:14, 11:14] = 9  # a small label inside the ball's cavity
    out = arr.copy()
    fill_enclosed_background(out)
    assert np.array_equal(out == 9, arr == 9)
    k, j, i = np.indices(arr.shape)
    cavity = np.sqrt((k - 15) ** 2 + (j - 12) ** 2 + (i - 12) ** 2) <= 5
    assert np.all(out[cavity & (arr != 9)] == 3)


def test_relabelled_renames_all_at_once_and_keeps_or_clears_the_rest():
    arr = np.zeros((4, 5, 6), np.uint8)
    arr[0], arr[1], arr[2] = 20, 21, 26  # L1, L2, sacrum
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 0.7, 2.0))
    img.SetOrigin((3.0, -4.0, 5.0))
    swap = {20: 21, 21: 20}  # a swap: applied one after the other it would leave one label only
    kept = relabelled(img, swap)
    cleared = relabelled(img, swap, others=0)
    for out in (kept, cleared):
        assert out.GetPixelID() == img.GetPixelID() and G.Grid.of(out).same_as(G.Grid.of(img))
    expected = arr.copy()
    expected[0], expected[1] = 21, 20
    np.testing.assert_array_equal(sitk.GetArrayFromImage(kept), expected)
    expected[2] = 0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(cleared), expected)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), arr)  # the input is not changed
