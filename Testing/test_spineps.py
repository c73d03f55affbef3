"""``spineps`` (SPINEPS, sagittal T2w MR) end to end with stand-ins for its two trained networks.

The synthetic MR is the column of ``test_spineps_geometry.spine`` painted with one intensity per
structure. The semantic "network" decodes each voxel's structure from its intensity, and the
instance "network" answers, for a one-hot semantic cutout, with the vertebra at its centre and the
ones above and below (connected vertebra components ordered along the spine), as the trained nets
are meant to. Everything between them is the real code: grids, sliding-window inference, clean-up,
centres, cutouts, inter-Dice fusion, orphans, labels, discs, resampling to the input grid.
A tiny random network runs through the same code for well-formed outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage
from test_spineps_geometry import spine
from torch import nn

from SpineSegLib.errors import SpineSegError
from SpineSegLib.methods.spineps import semantic_ids as S
from SpineSegLib.methods.spineps.runner import SpinepsPipeline
from SpineSegLib.metrics import evaluate
from SpineSegLib.models import ModelCard
from SpineSegLib.networks import UNetRegressor

WINDOW = {"type": "window", "level": 500.0, "width": 1000.0}
STEP = 20.0  # intensity per semantic channel


def synthetic_mr(n: int = 5, dens: bool = False, sacrum: bool = True):
    sem, inst = spine(n, dens=dens, sacrum=sacrum)
    channel = S.id_to_class(sem)
    image = sitk.GetImageFromArray((channel * STEP + 10.0).astype(np.float32))
    image.SetSpacing((1.0, 1.0, 1.0))
    image.SetOrigin((-20.0, -30.0, 0.0))
    return image, sem, inst


class SemanticStandIn(nn.Module):
    size_divisor = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = torch.round((x[:, 0] * WINDOW["width"] - 10.0) / STEP).long().clamp(0, len(S.CLASSES) - 1)
        return 20.0 * nn.functional.one_hot(channel, len(S.CLASSES)).movedim(-1, 1).float()


class InstanceStandIn(nn.Module):
    size_divisor = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 4, *x.shape[2:])
        out[:, 0] = 10.0
        for b in range(x.shape[0]):
            vert = (x[b, 1:].sum(0) > 0.5).numpy()
            comp, n = ndimage.label(vert)
            if not n:
                continue
            k_centres = np.array([c[0] for c in ndimage.center_of_mass(vert, comp, range(1, n + 1))])
            centre = np.array(vert.shape) / 2.0
            at = int(np.argmin(np.abs(k_centres - centre[0]))) + 1
            order = list(np.argsort(-k_centres) + 1)  # top (largest k) first
            i = order.index(at)
            for slot, pick in ((1, i - 1), (2, i), (3, i + 1)):
                if 0 <= pick < n:
                    out[b, slot][torch.from_numpy(comp == order[pick])] = 30.0
        return out


def cards(semantic_size=(32, 32, 32), instance_size=(40, 60, 64)):
    sem = ModelCard("sem", "semantic", {}, [1.0] * 3, list(semantic_size), dict(WINDOW), method="spineps")
    sem.params = {"mixed_precision": False}
    ins = ModelCard("ins", "instance", {}, [1.0] * 3, list(instance_size), dict(WINDOW), method="spineps")
    ins.params = {"mixed_precision": False}
    return sem, ins


def stand_ins():
    sem, ins = cards()
    return {"semantic": (SemanticStandIn(), sem), "instance": (InstanceStandIn(), ins)}


def test_a_lumbar_mr_with_its_sacrum_gives_l1_to_l5_discs_and_body_centres():
    image, sem, inst = synthetic_mr(5)
    result = SpinepsPipeline("test", device="cpu", models=stand_ins()).run(image)
    out = sitk.GetArrayFromImage(result.labelmap)
    assert result.centroids.labels == [20, 21, 22, 23, 24]
    truth = np.zeros(out.shape, np.uint16)
    for i, vid in enumerate(range(20, 25), start=1):
        truth[inst == i] = vid
    vert = sitk.GetImageFromArray(np.where(out < 100, out, 0).astype(np.uint16))
    ev = evaluate(vert, sitk.GetImageFromArray(truth)).to_json()
    assert ev["summary"]["dice_mean"] > 0.97, ev["summary"]
    assert sorted(int(v) for v in np.unique(out) if 100 < v < 200) == [120, 121, 122, 123]
    assert np.array_equal(sitk.GetArrayFromImage(result.semantic), sem)
    body = (inst == 3) & np.isin(sem, S.BODY_IDS)
    want = result.labelmap.TransformContinuousIndexToPhysicalPoint(ndimage.center_of_mass(body)[::-1])
    assert np.linalg.norm(result.centroids[22] - want) < 1.0
    assert not any("labels:" in m for m in result.messages)


def test_a_cervical_mr_is_counted_from_the_dens_and_a_scan_without_anchor_is_flagged():
    image, sem, inst = synthetic_mr(4, dens=True, sacrum=False)
    result = SpinepsPipeline("test", device="cpu", models=stand_ins()).run(image)
    assert result.centroids.labels == [2, 3, 4, 5]
    image, sem, inst = synthetic_mr(3, sacrum=False)
    result = SpinepsPipeline("test", device="cpu", models=stand_ins()).run(image)
    assert result.centroids.labels == [22, 23, 24]
    assert any("neither dens nor sacrum" in m for m in result.messages)


def test_a_ct_given_to_the_mr_pipeline_is_named_and_stages_are_checked():
    ct = sitk.GetImageFromArray(np.random.default_rng(0).normal(40, 30, (40, 40, 40)).astype(np.int16))
    arr = sitk.GetArrayFromImage(ct)
    arr[:8] = -1000
    arr[20:26, 15:25, 15:25] = 900
    ct = sitk.GetImageFromArray(arr)
    result = SpinepsPipeline("test", device="cpu", models=stand_ins()).run(ct, stages=["semantic"])
    assert any("looks like CT" in m for m in result.messages)
    with pytest.raises(SpineSegError, match="semantic stage too"):
        SpinepsPipeline("test", device="cpu", models=stand_ins()).run(ct, stages=["instance"])


def test_tiny_random_networks_give_well_formed_outputs():
    torch.manual_seed(0)
    sem_card, ins_card = cards((16, 16, 16), (16, 16, 16))
    models = {
        "semantic": (UNetRegressor(1, len(S.CLASSES), num_filters=4, num_levels=2).eval(), sem_card),
        "instance": (UNetRegressor(S.INSTANCE_CHANNELS, 4, num_filters=4, num_levels=2).eval(), ins_card),
    }
    image, _, _ = synthetic_mr(2)
    result = SpinepsPipeline("test", device="cpu", models=models).run(image)
    assert result.semantic.GetSize() == image.GetSize() and result.labelmap.GetSize() == image.GetSize()
    assert set(np.unique(sitk.GetArrayFromImage(result.semantic))) <= set(S.CLASSES)
    assert {"semantic", "total"} <= set(result.timings)
