"""The training package: augmentation geometry, samples, checkpoints/resume, export to loadable weights."""

import json
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from spineseg_training.config import stage_config
from spineseg_training.data import cache_case, find_cases, split_cases
from spineseg_training.export import export_stage
from spineseg_training.phantom_data import HELD_OUT_SEED_START, make_dataset, write_case
from spineseg_training.samples import segmentation_sample, spine_sample, vertebrae_sample
from spineseg_training.spatial import AugmentationConfig, SpatialTransform, sample_array
from spineseg_training.trainer import Trainer
from SpineSegLib import labels as L
from SpineSegLib.geometry import Grid
from SpineSegLib.models import load_model
from SpineSegLib.phantom import PhantomConfig

TINY_UNET = {"architecture": "unet", "in_channels": 2, "out_channels": 1, "num_filters": 4, "num_levels": 3}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    for seed in (3, 4, 5):
        write_case(root, seed, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.5), orientation="PIR"))
    return root


@pytest.fixture(scope="module")
def cached(dataset, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return [cache_case(c, cache) for c in find_cases(dataset)]


def test_transform_inverse_recovers_points_with_elastic_deformation():
    rng = np.random.default_rng(0)
    grid = Grid.centered([10.0, -20.0, 300.0], (64, 64, 128), (2.0, 2.0, 2.0))  # a localisation crop
    t = SpatialTransform.random(rng, grid, AugmentationConfig())
    pts = grid.center + rng.uniform(-60, 60, (50, 3))
    np.testing.assert_allclose(t.apply(t.invert(pts)), pts, atol=1e-3)
    identity = SpatialTransform.identity(grid.center)
    np.testing.assert_allclose(identity.apply(pts), pts)


def test_sample_array_equals_simpleitk_resampling_for_an_affine_transform():
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(40, 36, 30)).astype(np.float32)
    vgrid = Grid((30, 36, 40), (1.2, 1.0, 1.5), (-5.0, 3.0, 7.0))
    out = Grid.centered(vgrid.center + [2.0, -1.0, 3.0], (16, 14, 12), (1.0, 1.0, 1.0))
    t = SpatialTransform.random(rng, out, AugmentationConfig(elastic_points=0, translation_mm=5.0))
    ours = sample_array(vol, vgrid, out, t, order=1, cval=-7.0)
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(t.matrix.ravel().tolist())
    affine.SetCenter(t.center.tolist())
    affine.SetTranslation(t.translation.tolist())
    image = vgrid.apply(sitk.GetImageFromArray(vol))
    ref = sitk.Resample(
        image,
        [int(s) for s in out.size],
        affine,
        sitk.sitkLinear,
        out.origin,
        out.spacing,
        out.direction,
        -7.0,
        sitk.sitkFloat32,
    )
    np.testing.assert_allclose(ours, sitk.GetArrayFromImage(ref), atol=1e-4)
    # select=: the linearly resampled indicator of one label (a partial-volume mask)
    labels = (rng.random(size=vol.shape) * 4).astype(np.uint8)
    fraction = sample_array(labels, vgrid, out, t, order=1, cval=0.0, select=3)
    indicator = vgrid.apply(sitk.GetImageFromArray((labels == 3).astype(np.float32)))
    ref = sitk.Resample(
        indicator, [int(s) for s in out.size], affine, sitk.sitkLinear, out.origin, out.spacing, out.direction, 0.0
    )
    np.testing.assert_allclose(fraction, sitk.GetArrayFromImage(ref), atol=1e-5)
    assert 0.0 < fraction.mean() < 1.0


def test_unaugmented_samples_put_targets_on_the_anatomy(cached):
    case = cached[0]
    rng = np.random.default_rng(2)
    cfg = replace(stage_config("vertebrae"), crop_size=(32, 32, 64), augmentation=AugmentationConfig.none())
    x, y = vertebrae_sample(case, cfg, rng, augment=False)
    assert x.shape == (1, 64, 32, 32) and y.shape == (len(L.HEATMAP_LABELS), 64, 32, 32)
    grid = Grid.centered(np.zeros(3), cfg.crop_size, cfg.spacing_mm)  # only its index frame is used below
    present = [lab for lab in case.vertebra_labels if y[L.HEATMAP_LABELS.index(lab)].max() > 0.9]
    assert present, "no vertebra inside the crop"
    for lab in present:
        k, j, i = np.unravel_index(np.argmax(y[L.HEATMAP_LABELS.index(lab)]), y.shape[1:])
        assert x[0, k, j, i] > 0.05  # the target peak sits in bone (vertebral body), not in soft tissue
    del grid
    seg_cfg = replace(stage_config("segmentation"), augmentation=AugmentationConfig.none())
    label = case.vertebra_labels[len(case.vertebra_labels) // 2]
    x, y = segmentation_sample(case, seg_cfg, rng, augment=False, label=label)
    assert x.shape == (2, 96, 128, 128) and y.min() == 0.0 and y.max() == 1.0
    peak = np.unravel_index(np.argmax(x[1]), x.shape[1:])
    assert y[0][peak] == pytest.approx(1.0)  # the Gaussian marks the vertebra the mask is of
    assert x[0][y[0] > 0.5].mean() > x[0][y[0] < 0.5].mean()  # the mask covers bright bone
    # The target is a partial-volume mask sampled from the native 2 x 2 x 2.5 mm grid: fractions at the
    # boundary only, and its integral is the vertebra's volume there (trilinear interpolation keeps the mass).
    native = np.asarray(case.native_labels) == label
    native_mm3 = native.sum() * np.prod(case.native_labels_grid.spacing)
    assert y.sum() * np.prod(seg_cfg.spacing_mm) == pytest.approx(native_mm3, rel=0.02)
    partial = (y > 1e-4) & (y < 1 - 1e-4)  # (float32 interpolation weights sum to 1 within 1e-7)
    assert 0 < partial.sum() < (y > 0).sum()
    # Fractions ramp over at most one native voxel (its diagonal: 3.8 mm) around the 0.5 level, the scored boundary.
    inside = y[0] >= 0.5
    to_other_side = np.where(inside, ndimage.distance_transform_edt(inside), ndimage.distance_transform_edt(~inside))
    assert to_other_side[partial[0]].max() <= np.linalg.norm(case.native_labels_grid.spacing)
    sx, sy = spine_sample(case, stage_config("spine"), rng, augment=False)
    assert sx.shape == sy.shape == (1, 96, 48, 48) and sy.max() == pytest.approx(1.0)


def test_cases_without_body_centroids_are_left_out_with_a_warning(dataset, tmp_path):
    import shutil

    copy = tmp_path / "d"
    shutil.copytree(dataset, copy)
    victim = next(copy.glob("derivatives/*/*_ctd.json"))
    victim.unlink()
    with pytest.warns(UserWarning, match="no \\*_ctd.json centroid file"):
        cases = find_cases(copy)
    assert len(cases) == 2
    train, val = split_cases(cases, 1)
    assert len(train) == 1 and len(val) == 1 and train[0] != val[0]


def test_held_out_seed_ranges_are_enforced(tmp_path):
    with pytest.raises(ValueError, match="below 100000"):
        make_dataset(tmp_path, range(HELD_OUT_SEED_START - 1, HELD_OUT_SEED_START + 1), "train", progress=False)
    with pytest.raises(ValueError, match=">= 100000"):
        make_dataset(tmp_path, range(5, 6), "benchmark", progress=False)


def test_training_resumes_from_its_checkpoint_and_exports_loadable_weights(dataset, tmp_path):
    cases = find_cases(dataset)
    cfg = replace(
        stage_config("segmentation"),
        network=TINY_UNET,
        crop_size=(32, 32, 24),
        iterations=6,
        checkpoint_every=2,
        validate_every=1000,
    )
    out = tmp_path / "run"
    first = Trainer(cfg, cases, [], out, tmp_path / "cache", device="cpu", num_workers=0)
    first.fit(iterations=4, progress=False)
    saved = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert saved["iteration"] == 4
    second = Trainer(cfg, cases, [], out, tmp_path / "cache", device="cpu", num_workers=0)
    assert second.resume() and second.iteration == 4
    for name, value in second.model.state_dict().items():
        torch.testing.assert_close(value, saved["model"][name])
    second.fit(progress=False)
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 6
    lines = (out / "log.jsonl").read_text().splitlines()
    assert lines  # losses were logged
    weights, card = export_stage(
        out,
        cfg,
        "tiny-seg",
        tmp_path / "models",
        "3 lumbar phantoms",
        which="last",
        manifest=tmp_path / "models" / "manifest.json",
    )
    net, loaded_card = load_model(weights, card)
    assert loaded_card.stage == "segmentation" and loaded_card.training_data == "3 lumbar phantoms"
    x = torch.randn(1, 2, 24, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), second.model.eval()(x))


def test_fine_tuning_starts_from_exported_weights_of_the_same_network(dataset, tmp_path):
    from SpineSegLib.errors import SpineSegError
    from SpineSegLib.models import ModelCard, save_model
    from SpineSegLib.networks import build_network

    cases = find_cases(dataset)
    cfg = replace(stage_config("segmentation"), network=TINY_UNET, crop_size=(32, 32, 24), iterations=2)
    torch.manual_seed(5)
    start = build_network(TINY_UNET)
    card = ModelCard("start", "segmentation", TINY_UNET, [1.0] * 3, [32, 32, 24], dict(cfg.intensity))
    weights, _ = save_model(start, card, tmp_path)
    tuned = Trainer(
        cfg, cases, [], tmp_path / "run", tmp_path / "cache", device="cpu", num_workers=0, init_weights=weights
    )
    assert not tuned.resume()
    tuned.initialize(weights)
    for name, value in start.state_dict().items():
        torch.testing.assert_close(tuned.model.state_dict()[name], value)
    tuned.fit(progress=False)  # trains on from there and checkpoints; a rerun resumes instead of re-initialising
    again = Trainer(
        cfg, cases, [], tmp_path / "run", tmp_path / "cache", device="cpu", num_workers=0, init_weights=weights
    )
    assert again.resume() and again.iteration == 2
    # Export keeps the calibrated post-processing of the card the fine-tune started from.
    calibrated = tmp_path / "calibrated.json"
    calibrated.write_text(
        json.dumps({**json.loads(weights.with_suffix(".json").read_text()), "params": {"threshold": 0.6}})
    )
    _, tuned_card = export_stage(tmp_path / "run", cfg, "tuned", tmp_path / "out", "x", params_from=calibrated)
    assert json.loads(tuned_card.read_text())["params"] == {"threshold": 0.6} != cfg.params
    with pytest.raises(SpineSegError, match="not one of stage 'segmentation'"):
        calibrated.write_text(json.dumps({"stage": "spine", "params": {}}))
        export_stage(tmp_path / "run", cfg, "tuned", tmp_path / "out", "x", params_from=calibrated)
    other = replace(cfg, network={**TINY_UNET, "num_filters": 6})
    with pytest.raises(SpineSegError, match="--init weights are a"):
        Trainer(other, cases, [], tmp_path / "other", tmp_path / "cache", device="cpu", num_workers=0).initialize(
            weights
        )


def test_a_changed_network_refuses_to_resume(dataset, tmp_path):
    cases = find_cases(dataset)
    cfg = replace(
        stage_config("segmentation"), network=TINY_UNET, crop_size=(32, 32, 24), iterations=2, checkpoint_every=2
    )
    Trainer(cfg, cases, [], tmp_path / "run", tmp_path / "cache", device="cpu", num_workers=0).fit(progress=False)
    other = replace(cfg, network={**TINY_UNET, "num_filters": 6})
    with pytest.raises(RuntimeError, match="checkpoint network differs"):
        Trainer(other, cases, [], tmp_path / "run", tmp_path / "cache", device="cpu", num_workers=0).resume()


@pytest.mark.parametrize("stage", ["spine", "vertebrae", "segmentation"])
def test_default_augmentation_never_folds_the_crop(stage):
    """Jacobian determinant of the random map stays well above 0 on every stage's crop (no folding)."""
    cfg = stage_config(stage)
    grid = Grid.centered([0.0, 0.0, 0.0], cfg.crop_size, cfg.spacing_mm)
    rng = np.random.default_rng(3)
    axes = [np.linspace(0, n - 1, 7) for n in grid.size]
    lattice = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    pts = grid.index_to_physical(lattice)
    h = 0.5
    for _ in range(20):
        t = SpatialTransform.random(rng, grid, cfg.augmentation)
        jac = np.stack([(t.apply(pts + h * e) - t.apply(pts - h * e)) / (2 * h) for e in np.eye(3)], axis=2)
        det = np.linalg.det(jac) / np.linalg.det(t.matrix)
        assert det.min() > 0.3, det.min()


@pytest.mark.parametrize("stage", ["vertebrae", "segmentation"])
def test_calibration_picks_the_best_threshold_and_writes_it_into_the_card(dataset, stage, tmp_path):
    from slicer_fixtures import tiny_models

    from spineseg_training.calibrate import calibrate_card
    from spineseg_training.validate import ValidationCase, validate_vertebrae
    from SpineSegLib.metrics import evaluate
    from SpineSegLib.models import ModelCard, save_model
    from SpineSegLib.pipeline.segmentation import segment_vertebrae

    net, card = tiny_models()[stage]
    _, card_path = save_model(net, card, tmp_path)
    cases = [ValidationCase(c) for c in find_cases(dataset)]
    device = torch.device("cpu")
    result = calibrate_card(card_path, net, cases, device)
    table, chosen = result["table"], result["chosen"]
    if stage == "vertebrae":  # identification first, point error breaks ties (as validate_vertebrae scores)
        scores = [r["id_rate"] - 1e-3 * r["pe_mean_mm"] for r in table]
        assert len(table) >= 4 and len(set(scores)) >= 2  # the thresholds matter on these cases
        row = next(r for r in table if all(r[k] == v for k, v in chosen.items()))
        assert scores[table.index(row)] == max(scores)
    else:
        scores = [r["dice_mean"] for r in table]
        assert len(table) >= 4 and len(set(scores)) >= 2
        row = next(r for r in table if r["threshold"] == chosen["threshold"])
        assert row["dice_mean"] == max(scores)
        assert {k for k in row if k.startswith("n_")} and sum(row[k] for k in row if k.startswith("n_")) >= len(cases)
    written = ModelCard.read(card_path)
    assert {k: written.params[k] for k in chosen} == chosen
    assert written.validation["calibration"]["chosen"] == chosen
    if stage == "vertebrae":
        # The table (heatmaps computed once, post-processing repeated) equals a full validation run with the choice.
        check = validate_vertebrae(net, written, cases, device)
        assert check["id_rate"] == pytest.approx(row["id_rate"])
        assert check["pe_mean_mm"] == pytest.approx(row["pe_mean_mm"])
    else:
        # The replayed merge equals inference: every vertebra segmented by segment_vertebrae with the
        # written card, scored per vertebra by SpineSegLib.metrics.evaluate, pooled.
        dices = []
        for case in cases:
            pred = segment_vertebrae(case.image, case.centroids, net, written, device)
            rows = evaluate(pred, case.mask, ignore=[lab for lab in L.LABELS if lab not in L.VERTEBRA_LABELS])
            dices += [m.dice for m in rows.per_vertebra.values()]
        assert np.mean(dices) == pytest.approx(row["dice_mean"])


def test_calibrate_uses_every_case_of_a_separate_calibration_set(dataset, tmp_path):
    from slicer_fixtures import tiny_models

    from spineseg_training.cli import main
    from SpineSegLib.models import ModelCard, save_model

    net, card = tiny_models()["segmentation"]
    _, card_path = save_model(net, card, tmp_path)
    prefix = card.name.removesuffix("-segmentation")
    names = sorted(c.name for c in find_cases(dataset))
    args = ["calibrate", "--data", str(dataset), "--out", str(tmp_path), "--to", str(tmp_path), "--name-prefix", prefix]
    for val, n in ((100, len(names)), (1, 1)):  # --val >= the number of cases: all of them; else a held-out split
        assert main([*args, "--val", str(val), "--device", "cpu"]) == 0
        used = ModelCard.read(card_path).validation["calibration"]["cases"]
        assert len(used) == n and set(used) <= set(names)
