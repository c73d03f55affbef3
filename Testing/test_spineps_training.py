"""Training of ``spineps``: the 14-structure targets, the MR cache, the two samplers, train -> export -> run.

The targets are checked on a block whose geometry is known; the samplers on an MR phantom, against
the phantom's own masks sampled on the same grid; the end-to-end test trains both stages for two
iterations (tiny networks), exports them into a separate Resources folder and runs
``spineseg run --pipeline mr-t2w``, which must write the semantic mask next to the instances.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk

from SpineSegLib import labels as L
from SpineSegLib.cli import main
from SpineSegLib.geometry import Grid
from SpineSegLib.methods.spineps import semantic_ids as S
from SpineSegLib.methods.spineps.targets import BORDER_MM, ENDPLATE_MM, fourteen_structures
from SpineSegLib.phantom import PhantomConfig

MR_LUMBAR = PhantomConfig(modality="mr", region="lumbar", spacing=(1.5, 1.5, 4.0), orientation="PIR", field="tight")


def test_the_body_splits_into_endplates_border_and_interior_by_distance():
    sub = np.zeros((30, 20, 20), np.uint8)
    sub[5:10, 5:15, 5:15] = S.DISC
    sub[10:25, 4:16, 4:16] = S.CORPUS_BORDER
    sub[10:25, 16:18, 8:12] = S.ARCUS
    spacing = (1.0, 1.0, 1.0)
    out = fourteen_structures(sub, spacing)
    body = sub == S.CORPUS_BORDER
    assert np.array_equal(np.isin(out, (S.CORPUS_BORDER, S.CORPUS, S.ENDPLATE)), body)  # nothing else moves
    assert np.array_equal(out[~body], sub[~body])
    # endplate: the body slab within ENDPLATE_MM of the disc (the disc's face is 10 x 10 of the 12 x 12 body)
    assert set(np.unique(np.nonzero(out == S.ENDPLATE)[0])) == set(range(10, 10 + int(ENDPLATE_MM)))
    assert (out[10 : 10 + int(ENDPLATE_MM), 5:15, 5:15] == S.ENDPLATE).all()
    # border: the outer layer (1 voxel: BORDER_MM 1.5 at 1 mm) all round; interior: the rest
    assert (out[15, 4, :][4:16] == S.CORPUS_BORDER).all() and (out[15, :, 15][4:16] == S.CORPUS_BORDER).all()
    assert (out[15, 4 + int(BORDER_MM) + 1 : 16 - int(BORDER_MM) - 1, 10] == S.CORPUS).all()
    assert (out[24, 8, 8] == S.CORPUS_BORDER) and (out[23, 8, 8] == S.CORPUS)


def test_a_coarse_grid_keeps_a_border_and_given_classes_are_kept():
    sub = np.zeros((12, 12, 12), np.uint8)
    sub[2:10, 2:10, 2:10] = S.CORPUS_BORDER
    out = fourteen_structures(sub, (3.0, 3.0, 3.0))
    assert (out[2] == sub[2]).all() and (out[3:9, 3:9, 3:9] == S.CORPUS).all()  # one voxel layer of border
    already = sub.copy()
    already[5, 5, 5] = S.CORPUS
    already[2, 2, 2] = S.ENDPLATE_SUP
    kept = fourteen_structures(already, (1.0, 1.0, 1.0))
    assert kept[5, 5, 5] == S.CORPUS and kept[2, 2, 2] == S.ENDPLATE and (kept[3, 3, 3] == S.CORPUS_BORDER)


@pytest.fixture(scope="module")
def mr_case(tmp_path_factory):
    """One lumbar sagittal MR phantom in a VerSe tree, and its cache entry."""
    from spineseg_training.data import cache_case, find_cases
    from spineseg_training.phantom_data import write_case

    root = tmp_path_factory.mktemp("mr")
    write_case(root / "data", 31, MR_LUMBAR)
    (files,) = find_cases(root / "data", "mr")
    return files, cache_case(files, root / "cache")


def test_the_cache_keeps_the_subregions_and_an_unsigned_mr_is_padded_with_zero(mr_case):
    files, case = mr_case
    assert files.subregions is not None and files.subregions.name.endswith("_seg-subreg_msk.nii.gz")
    image = np.asarray(case.image)
    assert image.min() >= 0  # not -1024 wrapped round to 64512 in an unsigned image
    assert image.max() < 10_000
    sub, vert = np.asarray(case.subregions), np.asarray(case.labels)
    assert sub.shape == vert.shape
    bone = np.isin(sub, S.VERTEBRA_IDS)
    # the vertebra mask and the subregion mask describe the same bone on the cache grid
    assert (vert[bone] > 0).mean() > 0.99 and (bone[(vert > 0) & (vert < 26)]).mean() > 0.99


def test_semantic_samples_pair_the_mr_with_its_structures(mr_case):
    from spineseg_training.config import stage_config
    from spineseg_training.spatial import SpatialTransform, sample_array
    from spineseg_training.spineps import semantic_sample

    _, case = mr_case
    cfg = stage_config("spineps-semantic")
    x, y = semantic_sample(case, cfg, np.random.default_rng(0), augment=False)
    assert x.shape == y.shape == (1, *cfg.crop_size[::-1])
    assert 0.0 <= x.min() and x.max() <= 1.5
    classes = {S.CLASSES[int(c)] for c in np.unique(y)}
    assert {S.CORPUS_BORDER, S.CORPUS, S.ENDPLATE, S.DISC, S.CANAL, S.ARCUS} <= classes
    # the same grid again (no augmentation: the crop centre is the spine's middle): the vertebra mask agrees
    from spineseg_training.spineps import _spine_centre

    grid = Grid.centered(_spine_centre(case, None, False), cfg.crop_size, cfg.spacing_mm)
    vert = sample_array(case.labels, case.grid, grid, SpatialTransform.identity(grid.center), order=0)
    body = np.isin(np.asarray(S.CLASSES)[y[0].astype(int)], S.BODY_IDS)
    assert (vert[body] > 0).mean() > 0.99
    # the body is darker than the disc and the canal's fluid on this T2w-like MR
    ids = np.asarray(S.CLASSES)[y[0].astype(int)]
    assert x[0][ids == S.CORPUS].mean() < x[0][ids == S.CANAL].mean()


def test_instance_samples_name_the_vertebra_at_the_centre_and_its_neighbours(mr_case):
    from spineseg_training.config import stage_config
    from spineseg_training.spatial import SpatialTransform, sample_array
    from spineseg_training.spineps import instance_sample, neighbours

    _, case = mr_case
    cfg = stage_config("spineps-instance")
    x, y = instance_sample(case, cfg, np.random.default_rng(0), augment=False)
    assert x.shape == (S.INSTANCE_CHANNELS, *cfg.crop_size[::-1]) and y.shape == (1, *cfg.crop_size[::-1])
    assert np.allclose(x.sum(0), 1.0)  # one-hot
    levels = [lab for lab in case.vertebra_labels if lab in L.VERTEBRA_LABELS and lab in case.centroids]
    level = levels[len(levels) // 2]
    grid = Grid.centered(case.centroids[level], cfg.crop_size, cfg.spacing_mm)
    vert = np.rint(sample_array(case.labels, case.grid, grid, SpatialTransform.identity(grid.center), order=0))
    above, below = neighbours(case.vertebra_labels, level)
    assert above is not None and below is not None
    for cls, lab in ((1, above), (2, level), (3, below)):
        assert set(np.unique(vert[y[0] == cls]).tolist()) == {lab}
        assert (y[0] == cls).sum() > 0.8 * ((vert == lab) & (x[0] == 0)).sum()
    # the centre voxel lies in (or next to) the centred vertebra's body
    k, j, i = (np.asarray(y.shape[1:]) // 2).tolist()
    assert (y[0, k - 3 : k + 4, j - 3 : j + 4, i - 3 : i + 4] == 2).any()


def test_the_training_command_reads_mr_for_spineps_and_ct_otherwise():
    from spineseg_training.cli import build_parser, training_modality

    parse = build_parser().parse_args
    assert training_modality(parse(["spineps-semantic", "--out", "x"])) == "mr"
    assert training_modality(parse(["all", "--method", "spineps", "--out", "x"])) == "mr"
    assert training_modality(parse(["segmentation", "--out", "x"])) == "ct"
    assert training_modality(parse(["all", "--method", "lu_lumbar", "--out", "x"])) == "ct"


def test_trained_exported_and_run_writes_the_semantic_and_instance_masks(tmp_path, monkeypatch, capsys):
    """spineseg-train all --method spineps -> export (manifest modality mr) -> spineseg run --pipeline mr-t2w."""
    from spineseg_training import cli as train_cli
    from spineseg_training import config
    from spineseg_training.phantom_data import write_case

    data = tmp_path / "data"
    for seed in (41, 42):
        write_case(data, seed, replace(MR_LUMBAR, spacing=(2.0, 2.0, 4.0)))
    tiny = {
        "spineps-semantic": dict(crop_size=(16, 32, 32)),
        "spineps-instance": dict(crop_size=(16, 32, 32)),
    }
    for key, change in tiny.items():
        cfg = config.PRESETS["small"][key]
        net = {**cfg.network, "num_filters": 4, "num_levels": 2}
        monkeypatch.setitem(config.PRESETS["small"], key, replace(cfg, network=net, validate_every=10**6, **change))
    from slicer_fixtures import write_tiny_resources

    run, models = tmp_path / "run", write_tiny_resources(tmp_path) / "models"  # a ct-full-spine to add to
    common = ["--data", data, "--out", run, "--method", "spineps", "--val", "1", "--device", "cpu"]
    assert train_cli.main(["all", *map(str, common), "--iterations", "2", "--workers", "0"]) == 0
    export = ["export", *map(str, common), "--to", str(models), "--manifest", str(models / "manifest.json")]
    assert train_cli.main([*export, "--name-prefix", "mr-t2w", "--training-data", "2 MR phantoms"]) == 0
    entry = json.loads((models / "manifest.json").read_text())["pipelines"]["mr-t2w"]
    assert entry["method"] == "spineps" and entry["modality"] == "mr"
    assert set(entry["stages"]) == {"semantic", "instance"}
    monkeypatch.setenv("SPINESEG_RESOURCES", str(models.parent))
    case = sorted((data / "rawdata").rglob("*_T2w.nii.gz"))[0]
    out = tmp_path / "out"
    argv = ["run", str(case), "-o", str(out), "--pipeline", "mr-t2w", "--device", "cpu", "--progress", "none"]
    assert main(argv) == 0
    name = case.name.replace("_T2w.nii.gz", "")
    image = sitk.ReadImage(str(case))
    semantic = sitk.ReadImage(str(out / f"{name}_seg-spine_msk.nii.gz"))
    instances = sitk.ReadImage(str(out / f"{name}_seg-vert_msk.nii.gz"))
    assert semantic.GetSize() == instances.GetSize() == image.GetSize()
    assert set(np.unique(sitk.GetArrayFromImage(semantic)).tolist()) <= set(S.CLASSES)
    timings = json.loads((out / f"{name}_timings.json").read_text())
    assert timings["stages"] == ["semantic", "instance"] and f"{name}_seg-spine_msk.nii.gz" in timings["outputs"]
    assert timings["record"]["pipeline"] == "mr-t2w"
    # the same MR as a DICOM series (Modality MR) and no --pipeline: the MR pipeline is picked, and said
    series = tmp_path / "sub-mrdicom"
    _write_mr_series(sitk.Cast(image, sitk.sitkInt16), series)
    argv = ["run", str(series), "-o", str(out), "--device", "cpu", "--progress", "none"]
    assert main(argv) == 0
    timings = json.loads((out / "sub-mrdicom_timings.json").read_text())
    assert timings["record"]["pipeline"] == "mr-t2w" and timings["stages"] == ["semantic", "instance"]
    assert (out / "sub-mrdicom_seg-spine_msk.nii.gz").is_file()
    assert "DICOM Modality MR: pipeline mr-t2w" in capsys.readouterr().err


def _write_mr_series(image: sitk.Image, folder) -> None:
    """A DICOM series (Modality MR) of ``image``, one slice per file."""
    folder.mkdir(parents=True)
    arr = sitk.GetArrayFromImage(image).astype(np.int16)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    sx, sy, sz = image.GetSpacing()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(arr.shape[0]):
        sl = sitk.GetImageFromArray(arr[k])
        sl.SetSpacing((sx, sy))
        x, y, z = image.TransformIndexToPhysicalPoint((0, 0, k))
        row, col = direction[:, 0], direction[:, 1]
        tags = {
            "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
            "0008|0018": f"1.2.826.0.1.3680043.10.7.{k + 1}",
            "0008|0060": "MR",
            "0020|000d": "1.2.826.0.1.3680043.10.7",
            "0020|000e": "1.2.826.0.1.3680043.10.7.2",
            "0020|0052": "1.2.826.0.1.3680043.10.7.9",
            "0020|0013": str(k + 1),
            "0020|0032": f"{x}\\{y}\\{z}",
            "0020|0037": "\\".join(f"{v:.6f}" for v in (*row, *col)),
            "0018|0050": str(sz),
        }
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{k:03d}.dcm"))
        writer.Execute(sl)


def test_a_dicom_series_with_modality_mr_gets_the_mr_pipeline_without_the_flag(tmp_path, monkeypatch):
    """With mr-t2w in the manifest, `spineseg run DICOM_DIR` picks it for an MR series (and says so)."""
    from SpineSegLib.cli.run_cmd import pipeline_for_series
    from SpineSegLib.io.images import dicom_modality
    from SpineSegLib.models.manifest import ENV_RESOURCES
    from SpineSegLib.phantom import generate_phantom

    image = generate_phantom(43, replace(MR_LUMBAR, spacing=(2.0, 2.0, 4.0), orientation="LPS")).image
    series = tmp_path / "mr_series"
    _write_mr_series(image, series)
    assert dicom_modality(series) == "MR"
    models = tmp_path / "Resources" / "models"
    models.mkdir(parents=True)
    (models / "manifest.json").write_text(json.dumps({"schema_version": 1, "pipelines": {}}))
    monkeypatch.setenv(ENV_RESOURCES, str(models.parent))
    assert pipeline_for_series(series) is None  # no MR pipeline in this manifest: the default stays
    manifest = {"schema_version": 1, "pipelines": {"mr-t2w": {"method": "spineps", "modality": "mr", "stages": {}}}}
    (models / "manifest.json").write_text(json.dumps(manifest))
    assert pipeline_for_series(series) == "mr-t2w"
    assert pipeline_for_series(tmp_path / "Resources") is None  # not a DICOM series
