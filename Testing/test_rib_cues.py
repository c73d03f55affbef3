"""Rib cues: ribs are found where the phantom has them, names that contradict them are doubted.

The phantom generator gives every thoracic vertebra a pair of ribs (shorter on T1, T11 and T12) and no
other vertebra any, so the truth is known; the cue never sees the generator's rib geometry, only the CT.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SpineSegLib import labels as L
from SpineSegLib.cli import main
from SpineSegLib.cue_shift import anatomy_shift, rename_by_shift
from SpineSegLib.labelmap import relabelled
from SpineSegLib.phantom import PhantomConfig, generate_phantom
from SpineSegLib.plausibility import review
from SpineSegLib.rib_cues import contradictions, rib_cues

ORDER = [lab for lab in L.anatomical_order(L.HEATMAP_LABELS) if lab not in L.TRANSITIONAL_LABELS]


@pytest.fixture(scope="module")
def full():
    return generate_phantom(7, PhantomConfig(region="full", spacing=(2.0, 2.0, 2.0), transitional="none"))


@pytest.fixture(scope="module")
def cues(full):
    return rib_cues(full.image, full.vertebra_labels, full.body_centroids)


def _renamed(ph, shift: int, keep=None):
    """Mask and body centroids with every kept vertebra renamed ``shift`` levels (positive: towards the feet)."""
    keep = [lab for lab in ph.body_centroids.labels if lab in ORDER and (keep is None or lab in keep)]
    mapping = {lab: ORDER[ORDER.index(lab) + shift] for lab in keep}
    img = relabelled(ph.vertebra_labels, mapping, others=0)
    return img, ph.body_centroids.subset(mapping).relabelled(mapping)


def test_ribs_are_found_on_thoracic_vertebrae_and_nowhere_else(cues):
    assert set(cues) == {lab for lab in ORDER if lab <= 24}  # C1..L5, every vertebra of the phantom
    for lab, cue in cues.items():
        if L.region_of(lab) != "thoracic":
            assert not cue.any_rib, L.name_of(lab)
    sides = [side for lab in range(9, 19) for side in (cues[lab].left, cues[lab].right)]  # T2..T11
    assert sum(bool(s) for s in sides) >= 0.8 * len(sides)
    assert cues[19].any_rib  # the floating T12 rib is short, but reaches out of the transverse process
    assert contradictions(cues) == {}


def test_the_true_names_pass_the_review(full):
    rev = review(full.body_centroids, full.vertebra_labels, image=full.image)
    assert not rev.identification_doubtful, rev.lines()
    assert rev.suggested_shift is None
    assert rev.ribs and all(not c.any_rib for lab, c in rev.ribs.items() if L.region_of(lab) == "lumbar")
    assert rev.as_dict()["ribs"]["T6"] == {"left": rev.ribs[13].left, "right": rev.ribs[13].right}


def test_a_rib_bearing_t12_named_l1_is_doubted(full):
    # C1..T12 renamed one level towards the feet: T12 becomes "L1", T1 (short rib) becomes "T2".
    mask, ctd = _renamed(full, +1, keep=range(1, 20))
    found = contradictions(rib_cues(full.image, mask, ctd))
    assert 20 in found and "rib attaches" in found[20]
    rev = review(ctd, mask, image=full.image)
    assert rev.identification_doubtful
    assert any(line.startswith("ribs:") for line in rev.case)
    assert rev.flags_of(20)
    # Only one renaming of up to 3 levels agrees with every rib found: one level back towards the head.
    assert rev.suggested_shift == -1 and rev.as_dict()["suggested_shift"] == -1
    assert any("moved 1 level towards the head (C2-L1 would be C1-T12)" in line for line in rev.case)


def test_lumbar_vertebrae_named_thoracic_are_doubted(full):
    # T3..L5 renamed two levels towards the head: L1 becomes "T11", and rib-free vertebrae run below it.
    mask, ctd = _renamed(full, -2, keep=range(10, 25))
    found = contradictions(rib_cues(full.image, mask, ctd))
    assert 18 in found and "no rib" in found[18]  # L1 named T11
    assert review(ctd, mask, image=full.image).identification_doubtful


def test_a_field_of_view_without_the_ribs_says_nothing(full):
    # Only the spinal column's width is kept: the ribs' lateral band is outside the image.
    ctd = full.body_centroids
    width = 50.0
    image = full.image
    lo = image.TransformPhysicalPointToIndex((float(np.mean([p[0] for p in ctd.values()])) - width, 0.0, 0.0))[0]
    lo = max(0, min(lo, image.GetSize()[0] - 1))
    hi = min(image.GetSize()[0], lo + int(2 * width / image.GetSpacing()[0]))
    start, stop = sorted((lo, hi))
    crop = image[start:stop, :, :]
    mask = full.vertebra_labels[start:stop, :, :]
    cues = rib_cues(crop, mask, ctd)
    assert cues and all(c.left is None and c.right is None for c in cues.values())
    assert contradictions(cues) == {}


def test_no_rib_cue_without_hounsfield_units_or_image(full):
    mask, ctd = _renamed(full, +1, keep=range(1, 20))
    assert review(ctd, mask).ribs == {}
    warned = review(ctd, mask, image=full.image, input_warning="intensities do not look like CT")
    assert warned.ribs == {} and not any(line.startswith("ribs:") for line in warned.case)


def test_measure_reports_the_rib_cues(full, tmp_path):
    image, labels = tmp_path / "ct.nii.gz", tmp_path / "msk.nii.gz"
    sitk.WriteImage(full.image, str(image))
    sitk.WriteImage(full.vertebra_labels, str(labels))
    out = tmp_path / "m.json"
    args = ["measure", "--labels", str(labels), "--image", str(image), "--json", str(out)]
    assert main(args) == 0
    ribs = json.loads(out.read_text())["review"]["ribs"]
    assert ribs["L3"] == {"left": False, "right": False}
    assert ribs["T12"]["left"] or ribs["T12"]["right"]


def test_the_renaming_the_ribs_ask_for_restores_the_true_names(full):
    mask, ctd = _renamed(full, +1, keep=range(1, 20))  # C1..T12 named C2..L1
    shift = anatomy_shift(full.image, mask, ctd)
    assert shift == -1
    back_mask, back_ctd, mapping = rename_by_shift(mask, ctd, shift)
    assert mapping == {lab + 1: lab for lab in range(1, 20)}
    truth = sitk.GetArrayFromImage(full.vertebra_labels)
    truth[truth > 19] = 0  # the lumbar vertebrae were left out of the renamed chain
    assert np.array_equal(sitk.GetArrayFromImage(back_mask), truth)
    assert back_ctd.labels == list(range(1, 20))
    assert anatomy_shift(full.image, full.vertebra_labels, full.body_centroids) is None
