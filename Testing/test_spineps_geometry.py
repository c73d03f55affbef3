"""The SPINEPS method's geometry steps on a synthetic sagittal semantic mask with known vertebrae.

The mask is a column of vertebrae along axis 0 (inferior -> superior, as an LPS image's array):
each a body (border 49 around interior 50) with an arch (41) and spinous process (42) behind it,
discs (100) between the bodies, optionally the dens (51) on the top vertebra and the sacrum (26)
below the lowest. The instance predictions the network would give are simulated from the true
instances with errors (eroded, dilated, one cutout wrong), so the merge has something to fix.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from SpineSegLib.methods.spineps import semantic_ids as S
from SpineSegLib.methods.spineps.centres import corpus_centres
from SpineSegLib.methods.spineps.discs import level_mask
from SpineSegLib.methods.spineps.labelling import label_instances
from SpineSegLib.methods.spineps.merge import merge_predictions
from SpineSegLib.methods.spineps.postprocess import assign_orphans

SPACING = (1.0, 1.0, 1.0)
BODY_H, DISC_H = 14, 6


def spine(n: int, dens: bool = False, sacrum: bool = True, border_only: bool = False):
    """(semantic, true instances 1..n top to bottom) of an n-vertebra column."""
    height = 8 + n * (BODY_H + DISC_H) + 14
    sem = np.zeros((height, 60, 40), np.uint8)
    inst = np.zeros(sem.shape, np.uint16)
    k = height - 4  # top of the top body
    for i in range(1, n + 1):
        lo, hi = k - BODY_H, k
        body = (slice(lo, hi), slice(8, 30), slice(8, 32))
        sem[body] = S.CORPUS_BORDER
        if not border_only:
            sem[lo + 2 : hi - 2, 10:28, 10:30] = S.CORPUS
        sem[lo + 3 : hi - 3, 30:38, 12:28] = S.ARCUS
        sem[lo + 4 : hi - 4, 38:52, 17:23] = S.SPINOSUS
        inst[lo:hi, 8:52][np.isin(sem[lo:hi, 8:52], S.VERTEBRA_IDS)] = i
        if dens and i == 1:
            sem[hi : hi + 3, 15:22, 16:24] = S.DENS
            inst[hi : hi + 3, 15:22, 16:24] = 1
        if i < n:
            sem[lo - DISC_H : lo, 9:29, 9:31] = S.DISC
        k = lo - DISC_H
    if sacrum:
        sem[2 : k - 2, 8:30, 8:32] = S.SACRUM
    return sem, inst


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def simulated_predictions(inst: np.ndarray, rng: np.random.Generator, wrong: int | None = None):
    """Per centre rank c: slots above / at / below = the true vertebrae c-1, c, c+1, each off by one voxel."""
    n = int(inst.max())
    preds = {}
    for c in range(n):
        for slot, v in enumerate((c, c + 1, c + 2)):  # true ids are 1-based, top to bottom
            if not 1 <= v <= n:
                continue
            m = inst == v
            m = np.roll(m, rng.choice([-1, 1]), axis=int(rng.integers(3)))  # off by a voxel
            if wrong == c and slot == 1:  # this cutout's centre prediction swallows the vertebra below too
                m = m | (inst == v + 1)
            preds[(c, slot)] = m
    return preds


def test_corpus_centres_one_per_body_top_to_bottom_with_or_without_the_interior_class():
    for border_only in (False, True):
        sem, inst = spine(5, border_only=border_only)
        centres = corpus_centres(sem, SPACING)
        assert len(centres) == 5
        truth = [ndimage.center_of_mass(inst == i)[0] for i in range(1, 6)]
        assert np.all(np.diff([c[0] for c in centres]) < 0)  # top to bottom
        assert max(abs(c[0] - t) for c, t in zip(centres, truth)) < 3.0


@pytest.mark.parametrize("wrong", [None, 2])
def test_merge_recovers_each_vertebra_once(wrong):
    sem, inst = spine(6)
    preds = simulated_predictions(inst, np.random.default_rng(4), wrong)
    merged = merge_predictions(preds, SPACING)
    assert int(merged.max()) == 6
    single = np.mean([dice(m, inst == c + slot) for (c, slot), m in preds.items()])
    fused = [dice(merged == v, inst == v) for v in range(1, 7)]
    assert min(fused) > 0.9 and np.mean(fused) > single, (fused, single)


def test_merge_of_one_lone_prediction_and_of_nothing():
    sem, inst = spine(1, sacrum=False)
    merged = merge_predictions({(0, 1): inst == 1}, SPACING)
    assert np.array_equal(merged > 0, inst == 1)
    assert merge_predictions({(0, 1): np.zeros(inst.shape, bool)}, SPACING).max() == 0


def test_orphan_pieces_go_to_the_touching_vertebra_and_far_ones_leave_the_semantic_mask():
    sem, inst = spine(3)
    cut = inst.copy()
    spinous_2 = (inst == 2) & (sem == S.SPINOSUS)
    cut[spinous_2] = 0  # the cutout missed vertebra 2's spinous process
    sem2 = sem.copy()
    sem2[3:6, 52:58, 2:6] = S.ARCUS  # a speck touching no vertebra
    fixed, sem_out = assign_orphans(cut, sem2)
    assert np.all(fixed[spinous_2] == 2)
    assert np.all(sem_out[3:6, 52:58, 2:6] == 0)
    assert np.array_equal(fixed > 0, np.isin(sem_out, S.VERTEBRA_IDS))


def test_labels_count_from_the_dens_or_up_from_the_sacrum_and_flag_what_is_assumed():
    sem, inst = spine(4, dens=True, sacrum=False)
    lab = label_instances(inst, sem, SPACING)
    assert lab.ids == {1: 2, 2: 3, 3: 4, 4: 5} and not lab.review
    sem, inst = spine(5, sacrum=True)
    lab = label_instances(inst, sem, SPACING)
    assert lab.ids == {1: 20, 2: 21, 3: 22, 4: 23, 5: 24} and "sacrum" in lab.anchor and not lab.review
    sem, inst = spine(3, sacrum=False)
    lab = label_instances(inst, sem, SPACING)
    assert lab.ids == {1: 22, 2: 23, 3: 24} and lab.review


def test_a_25th_presacral_vertebra_is_named_l6_and_flagged():
    sem, inst = spine(24, dens=True, sacrum=True)
    lab = label_instances(inst, sem, SPACING)
    assert lab.ids[1] == 2 and lab.ids[24] == 25
    assert any("L6" in r for r in lab.review)


def test_discs_take_the_vertebra_above_and_endplates_the_vertebra_they_belong_to():
    sem, inst = spine(3, sacrum=False)
    top_plate = (inst == 2) & (sem == S.CORPUS_BORDER)
    top_plate &= np.arange(sem.shape[0])[:, None, None] == np.nonzero(top_plate.any(axis=(1, 2)))[0].max()
    sem[top_plate] = S.ENDPLATE
    out = level_mask(inst, sem, {1: 20, 2: 21, 3: 22}, SPACING)
    discs, n = ndimage.label(sem == S.DISC)
    assert n == 2
    got = sorted({int(np.unique(out[discs == i])[0]) for i in (1, 2)})
    assert got == [120, 121]
    assert np.all(out[top_plate] == 221)
    assert set(np.unique(out[inst == 3])) == {22}
