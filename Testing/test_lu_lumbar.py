"""``lu_lumbar`` (Lu et al. 2023): networks, lumbar box, bone window, loss, and the pipeline end to end.

The end-to-end test trains both stages for a few iterations on lumbar phantoms with the training
CLI, exports them into a manifest, lists and runs the pipeline with ``spineseg`` and checks that
what comes out is well formed (a few iterations cannot segment well; the accuracy is a benchmark).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from SpineSegLib.cli import main
from SpineSegLib.errors import SpineSegError
from SpineSegLib.geometry import Grid
from SpineSegLib.labelmap import label_centroids
from SpineSegLib.methods import get_method
from SpineSegLib.methods.lu_lumbar.localisation import lumbar_box_from_heatmap
from SpineSegLib.methods.lu_lumbar.params import LocalisationParams
from SpineSegLib.methods.lu_lumbar.runner import LumbarPipeline
from SpineSegLib.models import ModelCard
from SpineSegLib.networks import LumbarLocalizationUNet, XUNet3D, build_network
from SpineSegLib.networks.xunet import InceptionBlock3D
from SpineSegLib.phantom import PhantomConfig
from SpineSegLib.pipeline.intensity import BONE_WINDOW, normalize
from SpineSegLib.pipeline.network_input import image_box


def test_inception_block_has_the_papers_branches_and_widths():
    block = InceptionBlock3D(256)
    kernels = {name: m.conv.kernel_size for name, m in block.named_modules() if hasattr(m, "conv")}
    # 1-1: 1x1x1 (64); 1-2 -> 2-1: 1x1x1 (32) -> 3x3x3 (128); 1-3 -> 2-2: 3x3x3 (16) -> 5x5x5 (32); pool -> 1x1x1 (32).
    assert kernels == {
        "b1": (1, 1, 1),
        "b2.0": (1, 1, 1),
        "b2.1": (3, 3, 3),
        "b3.0": (3, 3, 3),
        "b3.1": (5, 5, 5),
        "b4": (1, 1, 1),
    }
    widths = {name: m.conv.out_channels for name, m in block.named_modules() if hasattr(m, "conv")}
    assert widths == {"b1": 64, "b2.0": 32, "b2.1": 128, "b3.0": 16, "b3.1": 32, "b4": 32}
    x = torch.randn(1, 256, 4, 4, 8)
    assert block(x).shape == (1, 256, 4, 4, 8) == (1, block.out_channels, 4, 4, 8)


def test_xunet_and_localisation_unet_keep_the_input_size_and_need_its_divisor():
    torch.manual_seed(0)
    xunet = XUNet3D(out_channels=7, width=4).eval()
    loc = LumbarLocalizationUNet(width=8, num_levels=5).eval()
    with torch.no_grad():
        assert xunet(torch.randn(1, 1, 32, 16, 48)).shape == (1, 7, 32, 16, 48)
        assert loc(torch.randn(1, 1, 32, 16, 48)).shape == (1, 1, 32, 16, 48)
    assert xunet.size_divisor == loc.size_divisor == 16
    # The localisation decoder sees only the middle half of each skip's channels (the paper's X_k[16:48] of 64).
    assert loc._skip == (2, 6) and LumbarLocalizationUNet(width=64)._skip == (16, 48)
    assert build_network({"architecture": "xunet", "width": 4}).size_divisor == 16


def test_bone_window_maps_level_and_width_to_zero_one():
    hu = np.array([-1024.0, -500.0, 400.0, 1300.0, 3000.0], dtype=np.float32)
    lo = BONE_WINDOW["level"] - BONE_WINDOW["width"] / 2
    expected = np.clip((hu - lo) / BONE_WINDOW["width"], 0, 1)
    np.testing.assert_allclose(normalize(hu, BONE_WINDOW), expected)
    assert normalize(hu, BONE_WINDOW)[2] == pytest.approx(0.5)


def test_lumbar_box_is_the_largest_bright_region_expanded_by_a_tenth_of_the_image():
    grid = Grid((40, 30, 60), (4.0, 4.0, 4.0), (0.0, 0.0, 0.0))
    heat = np.zeros(grid.shape_kji, np.float32)
    heat[20:40, 10:20, 12:24] = 1.0  # the lumbar spine: the larger region
    heat[50:54, 2:5, 30:34] = 0.9  # a smaller bright spot, not part of the box
    heat[10:12, 10:20, 12:24] = 0.2  # below 0.3 of the peak
    lo, hi = grid.corners().min(0) - 2.0, grid.corners().max(0) + 2.0  # the image box (voxel edges)
    box = lumbar_box_from_heatmap(heat, grid, sitk.Image(1, 1, 1, sitk.sitkFloat32), LocalisationParams(), (lo, hi))
    region_lo = grid.index_to_physical([[12 - 0.5, 10 - 0.5, 20 - 0.5]])[0]
    region_hi = grid.index_to_physical([[23 + 0.5, 19 + 0.5, 39 + 0.5]])[0]
    grow = 0.1 * (hi - lo)
    np.testing.assert_allclose(box.lo, np.maximum(region_lo - grow, lo))
    np.testing.assert_allclose(box.hi, np.minimum(region_hi + grow, hi))
    assert box.peak == 1.0
    assert lumbar_box_from_heatmap(heat * 0.1, grid, None, LocalisationParams(), (lo, hi)) is None


def test_softmax_loss_matches_monai_dice_ce_where_every_class_is_present():
    from monai.losses import DiceCELoss

    from spineseg_training.lu_lumbar import softmax_ce_dice

    torch.manual_seed(1)
    logits = torch.randn(2, 4, 6, 6, 6)
    target = torch.arange(4).repeat_interleave(54).reshape(1, 1, 6, 6, 6).repeat(2, 1, 1, 1, 1).float()
    ref = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, smooth_nr=1.0, smooth_dr=1.0)
    torch.testing.assert_close(softmax_ce_dice(logits, target), ref(logits, target.long()), atol=1e-5, rtol=1e-5)
    perfect = 50.0 * torch.nn.functional.one_hot(target[:, 0].long(), 4).movedim(-1, 1).float()
    assert float(softmax_ce_dice(perfect, target)) < 1e-3


def _tiny_models(**seg_params) -> dict:
    from slicer_fixtures import tiny_lumbar_models

    return tiny_lumbar_models(**seg_params)


@pytest.fixture(scope="module")
def lumbar_phantom():
    from SpineSegLib.phantom import generate_phantom

    return generate_phantom(11, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.5)))


def test_random_tiny_networks_give_a_well_formed_result(lumbar_phantom):
    image = lumbar_phantom.image
    result = LumbarPipeline("test", device="cpu", models=_tiny_models()).run(image)
    out = result.labelmap
    assert out.GetSize() == image.GetSize() and out.GetSpacing() == image.GetSpacing()
    assert out.GetDirection() == image.GetDirection() and out.GetOrigin() == image.GetOrigin()
    arr = sitk.GetArrayFromImage(out)
    labels = sorted(int(v) for v in np.unique(arr) if v)
    assert set(labels) <= {20, 21, 22, 23, 24, 25}
    for lab in labels:  # one piece per vertebra
        assert sitk.GetArrayFromImage(sitk.ConnectedComponent(out == lab, True)).max() == 1
    assert result.centroids.labels == label_centroids(out).labels
    ilo, ihi = image_box(image)
    assert np.all(result.spine.lo >= ilo - 1e-6) and np.all(result.spine.hi <= ihi + 1e-6)
    assert set(result.timings) == {"localisation", "segmentation", "total"}


def test_labels_and_refusals(lumbar_phantom):
    pipe = LumbarPipeline("test", device="cpu", models=_tiny_models())
    everything = sitk.GetArrayFromImage(pipe.run(lumbar_phantom.image).labelmap)
    present = sorted(int(v) for v in np.unique(everything) if v)
    if present:
        only = sitk.GetArrayFromImage(pipe.run(lumbar_phantom.image, labels=present[:1]).labelmap)
        assert np.array_equal(only, np.where(everything == present[0], everything, 0))
    with pytest.raises(SpineSegError, match="cannot start from given vertebra points"):
        pipe.run(lumbar_phantom.image, centroids=lumbar_phantom.body_centroids)
    with pytest.raises(SpineSegError, match="needs the lumbar box"):
        pipe.run(lumbar_phantom.image, stages=["segmentation"])
    bad = _tiny_models(threshold=0.5)
    with pytest.raises(SpineSegError, match="unknown segmentation parameter.*'threshold'"):
        LumbarPipeline("test", device="cpu", models=bad).run(lumbar_phantom.image)


def test_trained_exported_listed_and_run_from_the_command_line(tmp_path, monkeypatch, capsys):
    """spineseg-train all --method lu_lumbar -> export -> spineseg pipelines / run --pipeline ct-lumbar."""
    from spineseg_training import cli as train_cli
    from spineseg_training import config
    from spineseg_training.phantom_data import write_case

    data = tmp_path / "data"
    for seed in (21, 22):
        write_case(data, seed, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.5)))
    loc_net = {"architecture": "lumbar_unet", "width": 4, "num_levels": 3}
    seg_net = {"architecture": "xunet", "out_channels": 7, "width": 4}
    tiny = {
        "lu_lumbar-localisation": dict(network=loc_net, crop_size=(16, 16, 32)),
        "lu_lumbar-segmentation": dict(network=seg_net, crop_size=(32, 32, 48)),
    }
    for key, change in tiny.items():
        monkeypatch.setitem(config.PRESETS["small"], key, replace(config.PRESETS["small"][key], **change))
    run, models = tmp_path / "run", tmp_path / "Resources" / "models"
    manifest = json.loads((Path(__file__).resolve().parent.parent / "Resources/models/manifest.json").read_text())
    models.mkdir(parents=True)
    (models / "manifest.json").write_text(json.dumps({"schema_version": 1, "pipelines": {}}))
    common = ["--data", data, "--out", run, "--method", "lu_lumbar", "--val", "1", "--device", "cpu"]
    assert train_cli.main(["all", *map(str, common), "--iterations", "2", "--workers", "0"]) == 0
    export = ["export", *map(str, common), "--to", str(models), "--manifest", str(models / "manifest.json")]
    assert train_cli.main([*export, "--name-prefix", "ct-lumbar", "--training-data", "2 lumbar phantoms"]) == 0
    written = json.loads((models / "manifest.json").read_text())["pipelines"]["ct-lumbar"]
    assert written["method"] == "lu_lumbar" and set(written["stages"]) == set(get_method("lu_lumbar").stage_names)
    assert ModelCard.read(models / "ct-lumbar-segmentation.json").method == "lu_lumbar"
    assert "ct-full-spine" in manifest["pipelines"]  # the bundled manifest is untouched
    monkeypatch.setenv("SPINESEG_RESOURCES", str(models.parent))
    assert main(["pipelines"]) == 0
    listed = capsys.readouterr().out
    assert "ct-lumbar: " in listed and "method lu_lumbar" in listed and "2 lumbar phantoms" in listed
    case = sorted((data / "rawdata").rglob("*_ct.nii.gz"))[0]
    out = tmp_path / "out"
    assert (
        main(["run", str(case), "-o", str(out), "--pipeline", "ct-lumbar", "--device", "cpu", "--progress", "none"])
        == 0
    )
    name = case.name.replace("_ct.nii.gz", "")
    timings = json.loads((out / f"{name}_timings.json").read_text())
    assert timings["stages"] == ["localisation", "segmentation"]
    mask = sitk.ReadImage(str(out / f"{name}_seg-vert_msk.nii.gz"))
    assert mask.GetSize() == sitk.ReadImage(str(case)).GetSize()
    assert set(np.unique(sitk.GetArrayFromImage(mask)).tolist()) <= {0, 20, 21, 22, 23, 24, 25}
    rc = main(["run", str(case), "-o", str(out), "--pipeline", "ct-lumbar", "--centroids", str(case), "--force"])
    assert rc == 2 and "does not start from given vertebra points" in capsys.readouterr().err
