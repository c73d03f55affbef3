"""Train one stage from a pack, on a machine without SimpleITK or MONAI (a lent GPU machine).

    PYTHONPATH=training python3 -m spineseg_training.gpu_train --pack packs/vertebrae \\
        --out /tmp/spineseg-run --stage vertebrae --preset paper --minutes 9 --fetch /tmp/spineseg-fetch

It stops after ``--minutes`` of wall clock, counted from its start, with a checkpoint (exit
status 0), so that a command with a hard time limit ends cleanly; the next call with the same
``--out`` resumes (model, optimiser, iteration, generators). It is :class:`.trainer.Trainer` with
the samples read from the pack: ``<out>/<stage>/checkpoints/last.pt`` and ``log.jsonl`` are
what ``spineseg-train <stage>`` writes, so ``spineseg-train export --out <out>`` works unchanged.
CUDA with bfloat16 autocast when there is a GPU, float32 on the CPU. No validation (the
inference code needs SimpleITK): validate and calibrate the exported weights on the CPU machine.
``--fetch DIR`` also writes the run without its optimiser state (a third of the bytes) to DIR:
export reads it, and a later run resumes from it with a fresh optimiser.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from SpineSegLib.errors import SpineSegError
from SpineSegLib.methods import DEFAULT_METHOD, get_method
from SpineSegLib.pipeline.device import resolve_device

from .config import PRESETS, stage_config
from .packed import load_item, read_index, unpack
from .trainer import SampleStream, Trainer

START = time.monotonic()  # --minutes counts from here (the imports before it take seconds)


class PackTrainer(Trainer):
    """The trainer with ``train_cases`` = the pack's items and ``cache_dir`` = the folder they are unpacked in."""

    def sample_stream(self) -> SampleStream:
        self.start_iteration = self.iteration  # fit() asks for the stream once it has resumed
        load = functools.partial(load_item, self.cache_dir)
        return SampleStream(self.train_cases, load, self.cfg, self.seed + self.iteration, self.rank)


def write_fetch_copy(trainer: Trainer, folder: Path) -> Path:
    """``<folder>/<stage>/checkpoints/last.pt`` without the optimiser state, and the log, for fetching back."""
    state = torch.load(trainer.checkpoint_path, map_location="cpu", weights_only=True)
    state.pop("optimizer", None)
    dest = folder / trainer.cfg.stage / "checkpoints" / "last.pt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, dest.with_suffix(".tmp"))
    os.replace(dest.with_suffix(".tmp"), dest)
    if (trainer.out / "log.jsonl").is_file():
        shutil.copyfile(trainer.out / "log.jsonl", dest.parent.parent / "log.jsonl")
    return dest


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m spineseg_training.gpu_train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pack", required=True, type=Path, help="pack folder (spineseg-train pack)")
    p.add_argument("--out", required=True, type=Path, help="run folder; the stage trains in <out>/<stage>")
    p.add_argument("--stage", choices=get_method(DEFAULT_METHOD).stage_names, help="default: the pack's")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--minutes", type=float, required=True, help="wall-clock limit of this call, from its start")
    p.add_argument("--init", type=Path, help="start from exported weights (.safetensors + .json card)")
    p.add_argument("--iterations", type=int, help="override the preset's total iterations")
    p.add_argument("--lr", type=float, help="override the preset's initial learning rate")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--crop", type=int, nargs=3, metavar=("X", "Y", "Z"), help="override the training crop (voxels)")
    p.add_argument("--workers", type=int, help="sampling processes (default: CPU cores - 2 on CUDA, else 1)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scratch", type=Path, help="where the pack is unpacked (default: the temporary directory)")
    p.add_argument("--fetch", type=Path, help="also write the run without optimiser state here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        index = read_index(args.pack)
        stage = args.stage or index["stage"]
        if stage != index["stage"]:
            raise SpineSegError(f"{args.pack} is a {index['stage']} pack, not {stage}")
        overrides = {
            k: v
            for k, v in (
                ("iterations", args.iterations),
                ("learning_rate", args.lr),
                ("batch_size", args.batch_size),
                ("crop_size", tuple(args.crop) if args.crop else None),
            )
            if v
        }
        cfg = stage_config(stage, args.preset, **overrides)
        device = resolve_device(args.device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        workers = args.workers if args.workers is not None else max(1, (os.cpu_count() or 2) - 2)
        if args.workers is None and device.type != "cuda":
            workers = 1
        scratch = unpack(args.pack, args.scratch)
        trainer = PackTrainer(
            cfg,
            index["items"],
            [],
            args.out / stage,
            scratch,
            device=str(device),
            seed=args.seed,
            num_workers=workers,
            training_data=index.get("data", ""),
            mixed_precision=device.type == "cuda",
            init_weights=args.init,
        )
        t0 = time.monotonic()
        trainer.fit(progress=False, deadline=START + 60.0 * args.minutes)
        done = trainer.iteration - trainer.start_iteration
        seconds = time.monotonic() - t0
        print(
            f"{stage}: iteration {trainer.iteration} of {cfg.iterations} ({done} in {seconds:.0f} s, "
            f"{done / max(seconds, 1e-9):.2f} it/s, {device}, {workers} workers); checkpoint {trainer.checkpoint_path}"
        )
        if args.fetch and trainer.checkpoint_path.is_file():
            print(f"fetch copy: {write_fetch_copy(trainer, args.fetch)}")
        return 0
    except SpineSegError as exc:
        print(f"gpu_train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
