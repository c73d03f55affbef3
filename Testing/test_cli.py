"""The ``spineseg`` command line: phantom, evaluate and run, with their outputs read back and bad input refused.

Commands run in-process through ``SpineSegLib.cli.main`` (output captured with capsys); a few run
as a user runs them (``python -m SpineSegLib``) to show the exit code 2 without a traceback.
``spineseg run`` uses the tiny hand-set model set of :mod:`slicer_fixtures` (``SPINESEG_RESOURCES``)
on its synthetic lumbar CT, where those models find L1..L5 at the true body centres.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage
from slicer_fixtures import LUMBAR, assert_segments_inside_truth, synthetic_lumbar_ct, write_tiny_resources

from SpineSegLib import bids
from SpineSegLib import labels as L
from SpineSegLib.centroids import Centroids
from SpineSegLib.cli import main
from SpineSegLib.geometry import Grid, orientation_code
from SpineSegLib.io import read_centroids, read_image, read_labelmap, write_centroids, write_image, write_labelmap
from SpineSegLib.metrics import evaluate
from SpineSegLib.phantom import PhantomConfig, generate_phantom
from SpineSegLib.pipeline.checks import ct_intensity_warning

REPO = Path(__file__).resolve().parent.parent
BONE_SUBREGIONS = (26, 41, 42, 43, 44, 45, 46, 47, 48, 49)


def cli(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``spineseg ARGS`` run in-process."""
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def subprocess_cli(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "SpineSegLib", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",  # the CLI's progress bars, whatever the test process's locale
        errors="replace",
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def assert_one_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit code 2, no traceback, and the last stderr line is the error naming every needle."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("spineseg: error: ")
    for needle in needles:
        assert needle in proc.stderr


def arrays_and_grid(path: Path) -> tuple[np.ndarray, Grid]:
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), Grid.of(img)


def label_at(labels: sitk.Image, point: np.ndarray) -> int:
    """The label of the voxel that holds ``point`` (LPS mm)."""
    i, j, k = np.rint(Grid.of(labels).physical_to_index(point)[0]).astype(int)
    return int(sitk.GetArrayViewFromImage(labels)[k, j, i])


# ----------------------------------------------------------------------------------------
# spineseg phantom


def test_phantom_writes_the_verse_layout_with_consistent_labels_and_centroids(tmp_path, capsys):
    rc, out, _ = cli(capsys, "phantom", "-o", tmp_path, "--seed", 3, "--region", "lumbar", "--spacing", 2.5, 2, 3)
    assert rc == 0
    p = bids.case_paths(tmp_path, "phantom0003", "ct")
    written = sorted(str(f.relative_to(tmp_path)) for f in tmp_path.rglob("*") if f.is_file())
    assert written == sorted(
        str(f.relative_to(tmp_path)) for f in (p.image, p.vertebra_mask, p.subregion_mask, p.centroids, p.sidecar)
    )
    assert p.image.name == "sub-phantom0003_ct.nii.gz" and p.image.parent == tmp_path / "rawdata" / "sub-phantom0003"
    assert p.centroids.name == "sub-phantom0003_seg-subreg_ctd.json"
    assert out.strip() == str(p.image)

    image = read_image(p.image)
    assert image.GetSpacing() == pytest.approx((2.5, 2.0, 3.0))
    assert image.GetPixelID() == sitk.sitkInt16 and ct_intensity_warning(image) is None  # HU: air and bone
    vert, sub = read_labelmap(p.vertebra_mask), read_labelmap(p.subregion_mask)
    assert Grid.of(vert).same_as(Grid.of(image)) and Grid.of(sub).same_as(Grid.of(image))
    v, s = sitk.GetArrayFromImage(vert), sitk.GetArrayFromImage(sub)
    present = set(np.unique(v).tolist()) - {0}
    assert {20, 21, 22, 23, 24, 26} <= present <= set(range(18, 27))  # lumbar field of view: (T11/T12) L1-L5, S
    # Labelled vertebrae are exactly the bone subregions (discs, canal and cord are subregions only).
    np.testing.assert_array_equal(v > 0, np.isin(s, BONE_SUBREGIONS))

    ctd = read_centroids(p.centroids, reference=image)
    assert ctd.labels == L.anatomical_order(present)
    for lab, point in ctd.items():
        assert label_at(vert, point) == lab, L.name_of(lab)  # a body centre lies in its own vertebra

    meta = json.loads(p.sidecar.read_text())
    assert meta["seed"] == 3 and meta["config"]["region"] == "lumbar" and meta["config"]["spacing"] == [2.5, 2, 3]
    assert meta["labelled"] == ctd.labels
    grid = Grid.of(vert)
    for key, point in meta["whole_vertebra_centroids_lps_mm"].items():
        com = grid.index_to_physical(np.asarray(ndimage.center_of_mass(v == int(key)))[::-1])[0]
        np.testing.assert_allclose(point, com, atol=1e-3)


def test_phantom_mr_writes_t2w_images(tmp_path, capsys):
    rc, _, _ = cli(capsys, "phantom", "-o", tmp_path, "--modality", "mr", "--region", "lumbar", "--spacing", 3, 3, 3)
    assert rc == 0
    p = bids.case_paths(tmp_path, "phantom0000", "mr")
    assert p.image.name == "sub-phantom0000_T2w.nii.gz" and p.image.is_file()
    assert not list(tmp_path.rglob("*_ct.nii.gz"))
    assert p.vertebra_mask.is_file() and p.subregion_mask.is_file() and p.centroids.is_file() and p.sidecar.is_file()
    mr = read_image(p.image)
    assert mr.GetPixelID() == sitk.sitkUInt16
    assert ct_intensity_warning(mr) is not None  # arbitrary non-negative units, not HU
    assert Grid.of(read_labelmap(p.vertebra_mask)).same_as(Grid.of(mr))


def _tree_contents(root: Path) -> dict[str, object]:
    """Every file of a tree: images as (array, grid), text files as text."""
    out: dict[str, object] = {}
    for f in sorted(root.rglob("*")):
        if f.is_file():
            out[str(f.relative_to(root))] = arrays_and_grid(f) if f.name.endswith(".nii.gz") else f.read_text()
    return out


def _assert_same_tree(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key, value in a.items():
        if isinstance(value, tuple):
            np.testing.assert_array_equal(value[0], b[key][0], err_msg=key)
            assert value[1].same_as(b[key][1], tol=0.0), key
        else:
            assert value == b[key], key


def test_phantom_number_and_seed_are_deterministic(tmp_path, capsys):
    common = ["--region", "lumbar", "--spacing", 3, 3, 3]
    assert cli(capsys, "phantom", "-o", tmp_path / "a", "-n", 2, "--seed", 7, *common)[0] == 0
    assert cli(capsys, "phantom", "-o", tmp_path / "b", "-n", 2, "--seed", 7, *common)[0] == 0
    assert cli(capsys, "phantom", "-o", tmp_path / "c", "-n", 1, "--seed", 8, *common)[0] == 0
    a, b, c = (_tree_contents(tmp_path / x) for x in "abc")
    assert sorted({k.split("/")[1] for k in a}) == ["sub-phantom0007", "sub-phantom0008"]
    _assert_same_tree(a, b)  # the same command writes the same files
    # Case i of "--seed 7 -n 2" is the case of seed 7 + i.
    _assert_same_tree({k: v for k, v in a.items() if "phantom0008" in k}, c)
    img7 = a["rawdata/sub-phantom0007/sub-phantom0007_ct.nii.gz"]
    img8 = a["rawdata/sub-phantom0008/sub-phantom0008_ct.nii.gz"]
    assert img7[0].shape != img8[0].shape or not np.array_equal(img7[0], img8[0])
    # And it is the library's phantom of that seed.
    ph = generate_phantom(8, PhantomConfig(region="lumbar", spacing=(3.0, 3.0, 3.0)))
    np.testing.assert_array_equal(img8[0], sitk.GetArrayFromImage(ph.image))


def test_phantom_orientation_is_written_and_centroids_follow_it(tmp_path, capsys):
    rc, _, _ = cli(
        capsys, "phantom", "-o", tmp_path, "--region", "lumbar", "--spacing", 3, 3, 3, "--orientation", "PIR"
    )
    assert rc == 0
    p = bids.case_paths(tmp_path, "phantom0000")
    image, vert = read_image(p.image), read_labelmap(p.vertebra_mask)
    assert orientation_code(image) == "PIR" and orientation_code(vert) == "PIR"
    assert json.loads(p.centroids.read_text())[0] == {"direction": ["P", "I", "R"]}
    ctd = read_centroids(p.centroids, reference=image)
    assert len(ctd) >= 6
    for lab, point in ctd.items():
        assert label_at(vert, point) == lab, L.name_of(lab)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--number", "0"], "--number must be at least 1, got 0"),
        (["--spacing", "-1", "1", "1"], "spacing must be a finite number above 0, got -1"),
        (["--spacing", "inf", "1", "1"], "spacing must be a finite number above 0, got inf"),
        (["--spacing", "1", "x", "1"], "spacing must be a number, got 'x'"),
        (["--orientation", "LLS"], "orientation 'LLS' names one anatomical axis twice"),
        (["--orientation", "XYZ"], "orientation 'XYZ' is not a 3-letter code of L/R, P/A, S/I"),
        (["--scoliosis", "2"], "--scoliosis is a probability in 0..1, got 2.0"),
    ],
)
def test_phantom_bad_options_exit_2_with_the_problem(tmp_path, capsys, args, needle):
    rc, out, err = cli(capsys, "phantom", "-o", tmp_path / "out", *args)
    assert rc == 2
    assert needle in err
    assert not (tmp_path / "out").exists()


@contextlib.contextmanager
def read_only_folder(folder: Path):
    """A new read-only folder (made writable again afterwards); skips where chmod cannot make one (root)."""
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable, chmod cannot make one")
        yield folder
    finally:
        folder.chmod(0o755)


def test_phantom_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    rc, _, err = cli(capsys, "phantom", "-o", blocker / "tree", "--region", "lumbar", "--spacing", 3, 3, 3)
    assert rc == 2 and f"{blocker / 'tree'}: output folder is not writable" in err

    with read_only_folder(tmp_path / "locked") as locked:
        rc, _, err = cli(capsys, "phantom", "-o", locked / "tree", "--region", "lumbar", "--spacing", 3, 3, 3)
        assert rc == 2 and f"{locked / 'tree'}: output folder is not writable" in err
        assert list(locked.iterdir()) == []


def test_phantom_bad_orientation_as_a_user_runs_it(tmp_path):
    proc = subprocess_cli("phantom", "-o", tmp_path / "out", "--orientation", "QQQ")
    assert_one_clean_error(proc, "orientation 'QQQ' is not a 3-letter code")
    assert len(proc.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------
# spineseg evaluate

REMOVED, RELABELLED, ERODED = 22, 20, 23  # L3 dropped; L1 predicted as L6; L4 eroded
RELABELLED_AS = 25


@pytest.fixture(scope="module")
def ev_case(tmp_path_factory) -> dict:
    """A lumbar phantom's ground truth and a perturbed prediction, written as files."""
    root = tmp_path_factory.mktemp("evaluate")
    ph = generate_phantom(21, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.0)))
    gt = ph.vertebra_labels
    g = sitk.GetArrayFromImage(gt)
    p = g.copy()
    p[g == REMOVED] = 0
    p[g == RELABELLED] = RELABELLED_AS
    p[(g == ERODED) & ~ndimage.binary_erosion(g == ERODED)] = 0
    pred = sitk.GetImageFromArray(p)
    pred.CopyInformation(gt)
    files = {
        "gt": write_labelmap(gt, root / "sub-x_seg-vert_msk.nii.gz"),
        "pred": write_labelmap(pred, root / "pred_seg-vert_msk.nii.gz"),
        "gt_ctd": write_centroids(ph.body_centroids, root / "sub-x_seg-subreg_ctd.json", reference=gt),
        "ct": write_image(ph.image, root / "sub-x_ct.nii.gz"),
    }
    return {"gt_image": gt, "g": g, "p": p, "body": ph.body_centroids, **files}


def test_measure_table_json_and_csv(ev_case, tmp_path, capsys):
    js, cs = tmp_path / "m.json", tmp_path / "m.csv"
    rc, out, err = cli(
        capsys, "measure", "--labels", ev_case["gt"], "--image", ev_case["ct"], "--json", js, "--csv", cs
    )
    assert rc == 0, err
    doc = json.loads(js.read_text())
    names = [v["name"] for v in doc["vertebrae"]]
    assert names == [L.name_of(x) for x in L.anatomical_order(ev_case["body"].labels) if x in L.VERTEBRA_LABELS]
    assert doc["review"]["identification_doubtful"] is False
    for v in doc["vertebrae"]:
        if v["note"]:  # cut by the phantom's field of view
            continue
        assert 10 < v["height_middle_mm"] < 40 and v["core_hu_mean"] is not None
    measured = [v["name"] for v in doc["vertebrae"] if not v["note"]]
    assert len(measured) >= 3
    assert [d["name"] for d in doc["discs"]] == [f"{a}/{b}" for a, b in itertools.pairwise(measured)]
    assert all(2 < d["height_middle_mm"] < 20 for d in doc["discs"])
    rows = cs.read_text().splitlines()
    assert rows[0].startswith("label,name,volume_cm3") and len(rows) == len(names) + 1
    assert all(n in out for n in names)


def test_measure_bad_inputs_exit_2(ev_case, tmp_path, capsys):
    other = write_image(sitk.Image(8, 8, 8, sitk.sitkInt16), tmp_path / "small_ct.nii.gz")
    rc, _, err = cli(capsys, "measure", "--labels", ev_case["gt"], "--image", other)
    assert rc == 2 and "small_ct.nii.gz" in err and "grid" in err
    empty = write_labelmap(sitk.Image(8, 8, 8, sitk.sitkUInt8), tmp_path / "empty_msk.nii.gz")
    rc, _, err = cli(capsys, "measure", "--labels", empty)
    assert rc == 2 and "empty" in err


def test_evaluate_table_json_and_csv(ev_case, tmp_path, capsys):
    js, cs = tmp_path / "m.json", tmp_path / "m.csv"
    rc, out, _ = cli(capsys, "evaluate", "--pred", ev_case["pred"], "--gt", ev_case["gt"], "--json", js, "--csv", cs)
    assert rc == 0
    g, p = ev_case["g"], ev_case["p"]
    gt_labels = sorted(set(np.unique(g).tolist()) - {0})
    names = [L.name_of(x) for x in L.anatomical_order(set(gt_labels) | {RELABELLED_AS})]

    # The table: one row per vertebra (ground truth or prediction), then the summary.
    lines = out.splitlines()
    assert lines[0].split()[0] == "vertebra"
    starred = [n + "*" if n == "L6" else n for n in names]  # a label only in the prediction is starred
    assert [ln.split()[0] for ln in lines[1 : 1 + len(names)]] == starred
    assert lines[1 + len(names)].startswith("* only in the prediction")
    assert any(ln.startswith("mean Dice") for ln in lines) and any(ln.startswith("identification rate") for ln in lines)
    n_gt = len(gt_labels)
    assert f"identification rate {n_gt - 2}/{n_gt} =" in out

    res = json.loads(js.read_text())
    assert list(res["per_vertebra"]) == names
    for row in res["per_vertebra"].values():
        assert {"dice", "fnd", "fpd", "hd", "hd95", "assd", "pe_mm", "identified"} <= set(row)
    assert {"dice_mean", "hd_mean", "assd_mean", "pe_mean_mm", "id_rate", "pq", "sq", "rq"} <= set(res["summary"])
    # The numbers are the library's, called directly on the same images.
    direct = evaluate(read_labelmap(ev_case["pred"]), read_labelmap(ev_case["gt"])).to_json()
    assert res == json.loads(json.dumps(direct))
    assert f"mean Dice {direct['summary']['dice_mean']:.4f}" in out

    # ... and they say what was done to the prediction.
    rows = res["per_vertebra"]
    removed, relabelled, extra = rows[L.name_of(REMOVED)], rows[L.name_of(RELABELLED)], rows["L6"]
    assert removed["dice"] == 0 and not removed["identified"] and removed["hd"] is None and removed["pe_mm"] is None
    assert relabelled["dice"] == 0 and not relabelled["in_pred"] and not relabelled["identified"]
    assert extra["in_pred"] and not extra["in_gt"] and extra["fpd"] == 2
    gl, pl = g == ERODED, p == ERODED
    assert rows[L.name_of(ERODED)]["dice"] == pytest.approx(2 * (gl & pl).sum() / (gl.sum() + pl.sum()))
    assert rows[L.name_of(ERODED)]["dice"] < 1 and rows[L.name_of(ERODED)]["identified"]
    for lab in set(gt_labels) - {REMOVED, RELABELLED, ERODED}:
        r = rows[L.name_of(lab)]
        assert r["dice"] == 1 and r["hd"] == 0 and r["pe_mm"] == 0 and r["identified"]
    assert res["summary"]["id_rate"] == pytest.approx((n_gt - 2) / n_gt)

    with open(cs, newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["name"] for r in table] == names
    for r in table:
        assert float(r["dice"]) == pytest.approx(rows[r["name"]]["dice"], abs=1e-6)
        assert r["identified"] == ("1" if rows[r["name"]]["identified"] else "0")


def test_evaluate_centroid_files_decide_point_error_and_identification(ev_case, tmp_path, capsys):
    gt, body = ev_case["gt_image"], ev_case["body"]
    js = tmp_path / "m.json"
    # Ground-truth body centroids only: predicted centroids are the prediction's mask centres.
    rc, _, _ = cli(
        capsys,
        "evaluate",
        "--pred",
        ev_case["pred"],
        "--gt",
        ev_case["gt"],
        "--gt-ctd",
        ev_case["gt_ctd"],
        "--json",
        js,
    )
    assert rc == 0
    rows = json.loads(js.read_text())["per_vertebra"]
    grid = Grid.of(gt)
    com = grid.index_to_physical(np.asarray(ndimage.center_of_mass(ev_case["p"] == 21))[::-1])[0]
    assert rows["L2"]["pe_mm"] == pytest.approx(np.linalg.norm(com - body[21]), abs=0.01)
    assert rows["L2"]["pe_mm"] > 1.0  # body centre != centre of the whole vertebra
    assert not rows["L3"]["identified"]  # no voxels, hence no predicted centroid

    # Predicted centroids from a file: the body centres, L2 moved 30 mm up.
    moved = Centroids({lab: pt + (np.array([0.0, 0.0, 30.0]) if lab == 21 else 0.0) for lab, pt in body.items()})
    pred_ctd = write_centroids(moved, tmp_path / "pred_ctd.json", reference=gt)
    rc, _, _ = cli(
        capsys,
        "evaluate",
        "--pred", ev_case["pred"], "--gt", ev_case["gt"],
        "--gt-ctd", ev_case["gt_ctd"], "--pred-ctd", pred_ctd,
        "--json", js,
    )  # fmt: skip
    assert rc == 0
    rows = json.loads(js.read_text())["per_vertebra"]
    assert rows["L2"]["pe_mm"] == pytest.approx(30.0, abs=0.01) and not rows["L2"]["identified"]
    assert rows["L3"]["pe_mm"] == pytest.approx(0.0, abs=0.01) and rows["L3"]["identified"]  # a centroid, no voxels
    assert rows["L5"]["pe_mm"] == pytest.approx(0.0, abs=0.01) and rows["L5"]["identified"]


def _write_raw(path: Path, array: np.ndarray, like: sitk.Image | None = None, vector: bool = False) -> Path:
    img = sitk.GetImageFromArray(array, isVector=vector)
    if like is not None:
        img.CopyInformation(like)
    sitk.WriteImage(img, str(path))
    return path


def test_evaluate_bad_images_name_the_file_and_the_problem(ev_case, tmp_path, capsys):
    gt = ev_case["gt_image"]
    text = tmp_path / "notes_seg-vert_msk.nii.gz"
    text.write_text("this is not an image\n")
    flat = _write_raw(tmp_path / "flat.nii.gz", np.zeros((20, 30), np.uint8))
    four = _write_raw(tmp_path / "four.nii.gz", np.zeros((2, 8, 9, 10), np.uint8))
    nan = sitk.GetArrayFromImage(gt).astype(np.float32)
    nan[3, 4, 5] = np.nan
    nan_gt = _write_raw(tmp_path / "nan_gt.nii.gz", nan, like=gt)
    empty_gt = _write_raw(tmp_path / "empty.nii.gz", np.zeros(sitk.GetArrayFromImage(gt).shape, np.uint8), like=gt)
    cases = [
        (["--pred", tmp_path / "missing.nii.gz", "--gt", ev_case["gt"]], tmp_path / "missing.nii.gz", "file not found"),
        (["--pred", text, "--gt", ev_case["gt"]], text, "is not a readable NIfTI image"),
        (["--pred", ev_case["pred"], "--gt", flat], flat, "is 2D (30x20); SpineSeg needs a 3D volume"),
        (["--pred", four, "--gt", ev_case["gt"]], four, "is 4D (10x9x8x2"),
        (["--pred", ev_case["pred"], "--gt", nan_gt], nan_gt, "has 1 NaN or infinite voxel values"),
        (["--pred", ev_case["pred"], "--gt", empty_gt], empty_gt, "label map is empty (all voxels are 0)"),
    ]
    for args, path, problem in cases:
        rc, out, err = cli(capsys, "evaluate", *args)
        assert rc == 2, (path, err)
        assert err.startswith(f"spineseg: error: {path}: {problem}"), err
        assert len(err.strip().splitlines()) == 1 and out == ""


def test_evaluate_malformed_centroid_files_name_the_file_and_the_entry(ev_case, tmp_path, capsys):
    bad_value = tmp_path / "bad_ctd.json"
    bad_value.write_text(json.dumps([{"direction": ["L", "P", "S"]}, {"label": 20, "X": 1, "Y": "a", "Z": 3}]))
    bad_label = tmp_path / "label_ctd.json"
    bad_label.write_text(json.dumps([{"direction": ["L", "P", "S"]}, {"label": 99, "X": 1, "Y": 2, "Z": 3}]))
    broken = tmp_path / "broken_ctd.json"
    broken.write_text('[{"direction": ["L", "P", "S"]},\n{"label": 20, "X": 1')
    base = ["evaluate", "--pred", ev_case["pred"], "--gt", ev_case["gt"]]
    rc, _, err = cli(capsys, *base, "--pred-ctd", bad_value)
    assert rc == 2 and f"{bad_value}: entry 2 (label 20, L1): 'Y' is not a number ('a')" in err
    rc, _, err = cli(capsys, *base, "--gt-ctd", bad_label)
    assert rc == 2 and f"{bad_label}: entry 2: label 99 is not a VerSe vertebra id" in err
    rc, _, err = cli(capsys, *base, "--gt-ctd", broken)
    assert rc == 2 and f"{broken}: not valid JSON: line 2" in err


def test_evaluate_ignores_unknown_prediction_labels_with_a_printed_warning(ev_case, tmp_path):
    p = ev_case["p"].copy()
    p[ev_case["g"] == 21] = 99
    pred = _write_raw(tmp_path / "odd.nii.gz", p, like=ev_case["gt_image"])
    js = tmp_path / "m.json"
    proc = subprocess_cli("evaluate", "--pred", pred, "--gt", ev_case["gt"], "--json", js)
    assert proc.returncode == 0, proc.stderr
    assert f"spineseg: warning: prediction mask {pred}: label ids [99] are not VerSe vertebra labels" in proc.stderr
    assert "ignored" in proc.stderr and "Traceback" not in proc.stderr
    res = json.loads(js.read_text())
    assert res["ignored_labels"]["pred"] == [99]
    assert res["per_vertebra"]["L2"]["dice"] == 0 and "99" not in res["per_vertebra"]


def _rounded(value):
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_evaluate_ignore_leaves_levels_out_of_both_sides(ev_case, tmp_path, capsys):
    """``--ignore L3,S``: the same numbers as evaluating masks and centroids without those levels."""
    g, p = ev_case["g"], ev_case["p"]
    assert {REMOVED, 26} <= set(np.unique(g).tolist())  # a level the prediction misses, and the sacrum
    js = tmp_path / "m.json"
    args = ["evaluate", "--pred", ev_case["pred"], "--gt", ev_case["gt"], "--gt-ctd", ev_case["gt_ctd"], "--json", js]
    rc, out, _ = cli(capsys, *args, "--ignore", "L3,S,22")
    assert rc == 0 and "not scored: L3, S" in out
    res = json.loads(js.read_text())
    assert res.pop("not_scored") == ["L3", "S"]
    assert "L3" not in res["per_vertebra"] and "S" not in res["per_vertebra"]

    keep_g, keep_p = np.where(np.isin(g, [REMOVED, 26]), 0, g), np.where(np.isin(p, [REMOVED, 26]), 0, p)
    gt_img, pred_img = sitk.GetImageFromArray(keep_g), sitk.GetImageFromArray(keep_p)
    gt_img.CopyInformation(ev_case["gt_image"])
    pred_img.CopyInformation(ev_case["gt_image"])
    gt_ctd = read_centroids(ev_case["gt_ctd"], reference=ev_case["gt_image"])
    body = gt_ctd.subset([lab for lab in gt_ctd.labels if lab not in (REMOVED, 26)])
    direct = evaluate(pred_img, gt_img, None, body).to_json()
    assert direct.pop("not_scored") == []
    assert _rounded(res) == _rounded(json.loads(json.dumps(direct)))  # centroids differ in the last bit only
    full = evaluate(read_labelmap(ev_case["pred"]), ev_case["gt_image"], None, gt_ctd).to_json()["summary"]
    assert res["summary"]["n_missed"] == full["n_missed"] - 1  # L3, missed by the prediction, is not scored
    assert res["summary"]["n_gt"] == full["n_gt"] - 2

    rc, _, err = cli(capsys, *args, "--ignore", "L9")
    assert rc == 2 and "--ignore: unknown vertebra name 'L9'" in err


def test_evaluate_grids_that_differ_need_resample_pred(ev_case, tmp_path, capsys):
    padded = sitk.ConstantPad(ev_case["gt_image"], (3, 2, 1), (1, 2, 3), 0)  # same voxels in space, a larger grid
    pred = write_labelmap(padded, tmp_path / "padded.nii.gz")
    rc, _, err = cli(capsys, "evaluate", "--pred", pred, "--gt", ev_case["gt"])
    assert rc == 2
    assert err.startswith(f"spineseg: error: {pred}: prediction grid") and "--resample-pred" in err
    assert str(ev_case["gt"]) in err
    js = tmp_path / "m.json"
    rc, _, _ = cli(capsys, "evaluate", "--pred", pred, "--gt", ev_case["gt"], "--resample-pred", "--json", js)
    assert rc == 0
    summary = json.loads(js.read_text())["summary"]
    assert summary["dice_mean"] == 1.0 and summary["id_rate"] == 1.0 and summary["hd_mean"] == 0.0


def test_evaluate_missing_file_as_a_user_runs_it(ev_case, tmp_path):
    missing = tmp_path / "nothing.nii.gz"
    proc = subprocess_cli("evaluate", "--pred", missing, "--gt", ev_case["gt"])
    assert_one_clean_error(proc, f"{missing}: file not found")
    assert proc.stdout == ""


# ----------------------------------------------------------------------------------------
# spineseg run


@pytest.fixture(scope="module")
def tiny_resources(tmp_path_factory) -> Path:
    return write_tiny_resources(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def resources(tiny_resources, monkeypatch) -> Path:
    monkeypatch.setenv("SPINESEG_RESOURCES", str(tiny_resources))
    return tiny_resources


@pytest.fixture(scope="module")
def spine(tmp_path_factory) -> dict:
    """The synthetic lumbar CT (L1..L5 bodies) as ``sub-syn_ct.nii.gz``, with its labels and centroids."""
    root = tmp_path_factory.mktemp("syn")
    s = synthetic_lumbar_ct()
    return {"path": write_image(s.image, root / "sub-syn_ct.nii.gz"), "image": s.image, "truth": s}


def run_files(out: Path, case: str) -> dict[str, Path]:
    return {k: out / v for k, v in bids.output_names(case).items()}


def test_run_writes_the_case_outputs_on_the_input_grid(resources, spine, tmp_path, capsys):
    out = tmp_path / "out"
    rc, table, err = cli(
        capsys, "run", spine["path"], "-o", out, "--device", "cpu", "--save-heatmaps", "--progress", "none"
    )
    assert rc == 0, err
    f = run_files(out, "sub-syn")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f["labels"].name, f["centroids"].name, f["snapshot"].name, f["timings"].name, f["heatmaps"].name]
        + [f["measurements"].name, f["measurements_csv"].name, "sub-syn_heatmaps.json"]
    )
    labels = read_labelmap(f["labels"])
    assert labels.GetPixelID() == sitk.sitkUInt8 and Grid.of(labels).same_as(Grid.of(read_image(spine["path"])))
    assert_segments_inside_truth(labels, spine["truth"].labels, LUMBAR)
    ctd = read_centroids(f["centroids"], reference=spine["image"])
    assert ctd.labels == list(LUMBAR)
    for lab in LUMBAR:
        np.testing.assert_allclose(ctd[lab], spine["truth"].centroids[lab], atol=0.01)
        assert ctd.confidence_of(lab) is not None
    assert f["snapshot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    timings = json.loads(f["timings"].read_text())
    assert timings["case"] == "sub-syn" and timings["stages"] == ["spine", "vertebrae", "segmentation"]
    assert timings["vertebrae"] == ["L1", "L2", "L3", "L4", "L5"] and timings["device"] == "cpu"
    assert set(timings["seconds"]) == {"spine", "vertebrae", "segmentation", "total"}
    assert set(timings["outputs"]) >= {f["labels"].name, f["centroids"].name, f["snapshot"].name, f["heatmaps"].name}
    # Measurements of every segmented vertebra, the review in the timings and measurements files, the table.
    meas = json.loads(f["measurements"].read_text())
    assert [v["name"] for v in meas["vertebrae"]] == ["L1", "L2", "L3", "L4", "L5"]
    assert meas["review"] == timings["review"] and "identification_doubtful" in timings["review"]
    assert f["measurements_csv"].read_text().splitlines()[0].startswith("label,name,volume_cm3")
    assert "level  conf  seg p  vol cm3" in table
    heat = sitk.ReadImage(str(f["heatmaps"]))
    assert heat.GetNumberOfComponentsPerPixel() == len(L.HEATMAP_LABELS) and heat.GetSpacing() == (2.0, 2.0, 2.0)
    info = json.loads((out / "sub-syn_heatmaps.json").read_text())
    assert info["labels"] == list(L.HEATMAP_LABELS) and info["names"][19] == "L1"


def test_run_skips_finished_cases_and_force_recomputes(resources, spine, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(capsys, "run", spine["path"], "-o", out, "--device", "cpu", "--progress", "none")[0] == 0
    timings = run_files(out, "sub-syn")["timings"]
    before, mtime = timings.read_bytes(), timings.stat().st_mtime_ns
    rc, out_text, err = cli(capsys, "run", spine["path"], "-o", out, "--device", "cpu")  # default: progress bars
    assert rc == 0 and "sub-syn: already done (use --force to recompute)" in err
    rc, out_text, _ = cli(capsys, "run", spine["path"], "-o", out, "--device", "cpu", "--progress", "json")
    assert rc == 0 and "already done" in json.loads(out_text.strip().splitlines()[-1])["message"]
    assert timings.read_bytes() == before and timings.stat().st_mtime_ns == mtime
    rc, out_text, _ = cli(capsys, "run", spine["path"], "-o", out, "--device", "cpu", "--force", "--progress", "json")
    assert rc == 0 and "already done" not in out_text
    assert timings.stat().st_mtime_ns != mtime
    assert json.loads(timings.read_text())["vertebrae"] == ["L1", "L2", "L3", "L4", "L5"]


def test_run_expands_folders_and_verse_trees(resources, spine, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(spine["path"], folder / "a_ct.nii.gz")
    shutil.copy(spine["path"], folder / "b.nii.gz")
    (folder / "README.txt").write_text("not an image")
    rc, _, err = cli(capsys, "run", folder, "-o", tmp_path / "out1", "--device", "cpu", "--progress", "none")
    assert rc == 0, err
    done = sorted(p.name for p in (tmp_path / "out1").glob("*_timings.json"))
    assert done == ["a_timings.json", "b_timings.json"]

    tree = tmp_path / "tree"
    assert cli(capsys, "phantom", "-o", tree, "-n", 2, "--region", "lumbar", "--spacing", 4, 4, 4)[0] == 0
    out = tmp_path / "out2"
    rc, _, err = cli(capsys, "run", tree, "-o", out, "--device", "cpu", "--stages", "spine", "--progress", "none")
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["sub-phantom0000_timings.json", "sub-phantom0001_timings.json"]
    for n in ("0000", "0001"):
        t = json.loads((out / f"sub-phantom{n}_timings.json").read_text())
        assert Path(t["input"]) == bids.case_paths(tree, f"phantom{n}").image  # rawdata only, never derivatives
        assert t["stages"] == ["spine"] and t["outputs"] == []


def test_run_localisation_only_writes_no_label_map(resources, spine, tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = cli(
        capsys, "run", spine["path"], "-o", out, "--device", "cpu", "--stages", "spine,vertebrae", "--progress", "none"
    )
    assert rc == 0, err
    f = run_files(out, "sub-syn")
    assert not f["labels"].exists()
    assert f["centroids"].exists() and f["snapshot"].exists() and f["timings"].exists()
    assert read_centroids(f["centroids"], reference=spine["image"]).labels == list(LUMBAR)
    assert json.loads(f["timings"].read_text())["stages"] == ["spine", "vertebrae"]


def test_run_segmentation_without_centroids_is_refused(resources, spine, tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = cli(capsys, "run", spine["path"], "-o", out, "--device", "cpu", "--stages", "segmentation")
    assert rc == 2 and "the segmentation stage needs centroids" in err
    assert not list(out.glob("*_timings.json"))


def test_run_with_markups_centroids_segments_only_the_given_labels(resources, spine, tmp_path, capsys):
    mrk = write_centroids(spine["truth"].centroids, tmp_path / "points.mrk.json", coordinate_system="RAS")
    out = tmp_path / "out"
    rc, _, err = cli(
        capsys,
        "run", spine["path"], "-o", out, "--device", "cpu", "--progress", "none",
        "--stages", "segmentation", "--centroids", mrk, "--labels", "L2",
    )  # fmt: skip
    assert rc == 0, err
    f = run_files(out, "sub-syn")
    assert_segments_inside_truth(read_labelmap(f["labels"]), spine["truth"].labels, [21])
    ctd = read_centroids(f["centroids"], reference=spine["image"])
    assert ctd.labels == list(LUMBAR)  # the given centroids are all written back
    np.testing.assert_allclose(ctd.array(), spine["truth"].centroids.array(), atol=0.01)
    rc, _, err = cli(capsys, "run", spine["path"], "-o", out, "--force", "--centroids", mrk, "--labels", "L9")
    assert rc == 2 and "--labels: unknown vertebra name 'L9'" in err


def test_centroids_or_labels_that_select_nothing_are_refused_and_write_nothing(resources, spine, tmp_path, capsys):
    from SpineSegLib.centroids import Centroids

    mrk = write_centroids(spine["truth"].centroids, tmp_path / "points.mrk.json", coordinate_system="RAS")
    empty = write_centroids(Centroids(), tmp_path / "empty.mrk.json", coordinate_system="RAS")
    seg = ["--device", "cpu", "--progress", "none", "--stages", "segmentation"]
    rc, _, err = cli(capsys, "run", spine["path"], "-o", tmp_path / "a", *seg, "--centroids", empty)
    assert rc == 2 and f"{empty}: holds no vertebra point" in err and "Traceback" not in err
    rc, _, err = cli(capsys, "run", spine["path"], "-o", tmp_path / "b", *seg, "--centroids", mrk, "--labels", "T1")
    assert rc == 2 and f"{mrk}: has no point of --labels T1 (its points: L1, L2, L3, L4, L5)" in err
    # a full run whose result has none of --labels: an error, not an all-zero mask with exit 0
    rc, _, err = cli(capsys, "run", spine["path"], "-o", tmp_path / "c", "--device", "cpu", "--progress", "none",
                     "--labels", "C3")  # fmt: skip
    assert rc == 2 and "--labels C3: none of these vertebrae is in the result (vertebrae found: L1" in err
    for folder in ("a", "b", "c"):
        assert not list((tmp_path / folder).glob("sub-syn_*")), folder


def _json_progress(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.strip().splitlines()]
    assert lines and all({"progress", "case_progress", "message"} <= set(x) for x in lines)
    return lines


def test_run_progress_json_lines_increase_to_one(resources, spine, tmp_path, capsys):
    out = tmp_path / "out"
    rc, text, _ = cli(capsys, "run", spine["path"], "-o", out, "--device", "cpu", "--progress", "json")
    assert rc == 0
    lines = _json_progress(text)
    progress = [x["progress"] for x in lines]
    assert len(progress) >= 4 and progress == sorted(progress) and progress[-1] == 1.0 and progress[0] == 0.0
    assert all(x["message"].startswith("sub-syn: ") for x in lines)

    # A batch whose last case is already done still ends at 1.0.
    other = tmp_path / "other_ct.nii.gz"
    shutil.copy(spine["path"], other)
    rc, text, _ = cli(capsys, "run", other, spine["path"], "-o", out, "--device", "cpu", "--progress", "json")
    assert rc == 0
    progress = [x["progress"] for x in _json_progress(text)]
    assert progress == sorted(progress) and progress[-1] == 1.0 and max(progress[:-1]) <= 0.5


def test_run_bad_inputs_name_the_problem(resources, spine, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    rc, _, err = cli(capsys, "run", notes, "-o", tmp_path / "o1")
    assert rc == 2 and f"{notes}: not an image file SpineSeg reads" in err
    missing = tmp_path / "missing_ct.nii.gz"
    rc, _, err = cli(capsys, "run", missing, "-o", tmp_path / "o2")
    assert rc == 2 and f"{missing}: input not found" in err
    flat = _write_raw(tmp_path / "flat_ct.nii.gz", np.zeros((30, 40), np.int16))
    rc, _, err = cli(capsys, "run", flat, "-o", tmp_path / "o3", "--device", "cpu")
    assert rc == 2 and f"{flat}: is 2D (40x30); SpineSeg needs a 3D volume" in err
    rc, _, err = cli(capsys, "run", spine["path"], "-o", tmp_path / "o4", "--stages", "spine,heart")
    assert rc == 2 and "unknown stage(s) heart" in err


def test_run_unwritable_output_folder(resources, spine, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc, _, err = cli(capsys, "run", spine["path"], "-o", blocker / "out", "--device", "cpu")
    assert rc == 2 and f"{blocker / 'out'}: cannot create the output folder" in err
    with read_only_folder(tmp_path / "locked") as locked:
        rc, _, err = cli(capsys, "run", spine["path"], "-o", locked, "--device", "cpu")
        assert rc == 2 and f"{locked}: output folder is not writable" in err


def test_run_cuda_without_a_gpu(resources, spine, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    rc, _, err = cli(capsys, "run", spine["path"], "-o", tmp_path / "out", "--device", "cuda")
    assert rc == 2 and "device 'cuda' was asked for but PyTorch sees no CUDA GPU" in err


def test_run_refuses_tampered_weights(tiny_resources, spine, tmp_path):
    res = shutil.copytree(tiny_resources, tmp_path / "Resources")
    weights = res / "models" / "tiny-vertebrae.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    proc = subprocess_cli(
        "run", spine["path"], "-o", tmp_path / "out", "--device", "cpu", env={"SPINESEG_RESOURCES": str(res)}
    )
    assert_one_clean_error(proc, f"{weights}: sha256", "does not match the model manifest")
    assert not (tmp_path / "out" / "sub-syn_timings.json").exists()


def test_run_warns_about_mr_intensities(resources, tmp_path, capsys):
    assert (
        cli(capsys, "phantom", "-o", tmp_path / "mr", "--modality", "mr", "--region", "lumbar", "--spacing", 4, 4, 4)[0]
        == 0
    )
    image = bids.case_paths(tmp_path / "mr", "phantom0000", "mr").image
    rc, _, err = cli(capsys, "run", image, "-o", tmp_path / "out", "--device", "cpu", "--stages", "spine")
    assert rc == 0
    assert "spineseg: warning: sub-phantom0000: intensities" in err and "do not look like CT" in err
    assert (
        "do not look like CT"
        in json.loads((tmp_path / "out" / "sub-phantom0000_timings.json").read_text())["messages"][0]
    )


def test_run_batch_with_a_bad_case_processes_the_good_one(tiny_resources, spine, tmp_path):
    bad = tmp_path / "bad_ct.nii.gz"
    bad.write_text("not an image")
    out = tmp_path / "out"
    proc = subprocess_cli(
        "run", bad, spine["path"], "-o", out, "--device", "cpu", "--progress", "none",
        env={"SPINESEG_RESOURCES": str(tiny_resources)},
    )  # fmt: skip
    assert_one_clean_error(proc, f"spineseg: error: {bad}: is not a readable NIfTI image", "1 of 2 cases failed")
    assert (out / "sub-syn_timings.json").is_file() and (out / "sub-syn_seg-vert_msk.nii.gz").is_file()
    assert not list(out.glob("bad*"))


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "x"])
def test_evaluate_refuses_an_identification_threshold_that_is_not_a_positive_number(tmp_path, capsys, value):
    from SpineSegLib.io import write_labelmap
    from SpineSegLib.phantom import PhantomConfig, generate_phantom

    mask = write_labelmap(
        generate_phantom(3, PhantomConfig(region="lumbar", spacing=(3.0, 3.0, 3.0))).vertebra_labels,
        tmp_path / "m.nii.gz",
    )
    rc, out, err = cli(capsys, "evaluate", "--pred", mask, "--gt", mask, "--id-threshold", value)
    assert rc == 2 and "Traceback" not in err
    assert "the identification threshold must be" in err and value in err
