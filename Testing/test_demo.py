"""``make demo`` runs the pipeline on the bundled sample case and prints its evaluation."""

import json

import SimpleITK as sitk
from slicer_fixtures import write_tiny_resources

from SpineSegLib import demo
from SpineSegLib.io import read_centroids, read_image, read_labelmap
from SpineSegLib.labelmap import label_ids


def test_bundled_sample_case_is_consistent():
    folder = demo.sample_dir()
    image = read_image(folder / "sub-demo_ct.nii.gz")
    mask = read_labelmap(folder / "sub-demo_seg-vert_msk.nii.gz")
    ctd = read_centroids(folder / "sub-demo_seg-subreg_ctd.json", reference=mask)
    assert image.GetSize() == mask.GetSize() and image.GetSpacing() == mask.GetSpacing()
    assert len(ctd) >= 20  # a full spine
    meta = json.loads((folder / "sub-demo_phantom.json").read_text())
    assert meta["seed"] >= 100_000  # held out: never a training case


def test_bundled_real_case_is_consistent_and_attributed():
    folder = demo.sample_dir()
    image = read_image(folder / "sub-verse005_ct.nii.gz")
    mask = read_labelmap(folder / "sub-verse005_seg-vert_msk.nii.gz")
    assert image.GetSize() == mask.GetSize() and image.GetSpacing() == mask.GetSpacing()
    assert label_ids(sitk.GetArrayViewFromImage(mask)) == [20, 21, 22, 23, 24]  # L1..L5
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in readme and "Sekuboyina" in readme  # VerSe's licence asks for attribution


def test_demo_runs_the_pipeline_on_the_real_case_and_evaluates(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPINESEG_RESOURCES", str(write_tiny_resources(tmp_path / "res")))
    out = tmp_path / "demo"
    rc = demo.main(["--out", str(out), "--device", "cpu"])
    text = capsys.readouterr().out
    assert rc == 0
    for suffix in ("_seg-vert_msk.nii.gz", "_ctd.json", "_snp.png", "_timings.json", "_metrics.json"):
        assert (out / f"sub-verse005{suffix}").is_file(), suffix
    metrics = json.loads((out / "sub-verse005_metrics.json").read_text())
    assert {"dice_mean", "id_rate", "pe_mean_mm", "pq"} <= set(metrics["summary"])
    # The truth's points come from its mask: every ground-truth level L1..L5 is scored.
    assert metrics["summary"]["n_gt"] == 5
    assert "Evaluation against the ground truth" in text


def test_demo_runs_the_pipeline_on_the_phantom_and_evaluates(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPINESEG_RESOURCES", str(write_tiny_resources(tmp_path / "res")))
    out = tmp_path / "demo"
    rc = demo.main(["--out", str(out), "--device", "cpu", "--case", "phantom"])
    text = capsys.readouterr().out
    assert rc == 0
    for suffix in ("_seg-vert_msk.nii.gz", "_ctd.json", "_snp.png", "_timings.json", "_metrics.json"):
        assert (out / f"sub-demo{suffix}").is_file(), suffix
    metrics = json.loads((out / "sub-demo_metrics.json").read_text())
    assert {"dice_mean", "id_rate", "pe_mean_mm", "pq"} <= set(metrics["summary"])
    # The sample's sacrum has no channel in the CT pipeline: it is left out of the score, and the user is told.
    truth = read_labelmap(demo.sample_dir() / "sub-demo_seg-vert_msk.nii.gz")
    assert 26 in label_ids(sitk.GetArrayViewFromImage(truth))
    assert "S" not in metrics["per_vertebra"] and "not scored: S" in text
    assert "Evaluation against the ground truth" in text and "dice" in text.lower()
