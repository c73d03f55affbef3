"""Sacrum cue: the sacrum is found below L5, a free vertebra below L4, and names that contradict them are doubted.

The phantom's sacrum is fused bone below L5, so the truth is known; the cue sees only the CT and the chain.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from SpineSegLib import labels as L
from SpineSegLib.io import write_centroids
from SpineSegLib.labelmap import relabelled
from SpineSegLib.phantom import PhantomConfig, generate_phantom
from SpineSegLib.plausibility import review
from SpineSegLib.sacrum_cue import SacrumCue, sacrum_cue


@pytest.fixture(scope="module")
def lumbar():
    ph = generate_phantom(2, PhantomConfig(region="lumbar", spacing=(1.5, 1.5, 1.5), transitional="none"))
    chain = [lab for lab in L.anatomical_order(ph.body_centroids.labels) if lab in L.VERTEBRA_LABELS]
    assert chain[-1] == 24  # the phantom ends at L5, above the sacrum
    return ph, chain


def _renamed(mask: sitk.Image, ctd, keep: list[int], shift: int):
    """Mask and centroids of the vertebrae ``keep`` renamed ``shift`` levels (positive: towards the feet)."""
    mapping = {lab: lab + shift for lab in keep}
    img = relabelled(mask, mapping, others=0)
    return img, ctd.subset(keep).relabelled(mapping)


def test_the_sacrum_lies_below_l5_and_a_free_vertebra_below_l4(lumbar):
    ph, chain = lumbar
    cue = sacrum_cue(ph.image, ph.vertebra_labels, ph.body_centroids.subset(chain))
    assert cue == SacrumCue(24, "sacrum") and cue.contradiction() is None
    # The same image, the chain without L5 (a result that missed it): below L4 lies a free vertebra.
    cue = sacrum_cue(ph.image, ph.vertebra_labels, ph.body_centroids.subset(chain[:-1]))
    assert cue == SacrumCue(23, "vertebra") and cue.contradiction() is None
    assert "below L4 is in the image but not in the result" in cue.missed()


def test_a_result_that_stopped_early_is_incomplete_not_misnamed(lumbar):
    ph, chain = lumbar
    arr = sitk.GetArrayFromImage(ph.vertebra_labels)
    arr[arr >= 22] = 0  # the result stops at L2: L3-L5 are in the image, not in the result
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(ph.vertebra_labels)
    rev = review(ph.body_centroids.subset(chain[:-3]), mask, image=ph.image)
    assert rev.incomplete and not rev.identification_doubtful
    assert any(line.startswith("completeness: the vertebra below L2") for line in rev.case)
    assert rev.as_dict()["incomplete"] is True


def test_the_true_names_are_not_doubted(lumbar):
    ph, chain = lumbar
    rev = review(ph.body_centroids.subset(chain), ph.vertebra_labels, image=ph.image)
    assert not rev.identification_doubtful, rev.lines()
    assert rev.as_dict()["below_last"] == {"vertebra": "L5", "below": "sacrum"}


def test_l5_named_l4_above_the_sacrum_is_doubted(lumbar):
    ph, chain = lumbar
    mask, ctd = _renamed(ph.vertebra_labels, ph.body_centroids, chain, -1)  # L1..L5 named T12..L4
    cue = sacrum_cue(ph.image, mask, ctd)
    assert cue.label == 23 and "sacrum lies right below L4" in cue.contradiction()
    rev = review(ctd, mask, image=ph.image)
    assert rev.identification_doubtful and any(line.startswith("sacrum:") for line in rev.case)


def test_l4_named_l5_above_a_free_vertebra_is_doubted(lumbar):
    ph, chain = lumbar
    mask, ctd = _renamed(ph.vertebra_labels, ph.body_centroids, chain[:-1], +1)  # L1..L4 named L2..L5
    cue = sacrum_cue(ph.image, mask, ctd)
    assert cue.label == 24 and "free vertebra" in cue.contradiction()


def test_an_image_that_stops_below_the_last_vertebra_says_nothing(lumbar):
    ph, chain = lumbar
    ctd = ph.body_centroids.subset(chain)
    # Keep only the slices above a plane 20 mm below L5's centre (LPS: the feet are at -z).
    cut_z = float(ctd[24][2]) - 20.0
    z = np.array([ph.image.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(ph.image.GetSize()[2])])
    keep = np.flatnonzero(z >= cut_z)
    assert 0 < keep.size < z.size and np.all(np.diff(keep) == 1)
    part = slice(int(keep[0]), int(keep[-1]) + 1)
    cue = sacrum_cue(ph.image[:, :, part], ph.vertebra_labels[:, :, part], ctd)
    assert cue is not None and cue.below is None


def test_run_warns_when_vertebrae_in_the_image_are_left_out(lumbar, tmp_path):
    """`spineseg run` with points for L1 and L2 only: the review sees L3 below L2 and the CLI warns."""
    ph, _ = lumbar
    sitk.WriteImage(ph.image, str(tmp_path / "ct.nii.gz"))
    write_centroids(ph.body_centroids.subset([20, 21]), tmp_path / "ctd.mrk.json")
    args = [str(tmp_path / "ct.nii.gz"), "--centroids", str(tmp_path / "ctd.mrk.json"), "--stages", "segmentation"]
    r = subprocess.run(
        [sys.executable, "-m", "SpineSegLib", "run", *args, "-o", str(tmp_path / "out"), "--progress", "none"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "vertebrae in the image are missing" in r.stderr
    review_doc = json.loads(next((tmp_path / "out").glob("*_timings.json")).read_text())["review"]
    assert review_doc["incomplete"] and review_doc["below_last"] == {"vertebra": "L2", "below": "vertebra"}
    assert not review_doc["identification_doubtful"]
