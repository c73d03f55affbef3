"""Per-vertebra evaluation: overlap, identification, missing/extra/unknown labels, errors, outputs, real VerSe."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from metrics_cases import image, perturbed, random_labelmap
from scipy import ndimage

from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.errors import SpineSegError
from SpineSegLib.geometry import Grid, grid_with_spacing, resample_to_grid
from SpineSegLib.labelmap import label_centroids
from SpineSegLib.metrics import (
    evaluate,
    identification_rate,
    identified,
    overlap_counts,
    point_errors,
    resample_prediction,
    surface_metrics,
)

VERSE = Path(__file__).parent / "data" / "real" / "verse_masks_only_no_ct"
VERSE010 = VERSE / "IndVertSeg_VerSe" / "sub-verse010_seg-vert_msk.nii.gz"
SPACING = (0.8, 0.8, 1.5)


# ----------------------------------------------------------------------------------------
# Overlap


def test_dice_fnd_fpd_from_counts_and_their_identity():
    rng = np.random.default_rng(0)
    gt = rng.random((12, 13, 14)) < 0.3
    pred = rng.random((12, 13, 14)) < 0.25
    c = overlap_counts(gt, pred)
    tp, fp, fn = int((gt & pred).sum()), int((~gt & pred).sum()), int((gt & ~pred).sum())
    assert (c.tp, c.fp, c.fn) == (tp, fp, fn)
    denom = 2 * tp + fp + fn
    assert c.dice == pytest.approx(2 * tp / denom)
    assert c.fnd == pytest.approx(2 * fn / denom) and c.fpd == pytest.approx(2 * fp / denom)
    assert c.dice + (c.fnd + c.fpd) / 2 == pytest.approx(1.0)
    assert c.iou == pytest.approx(tp / (tp + fp + fn))
    missed = overlap_counts(gt, None)
    assert (missed.dice, missed.fnd, missed.fpd) == (0.0, 2.0, 0.0)
    extra = overlap_counts(None, pred)
    assert (extra.dice, extra.fnd, extra.fpd) == (0.0, 0.0, 2.0)


def test_evaluate_dice_identity_and_means_on_random_volume():
    rng = np.random.default_rng(3)
    gt = random_labelmap(rng, (20, 26, 24), [8, 9, 10, 11, 12, 13, 14])
    pred = perturbed(rng, gt, extra_label=15)
    ev = evaluate(image(pred, SPACING), image(gt, SPACING))
    gt_labels = [int(v) for v in np.unique(gt) if v]
    for lab, m in ev.per_vertebra.items():
        assert m.dice + (m.fnd + m.fpd) / 2 == pytest.approx(1.0)
        assert m.gt_voxels == int((gt == lab).sum()) and m.pred_voxels == int((pred == lab).sum())
    s = ev.summary
    assert s.n_gt == len(gt_labels)
    assert s.dice_mean == pytest.approx(np.mean([ev.per_vertebra[v].dice for v in gt_labels]))
    both = [v for v in gt_labels if (pred == v).any()]
    assert s.hd_mean == pytest.approx(np.mean([ev.per_vertebra[v].hd for v in both]))
    fg_g, fg_p = gt > 0, pred > 0
    assert s.dice_global == pytest.approx(2 * (fg_g & fg_p).sum() / (fg_g.sum() + fg_p.sum()))


# ----------------------------------------------------------------------------------------
# Identification and point error


def _column(n: int, step_mm: float = 30.0, first: int = 1) -> Centroids:
    return Centroids({first + k: (0.0, 0.0, -step_mm * k) for k in range(n)})


def test_identification_threshold_is_20_mm_inclusive():
    gt = _column(3)
    pred = Centroids({1: gt[1] + (19.9, 0, 0), 2: gt[2] + (20.1, 0, 0), 3: gt[3] + (0, 20.0, 0)})
    assert identified(pred, gt) == {1: True, 2: False, 3: True}
    assert point_errors(pred, gt) == pytest.approx({1: 19.9, 2: 20.1, 3: 20.0})
    assert identification_rate(pred, gt) == pytest.approx(2 / 3)
    assert identified(pred, gt, threshold_mm=25.0) == {1: True, 2: True, 3: True}


def test_labels_shifted_by_one_are_not_identified_even_when_within_20_mm():
    gt = _column(5, step_mm=15.0)  # vertebrae 15 mm apart: the shifted point is within 20 mm of its label
    shifted = Centroids({lab + 1: p for lab, p in gt.items()})  # every point labelled one level too low
    ids = identified(shifted, gt)
    assert not any(ids.values())
    assert point_errors(shifted, gt)[2] == pytest.approx(15.0)  # 15 mm < 20 mm, rejected by the closer GT


def test_another_ground_truth_centroid_closer_means_not_identified():
    gt = _column(2, step_mm=24.0)
    # 13 mm from its own label (within 20 mm) but 11 mm from the next one.
    pred = Centroids({1: gt[1] + (0, 0, -13.0), 2: gt[2]})
    assert identified(pred, gt) == {1: False, 2: True}
    # on the bisector: a tie counts as identified
    pred = Centroids({1: gt[1] + (0, 0, -12.0)})
    assert identified(pred, gt) == {1: True, 2: False}


def test_evaluate_identification_with_given_centroids_and_pe():
    rng = np.random.default_rng(5)
    gt = random_labelmap(rng, (18, 24, 22), [20, 21, 22])
    gt_img = image(gt, SPACING, origin=(10.0, -5.0, 30.0))
    gt_ctd = label_centroids(gt_img)
    moved = Centroids({lab: p + (3.0, 4.0, 0.0) for lab, p in gt_ctd.items()})
    ev = evaluate(gt_img, gt_img, pred_centroids=moved, gt_centroids=gt_ctd)
    for lab in gt_ctd:
        assert ev.per_vertebra[lab].pe_mm == pytest.approx(5.0)
        assert ev.per_vertebra[lab].dice == 1.0 and ev.per_vertebra[lab].hd == 0.0
    # localisation is judged on the given centroids, even for a vertebra the mask missed
    no21 = image(np.where(gt == 21, 0, gt).astype(np.uint8), SPACING, origin=(10.0, -5.0, 30.0))
    ev = evaluate(no21, gt_img, pred_centroids=moved, gt_centroids=gt_ctd)
    m21 = ev.per_vertebra[21]
    assert (m21.dice, m21.in_pred, m21.hd, m21.identified) == (0.0, False, None, True)
    assert m21.pe_mm == pytest.approx(5.0)
    ev = evaluate(no21, gt_img, pred_centroids=moved.subset([20, 22]), gt_centroids=gt_ctd)
    assert ev.per_vertebra[21].pe_mm is None and not ev.per_vertebra[21].identified
    far = Centroids({lab: p + (0.0, 0.0, 25.0) for lab, p in gt_ctd.items()})
    ev = evaluate(gt_img, gt_img, pred_centroids=far, gt_centroids=gt_ctd)
    assert ev.summary.id_rate == 0.0 and ev.summary.pe_mean_mm == pytest.approx(25.0)


def test_mask_centroids_used_when_none_given_equal_label_centroids():
    rng = np.random.default_rng(8)
    gt = random_labelmap(rng, (18, 24, 22), [1, 2, 3, 4])
    pred = perturbed(rng, gt)
    direction = sitk.VersorRigid3DTransform((0.1, 0.2, 0.3, 0.9)).GetMatrix()
    gi = image(gt, SPACING, origin=(1.0, 2.0, 3.0), direction=direction)
    pi = image(pred, SPACING, origin=(1.0, 2.0, 3.0), direction=direction)
    implicit = evaluate(pi, gi)
    explicit = evaluate(pi, gi, label_centroids(pi), label_centroids(gi))
    assert implicit.per_vertebra.keys() == explicit.per_vertebra.keys()
    for lab, m in implicit.per_vertebra.items():
        e = explicit.per_vertebra[lab]
        assert (m.pe_mm is None) == (e.pe_mm is None)
        if m.pe_mm is not None:
            assert m.pe_mm == pytest.approx(e.pe_mm, abs=1e-9)
        assert m.identified == e.identified


def test_gt_centroids_lacking_a_mask_label_fall_back_to_the_mask_with_a_warning():
    rng = np.random.default_rng(9)
    gt = random_labelmap(rng, (18, 24, 22), [20, 21])
    gi = image(gt, SPACING)
    ctd = label_centroids(gi)
    with pytest.warns(UserWarning, match="lack"):
        ev = evaluate(gi, gi, gt_centroids=ctd.subset([20]))
    assert ev.summary.id_rate == 1.0


# ----------------------------------------------------------------------------------------
# Missing, extra, unknown labels; errors


def test_missing_and_extra_vertebrae():
    rng = np.random.default_rng(11)
    gt = random_labelmap(rng, (18, 24, 22), [20, 21, 22])
    pred = np.where(gt == 21, 0, gt).astype(np.uint8)  # L2 missed
    pred[1:3, 1:3, 1:3] = 25  # L6 only in the prediction
    pred[gt == 22] = 22
    ev = evaluate(image(pred, SPACING), image(gt, SPACING))
    assert list(ev.per_vertebra) == L.anatomical_order([20, 21, 22, 25])
    miss = ev.per_vertebra[21]
    assert (miss.dice, miss.fnd, miss.fpd, miss.identified) == (0.0, 2.0, 0.0, False)
    assert miss.hd is None and miss.hd95 is None and miss.assd is None and miss.pe_mm is None
    assert miss.in_gt and not miss.in_pred
    extra = ev.per_vertebra[25]
    assert (extra.dice, extra.fpd, extra.in_gt, extra.in_pred) == (0.0, 2.0, False, True)
    s = ev.summary
    assert (s.n_gt, s.n_pred, s.n_missed, s.n_extra) == (3, 3, 1, 1)
    assert s.dice_mean == pytest.approx((1.0 + 0.0 + 1.0) / 3)  # over GT only, missed = 0
    assert s.hd_mean == 0.0 and s.n_surface == 2  # missed vertebra excluded
    assert s.id_rate == pytest.approx(2 / 3)
    assert (s.panoptic_tp, s.panoptic_fp, s.panoptic_fn) == (2, 1, 1)
    js = json.loads(json.dumps(ev.to_json()))
    assert js["per_vertebra"]["L2"]["hd"] is None and js["per_vertebra"]["L2"]["identified"] is False


def test_ignore_leaves_levels_out_of_masks_and_centroids():
    """``ignore=``: the same numbers as evaluating copies with those levels zeroed and dropped."""
    rng = np.random.default_rng(13)
    gt = random_labelmap(rng, (18, 24, 22), [20, 21, 22, 26])
    pred = perturbed(rng, gt)
    pred[gt == 26] = 0  # the sacrum: in the ground truth only (no CT pipeline channel)
    gt_img, pred_img = image(gt, SPACING), image(pred, SPACING)
    gt_ctd = label_centroids(gt_img)
    pred_ctd = Centroids({lab: p + 1.5 for lab, p in label_centroids(pred_img).items()})
    ev = evaluate(pred_img, gt_img, pred_ctd, gt_ctd, ignore=[21, 26, 7])  # C7: in neither, not listed
    assert ev.not_scored == [21, 26]
    assert 21 not in ev.per_vertebra and 26 not in ev.per_vertebra
    keep = [20, 22]
    zeroed = [image(np.where(np.isin(a, keep), a, 0).astype(np.uint8), SPACING) for a in (pred, gt)]
    direct = evaluate(*zeroed, pred_ctd.subset(keep), gt_ctd.subset(keep))
    assert direct.not_scored == []
    assert ev.to_json()["summary"] == direct.to_json()["summary"]
    assert ev.to_json()["not_scored"] == ["L2", "S"] and "not scored: L2, S" in ev.table()
    assert evaluate(pred_img, gt_img).summary.n_gt == 4  # inputs unchanged


def test_empty_prediction_is_legal_everything_missed():
    gt = random_labelmap(np.random.default_rng(12), (14, 16, 16), [1, 2])
    ev = evaluate(image(np.zeros_like(gt), SPACING), image(gt, SPACING))
    s = ev.summary
    assert s.dice_mean == 0.0 and s.id_rate == 0.0 and s.pq == 0.0 and s.n_pred == 0
    assert s.hd_mean is None and s.pe_mean_mm is None and s.dice_global == 0.0
    assert "-" in ev.table()


def test_unknown_labels_warn_and_are_ignored():
    rng = np.random.default_rng(13)
    gt = random_labelmap(rng, (18, 24, 22), [20, 21, 22])
    pred = perturbed(rng, gt)
    clean = evaluate(image(pred, SPACING), image(gt, SPACING))
    gt_x, pred_x = gt.copy(), pred.copy()
    gt_x[0:2, 0:2, 0:2] = 100  # e.g. a SPINEPS disc id
    pred_x[-2:, -2:, -2:] = 41
    with pytest.warns(UserWarning) as rec:
        dirty = evaluate(image(pred_x, SPACING), image(gt_x, SPACING))
    text = " ".join(str(w.message) for w in rec)
    assert "[100]" in text and "[41]" in text and "ignored" in text
    assert dirty.ignored_labels == {"gt": [100], "pred": [41]}
    assert dirty.per_vertebra.keys() == clean.per_vertebra.keys()
    for lab, m in clean.per_vertebra.items():
        d = dirty.per_vertebra[lab]
        assert (d.dice, d.hd, d.hd95, d.assd) == (m.dice, m.hd, m.hd95, m.assd)
    assert dirty.summary.pq == clean.summary.pq


def test_out_of_range_and_signed_label_values_warn():
    gt = random_labelmap(np.random.default_rng(14), (12, 14, 14), [3, 4]).astype(np.int32)
    gt[0, 0, 0] = -1
    gt[0, 0, 1] = 70000
    with pytest.warns(UserWarning, match=r"\[-1, 70000\]"):
        ev = evaluate(image(gt), image(gt))
    assert ev.summary.dice_mean == 1.0


def test_empty_or_unlabelled_ground_truth_is_a_clear_error():
    z = np.zeros((8, 9, 10), np.uint8)
    with pytest.raises(SpineSegError, match="ground truth mask has no labels"):
        evaluate(image(z), image(z))
    z2 = z.copy()
    z2[1:3, 1:3, 1:3] = 60
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SpineSegError, match=r"no labels \(only ids \[60\]"):
            evaluate(image(z), image(z2))


def test_mismatched_grids_error_names_both_and_resampling_helper_fixes_it():
    rng = np.random.default_rng(15)
    gt = random_labelmap(rng, (12, 16, 14), [20, 21])
    gi = image(gt, (1.0, 1.0, 2.0), origin=(5.0, 6.0, 7.0))
    fine = resample_to_grid(gi, grid_with_spacing(Grid.of(gi), (0.5, 0.5, 1.0)), interpolator="nearest")
    with pytest.raises(SpineSegError) as exc:
        evaluate(fine, gi)
    msg = str(exc.value)
    assert "different grids" in msg and "[0.5, 0.5, 1.0]" in msg and "[1.0, 1.0, 2.0]" in msg
    assert "[28, 32, 24]" in msg and "[14, 16, 12]" in msg
    ev = evaluate(resample_prediction(fine, gi), gi)
    assert all(m.dice == 1.0 and m.hd == 0.0 for m in ev.per_vertebra.values())


def test_float64_mask_is_rounded_and_equals_its_uint8_copy():
    f64 = sitk.ReadImage(str(VERSE / "anjany_verse_sample" / "sub-verse004_seg-vert_msk.nii.gz"))
    u8 = sitk.ReadImage(str(VERSE / "IndVertSeg_VerSe" / "sub-verse004_seg-vert_msk.nii.gz"))
    assert f64.GetPixelID() == sitk.sitkFloat64
    ev = evaluate(f64, u8)
    assert [m.name for m in ev.per_vertebra.values()] == ["T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    assert all(
        m.dice == 1.0 and m.hd == 0.0 and m.pe_mm == pytest.approx(0.0, abs=1e-9) for m in ev.per_vertebra.values()
    )
    assert ev.summary.pq == 1.0 and ev.summary.id_rate == 1.0


# ----------------------------------------------------------------------------------------
# Real VerSe mask against a perturbed copy


def test_real_verse010_eroded_and_relabelled_vertebra_gives_the_expected_pattern():
    gt = sitk.ReadImage(str(VERSE010))
    a = sitk.GetArrayFromImage(gt)
    l3 = a == 22
    eroded = ndimage.binary_erosion(l3)
    pred = a.copy()
    pred[l3 & ~eroded] = 0  # L3 one voxel thinner
    pred[a == 24] = 25  # L5 labelled L6
    p_img = sitk.GetImageFromArray(pred)
    p_img.CopyInformation(gt)
    ev = evaluate(p_img, gt)
    pv = ev.per_vertebra
    assert list(pv) == [20, 21, 22, 23, 24, 25]
    for lab in (20, 21, 23):  # untouched
        assert (pv[lab].dice, pv[lab].hd, pv[lab].hd95, pv[lab].assd, pv[lab].identified) == (1.0, 0.0, 0.0, 0.0, True)
        assert pv[lab].pe_mm == pytest.approx(0.0, abs=1e-9)
    m3 = pv[22]
    n3, n3e = int(l3.sum()), int(eroded.sum())
    assert m3.dice == pytest.approx(2 * n3e / (n3 + n3e))
    assert m3.fpd == 0.0 and m3.fnd == pytest.approx(2 * (n3 - n3e) / (n3 + n3e))
    assert m3.identified and 0 < m3.pe_mm < 2.5
    box = ndimage.find_objects(l3.astype(np.uint8))[0]
    ref = surface_metrics(l3[box], eroded[box], gt.GetSpacing()[::-1], method="edt")
    assert (m3.hd, m3.hd95, m3.assd) == pytest.approx((ref.hd, ref.hd95, ref.assd))
    assert m3.hd >= 1.0 and m3.hd95 >= 1.0  # at 1 mm, every GT surface voxel moved by >= 1 voxel
    assert (pv[24].dice, pv[24].in_pred, pv[24].identified, pv[24].hd) == (0.0, False, False, None)
    assert (pv[25].dice, pv[25].fpd, pv[25].in_gt) == (0.0, 2.0, False)
    s = ev.summary
    assert s.dice_mean == pytest.approx((3.0 + m3.dice) / 5)
    assert s.id_rate == pytest.approx(4 / 5) and s.n_identified == 4
    # L5 -> L6 keeps its voxels: a matched instance for PQ (ids are not compared)
    iou3 = n3e / n3
    assert (s.panoptic_tp, s.panoptic_fp, s.panoptic_fn) == (5, 0, 0)
    assert s.sq == pytest.approx((4.0 + iou3) / 5) and s.rq == 1.0
    n_fg = int((a > 0).sum())
    assert s.dice_global == pytest.approx(2 * (n_fg - (n3 - n3e)) / (2 * n_fg - (n3 - n3e)))


def test_real_verse010_labelled_one_level_off_is_not_identified_but_keeps_pq():
    gt = sitk.ReadImage(str(VERSE010))
    a = sitk.GetArrayFromImage(gt)
    shifted = np.where(a > 0, a + 1, 0).astype(np.uint8)  # L1..L5 labelled L2..L6
    p_img = sitk.GetImageFromArray(shifted)
    p_img.CopyInformation(gt)
    ev = evaluate(p_img, gt)
    gt_ctd = label_centroids(gt)
    for lab in range(20, 25):
        m = ev.per_vertebra[lab]
        assert not m.identified and m.dice == 0.0
        if lab > 20:  # its predicted centroid is the ground-truth centroid of the level above
            assert m.pe_mm == pytest.approx(float(np.linalg.norm(gt_ctd[lab] - gt_ctd[lab - 1])), abs=1e-6)
    assert ev.per_vertebra[20].pe_mm is None and ev.per_vertebra[25].in_pred
    s = ev.summary
    assert s.id_rate == 0.0 and s.dice_mean == 0.0 and s.dice_global == 1.0
    assert (s.pq, s.rq, s.sq) == (1.0, 1.0, 1.0)  # PQ matches instances by IoU, not by id


# ----------------------------------------------------------------------------------------
# Outputs


def test_json_csv_and_table_outputs(tmp_path):
    rng = np.random.default_rng(21)
    gt = random_labelmap(rng, (18, 24, 22), [19, 28, 20, 21])
    pred = perturbed(rng, gt, extra_label=25)
    ev = evaluate(image(pred, SPACING), image(gt, SPACING))
    js = json.loads(json.dumps(ev.to_json()))  # plain JSON types only
    names = list(js["per_vertebra"])
    assert {19, 28, 20} <= set(ev.per_vertebra)
    assert names == [L.name_of(v) for v in L.anatomical_order(ev.per_vertebra)]
    assert names.index("T13") == names.index("T12") + 1 == names.index("L1") - 1  # T13 between T12 and L1
    for row in js["per_vertebra"].values():
        assert {"dice", "fnd", "fpd", "hd", "hd95", "assd", "pe_mm", "identified"} <= set(row)
    required = {"dice_mean", "hd_mean", "hd95_mean", "assd_mean", "pe_mean_mm", "id_rate", "pq", "sq", "rq", "n_gt"}
    assert required <= set(js["summary"])
    assert js["summary"]["dice_mean"] == pytest.approx(ev.summary.dice_mean)

    text = ev.to_csv()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows] == names
    for r in rows:
        m = ev.per_vertebra[int(r["label"])]
        assert float(r["dice"]) == pytest.approx(m.dice, abs=1e-6)
        assert (r["hd"] == "") == (m.hd is None)
    out = tmp_path / "metrics.csv"
    assert ev.to_csv(out) == out.read_text()
    buf = io.StringIO()
    ev.to_csv(buf)
    assert buf.getvalue() == text

    table = ev.table()
    for name in names:
        assert any(line.startswith(name) for line in table.splitlines())
    assert "identification rate" in table and "PQ" in table and "missed vertebrae excluded" in table
