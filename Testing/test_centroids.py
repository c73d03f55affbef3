"""Tests of the centroid container (SpineSegLib.centroids.Centroids): label -> LPS mm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SpineSegLib.centroids import Centroids

REAL_TS = Path(__file__).parent / "data" / "real" / "totalseg_example_abdomen_ct"
POINTS = {20: (1.5, -2.0, 300.25), 28: (0.5, -1.0, 330.0), 19: (0.0, 0.0, 360.0), 25: (2.0, 3.0, 180.0)}


def test_construction_from_dict_and_pairs():
    from_dict = Centroids(POINTS)
    from_pairs = Centroids(list(POINTS.items()))
    from_gen = Centroids((k, np.asarray(v)) for k, v in POINTS.items())
    assert from_dict == from_pairs == from_gen
    assert len(from_dict) == 4
    for k, v in POINTS.items():
        np.testing.assert_array_equal(from_dict[k], v)
        assert from_dict[k].dtype == np.float64
        assert from_dict[k].shape == (3,)
    # Keys from numpy, float masks and JSON files are the same labels.
    c = Centroids({np.uint8(20): [1, 2, 3], 21.0: [4, 5, 6], "22": np.array([[7], [8], [9]])})
    assert c.labels == [20, 21, 22]
    assert all(type(k) is int for k in c)
    np.testing.assert_array_equal(c[22], [7.0, 8.0, 9.0])
    assert c[np.int64(20)] is c[20]
    assert len(Centroids()) == 0
    assert Centroids().array().shape == (0, 3)


def test_iteration_is_anatomical():
    c = Centroids(POINTS)
    # T12 (19), T13 (28), L1 (20), L6 (25): cranial to caudal, whatever the input order.
    assert list(c) == [19, 28, 20, 25]
    assert c.labels == [19, 28, 20, 25]
    assert list(Centroids(dict(reversed(list(POINTS.items()))))) == [19, 28, 20, 25]
    # Labels outside the table come after the table's labels, by id, in any input order.
    a = Centroids({100: (0, 0, 0), 5: (1, 1, 1), 41: (2, 2, 2)})
    b = Centroids({41: (2, 2, 2), 100: (0, 0, 0), 5: (1, 1, 1)})
    assert list(a) == list(b) == [5, 41, 100]
    assert a == b


def test_points_are_immutable_and_not_shared():
    src = np.array([1.0, 2.0, 3.0])
    c = Centroids({5: src}, {5: 0.5})
    with pytest.raises(ValueError, match="read-only"):
        c[5][0] = 10.0
    src[0] = 99.0  # the caller's array stays the caller's
    assert src.flags.writeable
    np.testing.assert_array_equal(c[5], [1.0, 2.0, 3.0])
    col = np.array([[1.0, 9.0], [2.0, 9.0], [3.0, 9.0]])[:, 0]  # a strided view
    c2 = Centroids({5: col})
    col[1] = -1.0
    np.testing.assert_array_equal(c2[5], [1.0, 2.0, 3.0])
    with pytest.raises(TypeError):
        c[6] = (0.0, 0.0, 0.0)  # type: ignore[index]
    conf = c.confidence
    conf[5] = 0.0
    assert c.confidence_of(5) == 0.5
    with pytest.raises(TypeError):
        hash(c)


@pytest.mark.parametrize(
    ("points", "confidence", "message"),
    [
        ({1: (1.0, 2.0)}, None, "3 coordinates, got 2"),
        ({1: (1.0, 2.0, 3.0, 4.0)}, None, "3 coordinates, got 4"),
        ({1: (1.0, np.nan, 3.0)}, None, "not finite"),
        ({1: (1.0, 2.0, np.inf)}, None, "not finite"),
        ({1: (1.0, 2.0, 3.0)}, {2: 0.9}, r"without a centroid: \[2\]"),
        ({1: (1.0, 2.0, 3.0)}, {1: float("nan")}, "not finite"),
        ([(1, (1.0, 2.0, 3.0)), (1, (4.0, 5.0, 6.0))], None, "two centroids given for label 1"),
        ({2.5: (1.0, 2.0, 3.0)}, None, "not an integer"),
    ],
)
def test_validation_errors(points, confidence, message):
    with pytest.raises(ValueError, match=message):
        Centroids(points, confidence)


def test_ras_round_trip_and_itk_convention():
    c = Centroids(POINTS, {20: 0.9, 25: 0.1})
    ras = c.ras()
    for k, p in POINTS.items():
        np.testing.assert_array_equal(ras[k], [-p[0], -p[1], p[2]])
    back = Centroids.from_ras(ras, c.confidence)
    assert back == c


def test_from_ras_matches_itk_on_real_data():
    """RAS mm written by nibabel for the real TotalSegmentator case, against SimpleITK's LPS of the same voxels."""
    mask = sitk.ReadImage(str(REAL_TS / "derived_vert_verse-labels.nii.gz"))
    voxel = json.loads((REAL_TS / "derived_vert_ctd.json").read_text())
    assert voxel[0] == {"direction": ["R", "A", "S"]}
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(mask.GetDirection()) == "RAS"
    world = json.loads((REAL_TS / "derived_vert_ctd_world.json").read_text())["centroids_world_RAS_mm"]
    c = Centroids.from_ras({int(k): v["ras_mm"] for k, v in world.items()})
    assert c.labels == [18, 19, 20, 21, 22, 23, 24, 26]
    for row in voxel[1:]:
        lps = mask.TransformContinuousIndexToPhysicalPoint([row["X"], row["Y"], row["Z"]])
        # The voxel file is rounded to 0.1 voxel (3 mm spacing): 0.15 mm per axis, the world file to 0.01 mm.
        np.testing.assert_allclose(c[row["label"]], lps, atol=0.16)


def test_subset_and_relabelled():
    c = Centroids(POINTS, {20: 0.9, 28: 0.4})
    s = c.subset([28, 20, 3])  # 3 is absent: ignored
    assert s.labels == [28, 20]
    assert s.confidence == {28: 0.4, 20: 0.9}
    np.testing.assert_array_equal(s[20], POINTS[20])

    # T13 -> L1, L1 -> L2, L6 -> L5 (a typical identification shift).
    r = c.relabelled({28: 20, 20: 21, 25: 24})
    assert r.labels == [19, 20, 21, 24]
    np.testing.assert_array_equal(r[20], POINTS[28])
    np.testing.assert_array_equal(r[21], POINTS[20])
    np.testing.assert_array_equal(r[24], POINTS[25])
    assert r.confidence == {20: 0.4, 21: 0.9}
    assert c.relabelled({}) == c

    with pytest.raises(ValueError, match="same label"):
        c.relabelled({28: 19})  # 28 onto the kept 19
    with pytest.raises(ValueError, match="same label"):
        c.relabelled({28: 5, 20: 5})


def test_equality():
    a = Centroids(POINTS, {20: 0.9})
    assert a == Centroids(dict(POINTS), {20: 0.9})
    assert a != Centroids(POINTS)  # confidence differs
    assert a != Centroids(POINTS, {20: 0.8})
    moved = dict(POINTS)
    moved[19] = (0.0, 0.0, 360.0 + 1e-9)
    assert a != Centroids(moved, {20: 0.9})
    assert a != a.subset([19, 20])
    assert a != dict(a)  # a Centroids is not equal to a plain dict
    assert (a == 3) is False


def test_array_and_mapping_protocol():
    c = Centroids(POINTS)
    arr = c.array()
    assert arr.shape == (4, 3)
    np.testing.assert_array_equal(arr, [POINTS[k] for k in (19, 28, 20, 25)])
    np.testing.assert_array_equal(c.array([25, 19]), [POINTS[25], POINTS[19]])
    assert c.array([]).shape == (0, 3)
    with pytest.raises(KeyError):
        c.array([1])
    assert 20 in c and 21 not in c and 20.5 not in c and "x" not in c
    assert c.get(21) is None and c.get(2.5) is None
    with pytest.raises(KeyError):
        c[21]
    assert c.confidence_of(20) is None
    r = repr(c)
    assert "T13" in r and "L6" in r and "300.25" in r
