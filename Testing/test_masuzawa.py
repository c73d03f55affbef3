"""``masuzawa`` (Masuzawa et al. 2020): the FCN, the region boxes, the label count and the walk end to end.

The walk is checked with stand-ins for the two trained networks (the external edge): on a synthetic CT
whose five vertebrae carry distinct HU, a region "network" maps each vertebra's HU to its region and an
instance "network" outputs the most cranial vertebra not yet in the memory channel, as the trained net is
meant to. Everything else (grids, the walk's search, convergence and memory, the count from the
thoracolumbar boundary, the merge onto the input grid, centroids) is the real code.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from SpineSegLib.errors import SpineSegError
from SpineSegLib.geometry import Grid
from SpineSegLib.methods.masuzawa.labelling import count_labels
from SpineSegLib.methods.masuzawa.params import RegionParams
from SpineSegLib.methods.masuzawa.regions import region_map
from SpineSegLib.methods.masuzawa.runner import IterativePipeline
from SpineSegLib.metrics import evaluate
from SpineSegLib.models import ModelCard
from SpineSegLib.networks import FCN3D
from SpineSegLib.pipeline.intensity import MASUZAWA_WINDOW, normalize

#: The synthetic spine, cranial to caudal: T11, T12, L1, L2, L3 with HU 350, 500, 650, 800, 950.
LEVELS = (18, 19, 20, 21, 22)
HU = {i: 200.0 + 150.0 * (i + 1) for i in range(len(LEVELS))}
BODY, AIR = 40.0, -1000.0


def test_fcn_has_the_papers_layers_and_keeps_the_input_size():
    net = FCN3D(in_channels=2, out_channels=1, width=4, num_levels=3).eval()
    deconvs = [m for m in net.modules() if isinstance(m, nn.ConvTranspose3d)]
    assert deconvs and all(d.kernel_size == (4, 4, 4) and d.stride == (2, 2, 2) for d in deconvs)
    assert any(isinstance(m, nn.BatchNorm3d) for m in net.modules())  # the paper's batch normalisation
    assert all(m.kernel_size == (3, 3, 3) for m in net.modules() if isinstance(m, nn.Conv3d) and m is not net.head)
    with torch.no_grad():
        assert net(torch.randn(1, 2, 8, 12, 16)).shape == (1, 1, 8, 12, 16)
    assert net.size_divisor == 4


@pytest.mark.parametrize(
    ("regions", "labels", "how"),
    [
        (["thoracic", "thoracic", "lumbar", "lumbar"], [18, 19, 20, 21], "thoracolumbar"),
        (["cervical", "cervical", "thoracic", "thoracic"], [6, 7, 8, 9], "cervicothoracic"),
        (["lumbar", "lumbar", "lumbar"], [22, 23, 24], "last lumbar"),
        (["cervical", "cervical"], [1, 2], "first cervical"),
        (["thoracic", "thoracic"], [18, 19], "last thoracic"),
        (["thoracic"] + ["lumbar"] * 7, [19, 20, 21, 22, 23, 24, 25, None], "thoracolumbar"),  # L6, then nothing
        # below L5, an instance the region network does not call lumbar is the sacrum, not an L6
        (["thoracic"] + ["lumbar"] * 5 + ["background"], [19, 20, 21, 22, 23, 24, None], "thoracolumbar"),
        (["background", "background"], [None, None], "no labels"),
    ],
)
def test_labels_are_counted_from_a_region_boundary(regions, labels, how):
    got, said = count_labels(regions)
    assert got == labels and how in said


def test_region_boxes_keep_every_large_piece_of_a_region_and_bound_their_union():
    grid = Grid((20, 20, 40), (4.0, 4.0, 4.0), (0.0, 0.0, 0.0))
    classes = np.zeros(grid.shape_kji, np.uint8)
    classes[30:35, 8:12, 8:12] = 2  # two thoracic vertebrae above (a disc between them)
    classes[25:29, 8:12, 8:12] = 2
    classes[10:24, 8:12, 8:12] = 3  # lumbar below
    classes[2, 2, 2] = 1  # a one-voxel "cervical" speck: below min_region_mm3
    lo, hi = grid.corners().min(0) - 2.0, grid.corners().max(0) + 2.0
    rm = region_map(classes, grid, RegionParams(margin_mm=(0.0, 0.0, 0.0)), (lo, hi))
    assert rm.found == ("thoracic", "lumbar") and (rm.classes == 1).sum() == 0
    np.testing.assert_allclose(rm.box.lo, grid.index_to_physical([[7.5, 7.5, 9.5]])[0])
    np.testing.assert_allclose(rm.box.hi, grid.index_to_physical([[11.5, 11.5, 34.5]])[0])
    assert rm.region_at(grid.index_to_physical([[10, 10, 30], [10, 10, 12], [0, 0, 0]])) == [
        "thoracic",
        "lumbar",
        "background",
    ]


def _decode(x: torch.Tensor) -> torch.Tensor:
    """Vertebra index (0-4) of each voxel from the normalised CT, -1 elsewhere (blended edges included)."""
    lo, width = MASUZAWA_WINDOW["level"] - MASUZAWA_WINDOW["width"] / 2, MASUZAWA_WINDOW["width"]
    hu = (x + 1.0) / 2.0 * width + lo
    index = torch.round((hu - 350.0) / 150.0)
    exact = (hu - (350.0 + 150.0 * index)).abs() < 15.0
    index = torch.where(exact & (index >= 0) & (index < len(LEVELS)), index, torch.full_like(index, -1))
    if index.ndim != 4:  # not a batch of volumes: nothing to open
        return index
    # Opening per vertebra: the blended rim of a brighter block passes through a darker block's HU; a
    # one- or two-voxel shell is not a vertebra.
    out = torch.full_like(index, -1)
    for i in range(len(LEVELS)):
        mask = (index == i).float()[:, None]
        opened = nn.functional.max_pool3d(-nn.functional.max_pool3d(-mask, 5, 1, 2), 5, 1, 2)[:, 0]
        out = torch.where(opened > 0.5, torch.full_like(index, i), out)
    return out


class RegionStandIn(nn.Module):
    """Stands in for the trained Semantic Segmentation Net: T11, T12 thoracic; L1-L3 lumbar."""

    size_divisor = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = _decode(x[:, 0])
        cls = torch.where(index < 0, 0, torch.where(index < 2, 2, 3)).long()
        return 20.0 * nn.functional.one_hot(cls, 4).movedim(-1, 1).float()


class InstanceStandIn(nn.Module):
    """Stands in for the trained instance net: the most cranial vertebra in the patch not in the memory."""

    size_divisor = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index, memory = _decode(x[:, 0]), x[:, 1] > 0.5
        out = torch.full_like(index, -20.0)
        for b in range(x.shape[0]):
            free = index[b][~memory[b]]
            # A real vertebra, not a rim of blended voxels that happens to decode to a vertebra's HU.
            present = [i for i in range(len(LEVELS)) if int((free == i).sum()) >= 100]
            if present:  # the vertebra grown by its blended rim (one voxel), outside the memory
                chosen = (index[b] == present[0]).float()[None, None]
                grown = nn.functional.max_pool3d(chosen, 3, 1, 1)[0, 0] > 0.5
                out[b][grown & ~memory[b]] = 20.0
        return out[:, None]


def synthetic_spine() -> tuple[sitk.Image, sitk.Image]:
    """Five 30 x 30 x 22 mm blocks, 8 mm apart, in a soft-tissue body in air (1.5 mm; LPS +z is superior)."""
    size = (60, 60, 140)
    image = np.full(size[::-1], AIR, np.float32)
    image[:, 5:55, 5:55] = BODY
    mask = np.zeros(size[::-1], np.uint8)
    for i, level in enumerate(LEVELS):
        top = 120 - i * 20  # voxel k of the block's top (1.5 mm: 30 mm per vertebra + gap)
        image[top - 15 : top, 20:40, 20:40] = HU[i]
        mask[top - 15 : top, 20:40, 20:40] = level
    img = sitk.GetImageFromArray(image)
    img.SetSpacing((1.5, 1.5, 1.5))
    img.SetOrigin((-45.0, -45.0, -100.0))
    seg = sitk.GetImageFromArray(mask)
    seg.CopyInformation(img)
    return img, seg


def _models() -> dict:
    regions = ModelCard("regions", "regions", {}, [4.0] * 3, [16] * 3, dict(MASUZAWA_WINDOW), method="masuzawa")
    regions.params = {"min_region_mm3": 500.0}
    instances = ModelCard("inst", "instances", {}, [2.0] * 3, [32, 32, 32], dict(MASUZAWA_WINDOW), method="masuzawa")
    instances.params = {"mixed_precision": False}
    return {"regions": (RegionStandIn(), regions), "instances": (InstanceStandIn(), instances)}


def test_decoding_recovers_every_vertebra_from_the_normalised_ct():
    hu = np.array([AIR, BODY, *HU.values()], np.float32)
    assert _decode(torch.from_numpy(normalize(hu, MASUZAWA_WINDOW))).tolist() == [-1, -1, 0, 1, 2, 3, 4]


def test_the_walk_finds_segments_and_names_every_vertebra_top_down():
    image, truth = synthetic_spine()
    result = IterativePipeline("test", device="cpu", models=_models()).run(image)
    assert result.centroids.labels == list(LEVELS)
    ev = evaluate(result.labelmap, truth)
    for level in LEVELS:
        # The stand-in's mask is binary on the 2 mm patch grid: surfaces within one patch voxel.
        assert ev.per_vertebra[level].hd <= 2.0 and ev.per_vertebra[level].dice > 0.85, level
        assert ev.per_vertebra[level].identified
    assert ev.summary.n_extra == 0
    assert set(result.timings) == {"regions", "instances", "total"} and not result.messages


def test_labels_filter_and_refusals():
    image, _ = synthetic_spine()
    pipe = IterativePipeline("test", device="cpu", models=_models())
    only = pipe.run(image, labels=[20])
    assert only.centroids.labels == [20]
    with pytest.raises(SpineSegError, match="cannot start from given vertebra points"):
        pipe.run(image, centroids=only.centroids)
    with pytest.raises(SpineSegError, match="needs the spine regions"):
        pipe.run(image, stages=["instances"])
    empty = sitk.Image(image.GetSize(), sitk.sitkFloat32) + BODY
    empty.CopyInformation(image)
    none = pipe.run(empty)
    assert any("no spine found" in m for m in none.messages) and not sitk.GetArrayFromImage(none.labelmap).any()


def test_trained_exported_and_run_from_the_command_line(tmp_path, monkeypatch, capsys):
    """spineseg-train all --method masuzawa -> export -> spineseg run --pipeline ct-iterative (well formed)."""
    import json
    from dataclasses import replace

    from spineseg_training import cli as train_cli
    from spineseg_training import config
    from spineseg_training.phantom_data import write_case
    from SpineSegLib.cli import main
    from SpineSegLib.phantom import PhantomConfig

    data = tmp_path / "data"
    for seed in (31, 32):
        write_case(data, seed, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.5)))
    tiny = {"architecture": "fcn", "width": 2, "num_levels": 2, "norm": "instance"}
    for key, channels, crop in (("masuzawa-regions", (1, 4), (16, 16, 24)), ("masuzawa-instances", (2, 1), (16,) * 3)):
        net = {**tiny, "in_channels": channels[0], "out_channels": channels[1]}
        monkeypatch.setitem(
            config.PRESETS["small"], key, replace(config.PRESETS["small"][key], network=net, crop_size=crop)
        )
    run, models = tmp_path / "run", tmp_path / "Resources" / "models"
    models.mkdir(parents=True)
    common = ["--data", str(data), "--out", str(run), "--method", "masuzawa", "--val", "1", "--device", "cpu"]
    assert train_cli.main(["all", *common, "--iterations", "2", "--workers", "0"]) == 0
    export = ["export", *common, "--to", str(models), "--manifest", str(models / "manifest.json")]
    assert train_cli.main([*export, "--name-prefix", "ct-iterative", "--training-data", "2 lumbar phantoms"]) == 0
    entry = json.loads((models / "manifest.json").read_text())["pipelines"]["ct-iterative"]
    assert entry["method"] == "masuzawa" and set(entry["stages"]) == {"regions", "instances"}
    monkeypatch.setenv("SPINESEG_RESOURCES", str(models.parent))
    case = sorted((data / "rawdata").rglob("*_ct.nii.gz"))[0]
    out = tmp_path / "out"
    args = ["run", str(case), "-o", str(out), "--pipeline", "ct-iterative", "--device", "cpu", "--progress", "none"]
    assert main(args) == 0, capsys.readouterr().err
    name = case.name.replace("_ct.nii.gz", "")
    assert json.loads((out / f"{name}_timings.json").read_text())["stages"] == ["regions", "instances"]
    mask = sitk.ReadImage(str(out / f"{name}_seg-vert_msk.nii.gz"))
    assert mask.GetSize() == sitk.ReadImage(str(case)).GetSize()
