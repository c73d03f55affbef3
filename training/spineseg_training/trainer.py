"""One trainer for every stage: sampling, loss, optimiser, checkpoints, resume, validation.

CPU or CUDA; mixed precision (bfloat16 autocast) on CUDA; several GPUs with ``torchrun``
(DistributedDataParallel: each rank draws its own samples, rank 0 validates and saves).
A run killed at any point resumes from ``<out>/checkpoints/last.pt`` with nothing lost but
the iterations since that checkpoint. Reading cases and validation (SimpleITK) are imported
where used: :mod:`.gpu_train` runs this trainer on packs, on machines without SimpleITK.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from SpineSegLib import __version__ as spineseg_version
from SpineSegLib.errors import SpineSegError
from SpineSegLib.models import ModelCard, load_model
from SpineSegLib.networks import build_network
from SpineSegLib.pipeline.device import cpu_bf16_supported, memory_format

from .config import StageConfig
from .losses import loss_fn
from .samples import SAMPLERS

if TYPE_CHECKING:
    from .data import CachedCase, CaseFiles

log = logging.getLogger("spineseg_training")


class SampleStream(IterableDataset):
    """Endless random training samples; each worker (and rank) has its own random stream.

    ``load`` turns one of ``cases`` into a :class:`CachedCase` in each worker (the 1 mm cache or a pack).
    """

    def __init__(self, cases: list, load: Callable[[Any], CachedCase], cfg: StageConfig, seed: int, rank: int = 0):
        self.cases, self.load, self.cfg, self.seed, self.rank = cases, load, cfg, seed, rank

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info else 0
        rng = np.random.default_rng([self.seed, self.rank, worker])
        cached = [self.load(c) for c in self.cases]
        sampler = SAMPLERS[self.cfg.key]
        while True:
            case = cached[rng.integers(len(cached))]
            sample = sampler(case, self.cfg, rng)
            if sample is None:  # the sampler declined this case (e.g. no lumbar vertebra for a lumbar stage)
                continue
            x, y = sample
            yield torch.from_numpy(x), torch.from_numpy(y)


def model_card(cfg: StageConfig, name: str, training_data: str, validation: dict[str, Any]) -> ModelCard:
    return ModelCard(
        name=name,
        stage=cfg.stage,
        method=cfg.method,
        network=dict(cfg.network),
        spacing_mm=list(cfg.spacing_mm),
        input_size=list(cfg.crop_size),
        intensity=dict(cfg.intensity),
        labels=list(cfg.labels),
        params=dict(cfg.params),
        training_data=training_data,
        validation=validation,
        spineseg_version=spineseg_version,
        created=time.strftime("%Y-%m-%d"),
    )


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


class Trainer:
    def __init__(
        self,
        cfg: StageConfig,
        train_cases: list[CaseFiles],
        val_cases: list[CaseFiles],
        out_dir: str | Path,
        cache_dir: str | Path,
        device: str = "auto",
        seed: int = 0,
        num_workers: int = 1,
        training_data: str = "",
        mixed_precision: bool = True,
        init_weights: str | Path | None = None,
    ):
        self.cfg = cfg
        self.init_weights = Path(init_weights) if init_weights else None
        self.mixed_precision = mixed_precision
        self.out = Path(out_dir)
        self.cache_dir = Path(cache_dir)
        self.train_cases, self.val_cases = train_cases, val_cases
        self.rank, self.world, local_rank = _distributed()
        if device == "auto":
            device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.seed, self.num_workers, self.training_data = seed, num_workers, training_data
        torch.manual_seed(seed + self.rank)
        self.model = build_network(cfg.network).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.iteration = 0
        self.best_score = -math.inf
        self.grad_norm_ema: float | None = None
        self.history: list[dict[str, Any]] = []
        self.net = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def save_checkpoint(self, path: Path | None = None) -> None:
        if self.rank != 0:
            return
        path = path or self.checkpoint_path
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": self.iteration,
            "best_score": self.best_score,
            "grad_norm_ema": self.grad_norm_ema,
            "config": json.dumps(dataclasses.asdict(self.cfg)),
            # Dropout's generators; the samples' generator is seeded from the iteration (SampleStream).
            "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all()},
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def resume(self) -> bool:
        """Continue from the last checkpoint if there is one (our own file, loaded without unpickling code)."""
        if not self.checkpoint_path.is_file():
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        saved_cfg = json.loads(state["config"])
        if saved_cfg["network"] != self.cfg.network:
            raise RuntimeError(f"{self.checkpoint_path}: checkpoint network differs from the configured one")
        self.model.load_state_dict(state["model"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        else:  # a copy without it (gpu_train --fetch): Adam's moments start afresh, the schedule goes on
            log.warning("%s has no optimiser state; the optimiser starts afresh", self.checkpoint_path)
        self.iteration = int(state["iteration"])
        self.best_score = float(state["best_score"])
        self.grad_norm_ema = state["grad_norm_ema"]
        rng = state.get("rng")  # absent in checkpoints of older versions; ranks keep their own seeds
        if rng is not None and self.world == 1:
            torch.set_rng_state(rng["torch"].cpu())
            if len(rng["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all([r.cpu() for r in rng["cuda"]])
        log.info("resumed %s at iteration %d", self.cfg.stage, self.iteration)
        return True

    def initialize(self, weights: Path) -> None:
        """Start from exported weights (safetensors + its card, hash-checked) instead of random ones: fine-tuning."""
        net, card = load_model(weights, weights.with_suffix(".json"))
        if card.network != self.cfg.network:
            raise SpineSegError(
                f"{weights}: --init weights are a {card.network} network, this stage trains {self.cfg.network}"
            )
        self.model.load_state_dict(net.state_dict())
        log.info("initialised %s from %s", self.cfg.stage, weights)

    # -- training -------------------------------------------------------------------------
    def learning_rate(self, it: int) -> float:
        c = self.cfg
        return c.learning_rate * (c.final_learning_rate / c.learning_rate) ** (it / max(c.iterations, 1))

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def validate(self) -> dict[str, Any]:
        from .validate import ValidationCase, run_validation

        cases = getattr(self, "_val_loaded", None)
        if cases is None:
            cases = self._val_loaded = [ValidationCase(c) for c in self.val_cases]
        card = model_card(self.cfg, f"{self.cfg.stage}-validation", self.training_data, {})
        return run_validation(self.cfg.key, self.model, card, cases, self.device)

    def sample_stream(self) -> SampleStream:
        """Samples from the 1 mm cache, which is built here once, before workers start."""
        from .data import cache_case

        load = functools.partial(cache_case, cache_dir=self.cache_dir)
        for c in self.train_cases:
            load(c)
        return SampleStream(self.train_cases, load, self.cfg, self.seed + self.iteration, self.rank)

    def fit(
        self, iterations: int | None = None, progress: bool = True, deadline: float | None = None
    ) -> dict[str, Any]:
        """Train until ``iterations`` (default: the config's) and return the last validation.

        ``deadline`` (``time.monotonic()``; one process only): stop there too, after a checkpoint,
        so that a run in a time-limited session ends cleanly and the next one resumes.
        """
        from tqdm import tqdm

        total = iterations or self.cfg.iterations
        if not self.resume() and self.init_weights:
            self.initialize(self.init_weights)
        stream = self.sample_stream()
        loader = DataLoader(
            stream,
            batch_size=self.cfg.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            prefetch_factor=2 if self.num_workers > 0 else None,
            pin_memory=self.device.type == "cuda",
        )
        # Mixed precision: bfloat16 autocast on CUDA and on CPUs with native bf16 kernels.
        amp_dtype = torch.bfloat16
        use_amp = self.mixed_precision and (self.device.type == "cuda" or cpu_bf16_supported())
        fmt = memory_format(self.device)
        self.model.to(memory_format=fmt)
        self.net.train()
        last_val: dict[str, Any] = {}
        bar = tqdm(
            total=total, initial=self.iteration, desc=f"train {self.cfg.stage}", disable=not progress or self.rank
        )
        running, t0 = None, time.perf_counter()
        batches = iter(loader)
        while self.iteration < total:
            if deadline is not None and time.monotonic() >= deadline:
                self._log({"iteration": self.iteration, "loss": running, "stopped": "deadline"})
                self.save_checkpoint()
                break
            x, y = next(batches)
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
            y = y.to(self.device, non_blocking=True)
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(self.iteration)
            with torch.autocast(self.device.type, dtype=amp_dtype, enabled=use_amp):
                pred = self.net(x)
            loss = loss_fn(self.cfg.key, pred.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Adaptive clipping: at most 5x the running gradient norm (Payer 2020).
            limit = 5.0 * self.grad_norm_ema if self.grad_norm_ema else float("inf")
            norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), limit))
            if math.isfinite(norm):
                self.grad_norm_ema = norm if self.grad_norm_ema is None else 0.99 * self.grad_norm_ema + 0.01 * norm
                self.optimizer.step()
            self.iteration += 1
            value = float(loss.detach())
            running = value if running is None else 0.98 * running + 0.02 * value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4g}")
            if self.iteration % 50 == 0 or self.iteration == total:
                self._log(
                    {
                        "iteration": self.iteration,
                        "loss": running,
                        "lr": self.learning_rate(self.iteration),
                        "seconds": time.perf_counter() - t0,
                    }
                )
            if self.iteration % self.cfg.checkpoint_every == 0 or self.iteration == total:
                self.save_checkpoint()
            if (
                self.rank == 0
                and self.val_cases
                and (self.iteration % self.cfg.validate_every == 0 or self.iteration == total)
            ):
                last_val = self.validate()
                last_val["iteration"] = self.iteration
                self._log({"validation": last_val})
                bar.write(f"{self.cfg.stage} iteration {self.iteration}: {last_val}")
                if last_val["score"] >= self.best_score:
                    self.best_score = last_val["score"]
                    self.save_checkpoint(self.out / "checkpoints" / "best.pt")
                    (self.out / "checkpoints" / "best.json").write_text(json.dumps(last_val, indent=1))
                self.save_checkpoint()
        bar.close()
        return last_val
