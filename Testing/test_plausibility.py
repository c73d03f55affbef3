"""Plausibility flags: a correct phantom result passes, the same result with the wrong level names is doubted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.io import read_centroids, write_centroids
from SpineSegLib.labelmap import relabelled
from SpineSegLib.phantom import PhantomConfig, generate_phantom
from SpineSegLib.plausibility import LEVEL_SPACING_MM, LEVEL_VOLUME_CM3, review


@pytest.fixture(scope="module")
def lumbar():
    return generate_phantom(5, PhantomConfig(region="lumbar", spacing=(1.5, 1.5, 1.5), transitional="none"))


def _relabelled(ph, shift: int):
    """The phantom's mask and body centroids with every vertebra renamed ``shift`` levels up (L1 -> ...)."""
    order = [lab for lab in L.anatomical_order(L.HEATMAP_LABELS) if lab not in L.TRANSITIONAL_LABELS]
    mapping = {lab: order[order.index(lab) - shift] for lab in ph.body_centroids.labels if lab in order}
    img = relabelled(ph.vertebra_labels, mapping, others=0)
    return img, ph.body_centroids.subset(mapping).relabelled(mapping)


def test_the_true_result_of_a_phantom_is_not_doubted(lumbar):
    rev = review(lumbar.body_centroids, lumbar.vertebra_labels)
    assert not rev.identification_doubtful
    assert rev.case == []
    assert 0.4 < rev.size_scale < 2.2 and 0.7 < rev.spacing_scale < 1.4


def test_lumbar_vertebrae_named_cervical_are_doubted(lumbar):
    """What the phantom-trained networks do on real lumbar CT: L1.. named C1..; sizes and spacing say so."""
    mask, centroids = _relabelled(lumbar, shift=19)  # L1 -> C1 (order without T13)
    assert L.name_of(centroids.labels[0]) == "C1"
    rev = review(centroids, mask)
    assert rev.identification_doubtful
    assert any(line.startswith("vertebra sizes") for line in rev.case)
    assert any(line.startswith("vertebra spacing") for line in rev.case)
    assert rev.size_scale > 2.2 and rev.spacing_scale > 1.4
    assert any("typical for C2" in f for f in rev.flags_of(2))
    # Without a mask (points only) the spacing alone still says so.
    assert review(centroids).identification_doubtful


def test_one_level_shift_within_a_region_is_not_claimed_to_be_seen(lumbar):
    """Sizes and spacing cannot tell L2 from L3: a one-level shift is no size flag (honest limits)."""
    mask, centroids = _relabelled(lumbar, shift=1)
    assert not review(centroids, mask).identification_doubtful


def test_one_odd_vertebra_is_flagged_against_its_neighbours(lumbar):
    arr = sitk.GetArrayFromImage(lumbar.vertebra_labels)
    l3 = L.id_of("L3")
    keep = arr == l3
    idx = np.argwhere(keep)
    arr[tuple(idx[: int(len(idx) * 0.7)].T)] = 0  # L3 loses 70 % of its voxels
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(lumbar.vertebra_labels)
    rev = review(lumbar.body_centroids, mask)
    assert not rev.identification_doubtful
    assert any("unusual next to its neighbours" in f for f in rev.flags_of(l3))
    assert all(not rev.flags_of(lab) for lab in lumbar.body_centroids.labels if lab != l3)


def test_counts_confidence_input_and_chain_flags():
    pts = {18: (0, 0, 60.0), 19: (0, 0, 33.0), 28: (0, 0, 7.0), 20: (0, 0, -20.0), 22: (0, 0, -85.0)}
    conf = {18: 0.9, 19: 0.1, 28: 0.8, 20: 0.9, 22: 0.9}
    rev = review(Centroids(pts, conf), input_warning="intensities do not look like CT")
    assert rev.case[0] == "input: intensities do not look like CT"
    assert any("gap: L1 is followed by L3" in line for line in rev.case)
    assert any("13th thoracic" in f for f in rev.flags_of(28))
    assert rev.flags_of(19) == ["weak heatmap response 0.10"]
    assert rev.flagged and rev.lines()[0].startswith("input:")
    assert rev.as_dict()["vertebrae"]["T12"] == ["weak heatmap response 0.10"]


def test_flags_travel_in_the_verse_centroid_file(tmp_path, lumbar):
    mask, centroids = _relabelled(lumbar, shift=19)
    rev = review(centroids, mask)
    path = write_centroids(centroids, tmp_path / "c_ctd.json", reference=mask, flags=rev.vertebrae)
    doc = json.loads(path.read_text())
    by_label = {e["label"]: e for e in doc[1:]}
    assert by_label[2]["flags"] == rev.flags_of(2)
    back = read_centroids(path, reference=mask)  # the extra key does not disturb readers
    assert back.labels == centroids.labels
    np.testing.assert_allclose(back.array(), centroids.array(), atol=1e-3)


def test_norm_tables_cover_every_heatmap_level():
    names = {L.name_of(lab) for lab in L.HEATMAP_LABELS}
    assert names == set(LEVEL_VOLUME_CM3)
    assert names - {"L6"} == set(LEVEL_SPACING_MM)
    # Sizes grow from the upper thoracic spine down to the lumbar spine, as in every adult.
    assert LEVEL_VOLUME_CM3["C4"] < LEVEL_VOLUME_CM3["T6"] < LEVEL_VOLUME_CM3["T12"] < LEVEL_VOLUME_CM3["L3"]


def test_a_vertebra_segmented_with_low_probability_is_flagged_and_the_value_kept():
    from SpineSegLib.centroids import Centroids
    from SpineSegLib.plausibility import UNCERTAIN_SEGMENTATION, review

    points = Centroids({20: [0.0, 0.0, 100.0], 21: [0.0, 0.0, 70.0], 22: [0.0, 0.0, 40.0]})
    rev = review(points, segmentation_confidence={20: 0.95, 21: UNCERTAIN_SEGMENTATION - 0.1, 22: 0.9})
    assert rev.flags_of(21) == ["uncertain segmentation (mean probability 0.65)"]
    assert rev.flags_of(20) == [] and rev.flags_of(22) == []
    assert rev.as_dict()["segmentation_probability"] == {"L1": 0.95, "L2": 0.65, "L3": 0.9}
