"""Training packs and the GPU entry point: packs hold what the samplers read, smaller than the cache;
gpu_train runs without SimpleITK and MONAI, stops at its deadline, resumes, and exports."""

import json
import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from spineseg_training.cli import main as train_cli
from spineseg_training.config import stage_config
from spineseg_training.data import cache_case, find_cases
from spineseg_training.losses import soft_dice_loss
from spineseg_training.pack import build_pack
from spineseg_training.packed import load_item, read_index, unpack
from spineseg_training.phantom_data import write_case
from spineseg_training.samples import segmentation_sample, vertebrae_sample
from spineseg_training.spatial import AugmentationConfig
from SpineSegLib.models import ModelCard, load_model, save_model
from SpineSegLib.networks import build_network
from SpineSegLib.phantom import PhantomConfig

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("spine", "vertebrae", "segmentation")
#: Runs a module as ``python -m`` with ``import SimpleITK`` and ``import monai`` failing, as on the GPU machine.
BLOCKED_RUN = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("SimpleITK", "monai"):
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    for seed in (3, 4, 5):
        write_case(root, seed, PhantomConfig(region="lumbar", spacing=(2.0, 2.0, 2.5), orientation="PIR"))
    return root


@pytest.fixture(scope="module")
def packs(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    for stage in STAGES:
        assert train_cli(["pack", "--data", str(dataset), "--out", str(out), "--stage", stage, "--val", "1"]) == 0
    return out


def _gpu_train(*args, timeout=120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", BLOCKED_RUN, "spineseg_training.gpu_train", *map(str, args)]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_packs_hold_the_training_cases_smaller_than_their_cache(packs):
    for stage in STAGES:
        index = read_index(packs / f"pack-{stage}")
        train, val = index["split"]["train"], index["split"]["validation"]
        assert index["stage"] == stage and len(train) == 2 and len(val) == 1 and not set(train) & set(val)
        assert len(index["items"]) == 2 and all(r["hu_step"] == 1 for r in index["items"])  # 36 MiB: lossless
        files = [packs / f"pack-{stage}" / r["file"] for r in index["items"]]
        pack_bytes = sum(f.stat().st_size for f in files) + (packs / f"pack-{stage}" / "index.json").stat().st_size
        cache_bytes = sum(f.stat().st_size for name in train for f in (packs / "cache" / name).glob("*.npy"))
        assert pack_bytes == index["bytes"] and index["cache_bytes"] == cache_bytes
        assert pack_bytes < cache_bytes / 20, (stage, pack_bytes, cache_bytes)
        with np.load(files[0]) as arrays:
            assert arrays["image"].dtype == np.int16
            assert set(arrays.files) == ({"image", "labels"} if stage == "segmentation" else {"image"})
            if stage == "segmentation":
                assert arrays["labels"].dtype == np.uint8
        spacing = index["items"][0]["grid"]["spacing"]
        assert spacing == {"spine": [8.0] * 3, "vertebrae": [2.0] * 3, "segmentation": [2.0, 2.0, 2.5]}[stage]


def test_packed_items_give_the_samples_of_the_cache(dataset, packs, tmp_path):
    cached = {c.name: cache_case(c, packs / "cache") for c in find_cases(dataset)}
    # Segmentation: the native image and mask, cropped: the very samples of the cache.
    index = read_index(packs / "pack-segmentation")
    scratch = unpack(packs / "pack-segmentation", tmp_path)
    cfg = replace(stage_config("segmentation"), augmentation=AugmentationConfig.none())
    for item in index["items"]:
        packed = load_item(scratch, item)
        (label,) = packed.vertebra_labels
        case = cached[item["name"].rsplit("_", 1)[0]]
        x0, y0 = segmentation_sample(case, cfg, np.random.default_rng(0), augment=False, label=label)
        x1, y1 = segmentation_sample(packed, cfg, np.random.default_rng(0), augment=False, label=label)
        np.testing.assert_allclose(x1, x0, atol=1e-4)  # (float32 sampling coordinates from another origin)
        np.testing.assert_allclose(y1, y0, atol=1e-4)
        assert y0.max() == 1.0
    # Vertebrae: resampled once to 2 mm: the same targets, nearly the same image.
    index = read_index(packs / "pack-vertebrae")
    scratch = unpack(packs / "pack-vertebrae", tmp_path)
    cfg = replace(stage_config("vertebrae"), crop_size=(48, 48, 64), augmentation=AugmentationConfig.none())
    for item in index["items"]:
        packed, case = load_item(scratch, item), cached[item["name"]]
        x0, y0 = vertebrae_sample(case, cfg, np.random.default_rng(1), augment=False)
        x1, y1 = vertebrae_sample(packed, cfg, np.random.default_rng(1), augment=False)
        np.testing.assert_allclose(y1, y0, atol=1e-6)
        assert np.abs(x1 - x0).mean() < 0.02  # normalised units (HU / 2048)


def test_a_budget_rounds_hu_to_fit(dataset, packs, tmp_path):
    cases = find_cases(dataset)
    lossless = read_index(packs / "pack-vertebrae")["bytes"] / 2**20
    index = build_pack(cases[:2], cases[2:], tmp_path / "p", "vertebrae", packs / "cache", max_mib=lossless / 2)
    assert index["bytes"] <= lossless / 2 * 2**20
    for item in index["items"]:
        assert item["hu_step"] > 1
        with np.load(tmp_path / "p" / item["file"]) as arrays:
            assert np.all((arrays["image"].astype(int) + 1024) % item["hu_step"] == 0)


def test_gpu_train_runs_without_simpleitk_and_monai_stops_resumes_and_exports(packs, tmp_path):
    pack, out, fetch = packs / "pack-segmentation", tmp_path / "run", tmp_path / "fetch"
    cfg = stage_config("segmentation")
    card = ModelCard("start", "segmentation", cfg.network, [1.0] * 3, list(cfg.crop_size), dict(cfg.intensity))
    start, _ = save_model(build_network(cfg.network), card, tmp_path / "init")
    common = ["--pack", pack, "--out", out, "--crop", 32, 32, 32, "--workers", 0, "--device", "cpu"]
    common += ["--scratch", tmp_path]
    first = _gpu_train(*common, "--minutes", 5, "--iterations", 2, "--init", start, "--fetch", fetch)
    assert first.returncode == 0, first.stderr
    assert "initialised segmentation from" in first.stderr
    ckpt = out / "segmentation" / "checkpoints" / "last.pt"
    assert torch.load(ckpt, weights_only=True)["iteration"] == 2
    assert math.isfinite(_log(out / "segmentation")[-1]["loss"])
    copy = torch.load(fetch / "segmentation" / "checkpoints" / "last.pt", weights_only=True)
    assert "optimizer" not in copy and copy["iteration"] == 2
    # Stops at its deadline with a checkpoint, having resumed (not restarted) from iteration 2.
    t0 = time.monotonic()
    second = _gpu_train(*common, "--minutes", 0.15, "--iterations", 100000, "--init", start)
    assert second.returncode == 0, second.stderr
    assert time.monotonic() - t0 < 9 + 30  # the deadline, plus imports and one iteration on a busy CPU
    assert "resumed segmentation at iteration 2" in second.stderr and "initialised" not in second.stderr
    state = torch.load(ckpt, weights_only=True)
    last = _log(out / "segmentation")[-1]
    assert state["iteration"] >= 2 and last["stopped"] == "deadline" and last["iteration"] == state["iteration"]
    assert "rng" in state and "optimizer" in state
    assert all(math.isfinite(r["loss"]) for r in _log(out / "segmentation") if r["loss"] is not None)
    # The run exports with spineseg-train export, unchanged, and loads with the model store.
    assert train_cli(["export", "--out", str(out), "--to", str(tmp_path / "models"), "--preset", "small"]) == 0
    net, loaded = load_model(
        tmp_path / "models" / "ct-full-spine-segmentation.safetensors",
        tmp_path / "models" / "ct-full-spine-segmentation.json",
    )
    assert loaded.validation["iteration"] == state["iteration"] and loaded.stage == "segmentation"
    trained = build_network(cfg.network)
    trained.load_state_dict(state["model"])
    x = torch.randn(1, 2, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), trained.eval()(x))
    assert train_cli(["export", "--out", str(fetch), "--to", str(tmp_path / "m2"), "--preset", "small"]) == 0


@pytest.mark.parametrize("stage", ["spine", "vertebrae"])
def test_gpu_train_trains_the_localisation_stages_from_their_packs(packs, stage, tmp_path):
    from spineseg_training.gpu_train import main

    args = ["--pack", packs / f"pack-{stage}", "--out", tmp_path, "--minutes", 5, "--iterations", 1]
    assert main([*map(str, args), "--crop", "32", "32", "32", "--workers", "0", "--scratch", str(tmp_path)]) == 0
    assert torch.load(tmp_path / stage / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 1
    assert math.isfinite(_log(tmp_path / stage)[-1]["loss"])


def _monai_block(in_channels, out_channels, kernel_size, negative_slope, dropout, norm):
    from monai.networks.blocks import Convolution

    return Convolution(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernel_size,
        act=("leakyrelu", {"negative_slope": negative_slope}),
        norm=(norm, {"affine": True}) if norm else None,
        dropout=dropout if dropout > 0 else None,
        adn_ordering="NAD" if norm else "AD",
    )


@pytest.mark.parametrize(
    "config",
    [
        {"architecture": "unet", "in_channels": 2, "out_channels": 1, "num_filters": 4, "num_levels": 3,
         "dropout": 0.2, "norm": "instance"},
        {"architecture": "scn", "in_channels": 1, "num_labels": 3, "num_filters": 4, "local_levels": 2,
         "spatial_levels": 2, "spatial_downsample": 2, "dropout": 0.1},
    ],
)  # fmt: skip
def test_networks_without_monai_equal_the_monai_built_ones(config, monkeypatch):
    from SpineSegLib.networks import unet

    torch.manual_seed(0)
    ours = build_network(config)
    with monkeypatch.context() as m:
        m.setattr(unet, "ConvADN", _monai_block)
        torch.manual_seed(0)
        theirs = build_network(config)
    assert any(type(b).__module__.startswith("monai") for b in theirs.modules())
    assert not any(type(b).__module__.startswith("monai") for b in ours.modules())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, theirs.state_dict()[key], rtol=0, atol=0)  # same initialisation
    x = torch.randn(2, config["in_channels"], 16, 16, 16)
    for train in (False, True):  # dropout draws the same masks from the same seed
        ours.train(train), theirs.train(train)
        torch.manual_seed(1)
        a = ours(x)
        torch.manual_seed(1)
        torch.testing.assert_close(a, theirs(x))


def test_soft_dice_equals_monai_dice_loss():
    from monai.losses import DiceLoss

    torch.manual_seed(0)
    logits, target = torch.randn(3, 2, 8, 8, 8), torch.rand(3, 2, 8, 8, 8).round()
    expected = DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0)(logits, target)
    torch.testing.assert_close(soft_dice_loss(logits, target), expected)
