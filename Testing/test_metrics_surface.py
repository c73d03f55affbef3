"""Surface distances (HD, HD95, ASSD) and Dice against MONAI and a brute-force reference."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from metrics_cases import image, monai_per_label, perturbed, random_labelmap
from monai.metrics.utils import get_mask_edges

from SpineSegLib.metrics import evaluate, surface_distances, surface_metrics, surface_voxels

SPACING_IJK = (0.7, 0.9, 2.0)  # anisotropic, i fastest
SAMPLING_KJI = SPACING_IJK[::-1]


def _brute_surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask with a 6-neighbour outside the mask or outside the array."""
    p = np.pad(mask, 1)
    inner = p[1:-1, 1:-1, 1:-1]
    all_in = inner.copy()
    for axis in range(3):
        for step in (-1, 1):
            all_in &= np.roll(p, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return inner & ~all_in


def _brute_distances(a: np.ndarray, b: np.ndarray, sampling) -> tuple[np.ndarray, np.ndarray]:
    pa = np.argwhere(_brute_surface(a)) * np.asarray(sampling)
    pb = np.argwhere(_brute_surface(b)) * np.asarray(sampling)
    d = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=2)  # all pairs
    return d.min(axis=1), d.min(axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_surface_voxels_equal_monai_edges_also_at_the_volume_border(seed):
    rng = np.random.default_rng(seed)
    arr = random_labelmap(rng, (14, 18, 16), [20, 21, 22])
    m = arr == 20  # cut by a volume face by construction
    assert m[0].any() or m[:, 0].any() or m[:, :, 0].any()
    other = arr == 21
    edges_m, edges_o = get_mask_edges(m, other, crop=False)
    np.testing.assert_array_equal(surface_voxels(m), edges_m)
    np.testing.assert_array_equal(surface_voxels(other), edges_o)
    np.testing.assert_array_equal(surface_voxels(m), _brute_surface(m))


@pytest.mark.parametrize("seed", range(4))
def test_distances_and_assd_equal_brute_force_all_pairs(seed):
    rng = np.random.default_rng(100 + seed)
    gt = random_labelmap(rng, (10, 14, 12), [5])
    pred = perturbed(rng, gt)  # single label: "shift" perturbation
    a, b = gt == 5, pred == 5
    assert a.any() and b.any() and not np.array_equal(a, b)
    ref_ab, ref_ba = _brute_distances(a, b, SAMPLING_KJI)
    for method in ("kdtree", "edt"):
        d_ab, d_ba = surface_distances(a, b, SAMPLING_KJI, method=method)
        np.testing.assert_allclose(d_ab, ref_ab, atol=1e-9)
        np.testing.assert_allclose(d_ba, ref_ba, atol=1e-9)
    s = surface_metrics(a, b, SAMPLING_KJI)
    assert s.assd == pytest.approx((ref_ab.sum() + ref_ba.sum()) / (ref_ab.size + ref_ba.size), abs=1e-9)
    assert s.hd == pytest.approx(max(ref_ab.max(), ref_ba.max()), abs=1e-9)
    assert s.hd95 == pytest.approx(max(np.percentile(ref_ab, 95), np.percentile(ref_ba, 95)), abs=1e-9)
    assert s.hd > 0


def test_hd95_is_the_larger_per_direction_percentile_not_the_pooled_one():
    # A cube with a 4-voxel peg: many peg surface voxels are far from the cube, none the other way.
    a = np.zeros((20, 20, 20), bool)
    a[5:15, 5:15, 5:15] = True
    b = a.copy()
    b[15:19, 8:12, 8:12] = True
    d_ab, d_ba = _brute_distances(a, b, (1.0, 1.0, 1.0))
    s = surface_metrics(a, b, (1.0, 1.0, 1.0))
    assert np.percentile(d_ab, 95) == 0.0
    assert s.hd95 == pytest.approx(np.percentile(d_ba, 95)) == pytest.approx(3.0)
    assert np.percentile(np.concatenate([d_ab, d_ba]), 95) == pytest.approx(1.0)  # pooled (panoptica): not ours
    assert s.hd == pytest.approx(4.0)


@pytest.mark.parametrize("seed", range(5))
def test_evaluate_matches_monai_dice_hd_hd95_assd_on_random_multilabel_volumes(seed):
    rng = np.random.default_rng(seed)
    gt = random_labelmap(rng, (22, 30, 26), [18, 19, 20, 21, 22, 23, 24])
    pred = perturbed(rng, gt, extra_label=25)
    ev = evaluate(image(pred, SPACING_IJK), image(gt, SPACING_IJK))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about the empty channels of absent labels
        ref = monai_per_label(gt, pred, SAMPLING_KJI)
    gt_labels = [int(v) for v in np.unique(gt) if v]
    both = [lab for lab in gt_labels if (pred == lab).any()]
    assert set(both) != set(gt_labels), "the case should have a missed vertebra"
    assert any(ev.per_vertebra[lab].hd > 0 for lab in both)
    for lab in gt_labels:
        assert ev.per_vertebra[lab].dice == pytest.approx(ref["dice"][lab], abs=1e-6)
    for lab in both:
        m = ev.per_vertebra[lab]
        assert m.hd == pytest.approx(ref["hd"][lab], abs=1e-4), lab
        assert m.hd95 == pytest.approx(ref["hd95"][lab], abs=1e-4), lab
        assert m.assd == pytest.approx(ref["assd"][lab], abs=1e-4), lab
    # the border-cut label (first one) is among the compared ones in most seeds; make sure one case has it
    touching = [lab for lab in both if (gt == lab)[[0, -1]].any() or (gt == lab)[:, [0, -1]].any()]
    touching += [lab for lab in both if (gt == lab)[:, :, [0, -1]].any()]
    if seed == 0:
        assert touching, "seed 0 must compare a label cut by the volume border"


def test_edt_and_kdtree_give_the_same_evaluation():
    rng = np.random.default_rng(7)
    gt = random_labelmap(rng, (20, 24, 24), [1, 2, 3, 4])
    pred = perturbed(rng, gt)
    a = evaluate(image(pred, SPACING_IJK), image(gt, SPACING_IJK), surface_method="kdtree")
    b = evaluate(image(pred, SPACING_IJK), image(gt, SPACING_IJK), surface_method="edt")
    for lab, m in a.per_vertebra.items():
        for key in ("hd", "hd95", "assd"):
            va, vb = getattr(m, key), getattr(b.per_vertebra[lab], key)
            assert (va is None and vb is None) or va == pytest.approx(vb, abs=1e-9)


def test_surface_distances_need_two_non_empty_masks():
    a = np.zeros((4, 4, 4), bool)
    b = a.copy()
    b[1, 1, 1] = True
    with pytest.raises(ValueError, match="non-empty"):
        surface_distances(a, b, (1, 1, 1))
    with pytest.raises(ValueError, match="method"):
        surface_distances(b, b, (1, 1, 1), method="chamfer")
