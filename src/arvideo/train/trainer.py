"""The training loop: model-agnostic, single process or torchrun (DDP / FSDP2).

One optimizer step (`Trainer.train_step`):
1. take this rank's micro-batches for the step from the data stream;
2. per micro-batch: collate, loss under autocast, backward of the loss SUM (gradients sync on
   the last micro-batch only);
3. all-reduce loss sums and target counts; divide the gradients by the global target count,
   so every target token weighs the same whatever the split over ranks and micro-batches
   (the count is only known after the task's random masking, hence a gradient scale rather
   than a per-micro-batch loss divisor);
4. global grad norm; if the loss or the norm is not finite, refuse the step (no update, counted);
   else clip and step AdamW at the LR of the schedule.

Example (CPU-sized): `arvideo train CONFIG`; on 2 processes:
`torchrun --standalone --nproc-per-node 2 -m arvideo train CONFIG` with
`parallel.mode: ddp` or `fsdp` (docs/training.md).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.distributed.fsdp import FSDPModule
from torch.nn.parallel import DistributedDataParallel

from arvideo.errors import ArvideoError
from arvideo.progress import progress, set_progress
from arvideo.train.checkpoint import Checkpointer, latest_checkpoint
from arvideo.train.config import RunConfig, load_config, to_dict
from arvideo.train.data import ShardDataset, StepStream, eval_batches
from arvideo.train.distributed import Dist, all_reduce_sum, destroy_distributed, init_distributed
from arvideo.train.metrics import MetricsLog, bf16_pays, measure_peak_flops
from arvideo.train.optim import build_optimizer, clip_grads_, grad_norm, lr_at, scale_grads_
from arvideo.train.parallelize import parallelize, unwrap
from arvideo.train.task import LossOutput, Task, build_task

logger = logging.getLogger(__name__)


@dataclass
class StepStats:
    """What one optimizer step did (global over ranks)."""

    step: int  # steps completed, this one included
    loss: float  # mean loss per target token
    lr: float
    grad_norm: float  # before clipping
    tokens_per_s: float
    mfu: float  # model FLOPs / (time * peak FLOP/s * ranks)
    skipped: bool  # the update was refused (non-finite loss or grad norm, or no targets)
    metrics: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, float]:
        return {
            "loss": self.loss,
            "lr": self.lr,
            "grad_norm": self.grad_norm,
            "tokens_per_s": self.tokens_per_s,
            "mfu": self.mfu,
            "skipped": float(self.skipped),
            **self.metrics,
        }


class Trainer:
    """Builds model, optimizer, data stream and checkpointer from a RunConfig and a Task; runs steps."""

    def __init__(
        self,
        config: RunConfig,
        task: Task,
        dist: Dist | None = None,
        *,
        resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.config, self.task, self.dist = config, task, dist or Dist()
        self.out_dir = Path(config.out_dir)
        self._prepare_out_dir(resume, overwrite)
        self.bf16, self.peak_flops = self._precision_and_peak()
        # 1. model: the same init on every rank, without disturbing the global RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = task.build_model()
        if config.checkpoint.init_from:
            try:
                task.start_from(model, Path(config.checkpoint.init_from))
            except RuntimeError as err:  # missing, unexpected or mis-shaped weights
                message = " ".join(str(err).split())
                raise ArvideoError(f"`checkpoint.init_from` does not fit the model: {message}") from err
        self.model = parallelize(model, task.blocks(model), config.parallel, self.dist)
        self.optimizer = build_optimizer(self.model, config.optim)
        # 2. data and randomness: one data order for all ranks, one loss generator per rank
        self.dataset = ShardDataset(config.data.shards)
        self.stream = StepStream(self.dataset, config.data, config.seed, self.dist.rank, self.dist.world_size)
        self.generator = torch.Generator().manual_seed(config.seed + self.dist.rank)  # CPU: used by collate
        self.val_dataset = ShardDataset(config.eval.shards) if config.eval.shards else None
        self.step, self.skipped_steps = 0, 0
        # 3. resume
        self.checkpointer = Checkpointer(self.out_dir / "checkpoints", config.checkpoint.keep, self.dist)
        latest = latest_checkpoint(self.checkpointer.root) if resume else None
        if latest is not None:
            state = self.checkpointer.load(latest, self.model, self.optimizer, task, self.generator)
            self.step, self.skipped_steps = state["step"], state["skipped_steps"]
            self.stream.load_state_dict(state["data"])
            logger.info("resumed from %s at step %d", latest, self.step)
        elif resume:
            logger.info("no checkpoint in %s: starting from step 0", self.checkpointer.root)
        # 4. logs
        self.logs = None
        if self.dist.is_main:
            self.logs = {
                name: MetricsLog(self.out_dir, name, self.step if resume else None, config.log.tensorboard)
                for name in ("log", "eval")
            }
        n_params = sum(p.numel() for p in unwrap(self.model).parameters())
        logger.info(
            "%s: %.2fM parameters, %d ranks, %s, peak %.1f GFLOP/s per rank",
            config.kind,
            n_params / 1e6,
            self.dist.world_size,
            "bf16 autocast" if self.bf16 else "fp32",
            self.peak_flops / 1e9,
        )

    def _prepare_out_dir(self, resume: bool, overwrite: bool) -> None:
        ckpt = self.out_dir / "checkpoints"
        started = (self.out_dir / "log.csv").exists() or (ckpt.is_dir() and any(ckpt.iterdir()))
        if started and not (resume or overwrite):
            raise ArvideoError(
                f"{self.out_dir} already holds a run; pass --resume to continue it "
                "or --overwrite to start over"
            )
        if self.dist.is_main:
            if overwrite and not resume:
                for name in ("checkpoints", "tb"):
                    shutil.rmtree(self.out_dir / name, ignore_errors=True)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(self.config), sort_keys=False))

    @contextlib.contextmanager
    def _grad_sync(self, enabled: bool) -> Iterator[None]:
        """Let DDP/FSDP reduce gradients only on the last micro-batch of a step."""
        if isinstance(self.model, DistributedDataParallel) and not enabled:
            with self.model.no_sync():
                yield
            return
        if isinstance(self.model, FSDPModule):
            self.model.set_requires_gradient_sync(enabled)
        yield

    def _precision_and_peak(self) -> tuple[bool, float]:
        """Resolve `precision` and the MFU denominator, measuring each matmul dtype at most once.

        With `auto` every rank measures and bf16 is used only if all agree it pays; the peak is
        the mean over ranks of the chosen dtype's matmul FLOP/s (or `log.peak_flops` if set).
        """
        device, world = self.dist.device, self.dist.world_size
        peak = functools.cache(lambda dtype: measure_peak_flops(device, dtype))
        if self.config.precision == "auto":
            votes = torch.tensor(float(bf16_pays(peak(torch.float32), peak(torch.bfloat16))), device=device)
            bf16 = bool(all_reduce_sum(votes) == world)
        else:
            bf16 = self.config.precision == "bf16"
        if self.config.log.peak_flops:
            return bf16, self.config.log.peak_flops
        local = peak(torch.bfloat16 if bf16 else torch.float32)
        return bf16, float(all_reduce_sum(torch.tensor(local, device=device)) / world)

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _forward(self, dataset: ShardDataset, items: np.ndarray, generator: torch.Generator) -> LossOutput:
        batch = self.task.collate([dataset[int(i)] for i in items], generator)
        batch = {k: v.to(self.dist.device, non_blocking=True) for k, v in batch.items()}
        with self._autocast():
            return self.task.loss(self.model, batch)

    def train_step(self) -> StepStats:
        """One optimizer step over this rank's share of one global batch."""
        lr = lr_at(self.step, self.config.optim, self.config.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        micro_batches = self.stream.next_step()
        sums = _Sums(self.dist.device)
        for i, items in enumerate(micro_batches):
            with self._grad_sync(i == len(micro_batches) - 1):
                out = self._forward(self.dataset, items, self.generator)
                out.loss_sum.backward()
            sums.add(out)
        totals = sums.reduce()
        params = list(self.model.parameters())
        # DDP and FSDP average gradients over ranks; undo that and divide by the global target count
        scale_grads_(params, self.dist.world_size / max(totals.n_targets, 1.0))
        norm = grad_norm(params)
        skipped = not (totals.n_targets > 0 and np.isfinite(totals.loss) and torch.isfinite(norm).item())
        if skipped:
            self.skipped_steps += 1
            logger.warning(
                "step %d refused: loss %s, grad norm %s (%d refused so far)",
                self.step + 1,
                totals.loss,
                norm.item(),
                self.skipped_steps,
            )
        else:
            if self.config.optim.grad_clip > 0:
                clip_grads_(params, self.config.optim.grad_clip, norm)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        elapsed = time.perf_counter() - start
        return StepStats(
            step=self.step,
            loss=totals.loss,
            lr=lr,
            grad_norm=norm.item(),
            tokens_per_s=totals.n_tokens / elapsed,
            mfu=totals.flops / (elapsed * self.peak_flops * self.dist.world_size),
            skipped=skipped,
            metrics=totals.metrics,
        )

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss on the held-out shards (fixed batches, fixed generator) plus the task's eval."""
        cfg = self.config
        results: dict[str, float] = {}
        self.model.eval()
        if self.val_dataset is not None:
            generator = torch.Generator().manual_seed(cfg.eval.seed + self.dist.rank)
            sums = _Sums(self.dist.device)
            for items in eval_batches(
                self.val_dataset,
                cfg.eval.items,
                cfg.data.micro_batch_size,
                self.dist.rank,
                self.dist.world_size,
            ):
                sums.add(self._forward(self.val_dataset, items, generator))
            totals = sums.reduce()
            results = {"val_loss": totals.loss, **{f"val_{k}": v for k, v in totals.metrics.items()}}
        results.update(self.task.evaluate(self.model, self.step))
        self.model.train()
        return results

    def save_checkpoint(self) -> Path:
        state = {
            "step": self.step,
            "skipped_steps": self.skipped_steps,
            "data": self.stream.state_dict(),
            "config": to_dict(self.config),
        }
        return self.checkpointer.save(self.step, self.model, self.optimizer, self.task, state, self.generator)

    def train(self, until: int | None = None) -> list[StepStats]:
        """Run to `config.steps`, or stop after step `until` (a time-boxed session; resume continues it)."""
        cfg = self.config
        end = cfg.steps if until is None else min(until, cfg.steps)
        history = []
        for _ in progress(range(self.step, end), desc="train", total=end - self.step):
            stats = self.train_step()
            history.append(stats)
            last = self.step == cfg.steps
            if self.logs and (self.step % cfg.log.every == 0 or last):
                self.logs["log"].write(self.step, stats.row())
                logger.info(
                    "step %d/%d  loss %.4f  lr %.2e  grad %.3f  %.0f tok/s  MFU %.1f%%",
                    self.step,
                    cfg.steps,
                    stats.loss,
                    stats.lr,
                    stats.grad_norm,
                    stats.tokens_per_s,
                    100 * stats.mfu,
                )
            if cfg.eval.every and (self.step % cfg.eval.every == 0 or last):
                results = self.evaluate()
                if self.logs and results:
                    self.logs["eval"].write(self.step, results)
                    logger.info(
                        "eval at step %d: %s",
                        self.step,
                        "  ".join(f"{k} {v:.4f}" for k, v in results.items()),
                    )
            if self.step % cfg.checkpoint.every == 0 or last:
                self.save_checkpoint()
        return history

    def close(self) -> None:
        for log in (self.logs or {}).values():
            log.close()


@dataclass
class _Totals:
    loss: float
    n_targets: float
    n_tokens: float
    flops: float
    metrics: dict[str, float]


class _Sums:
    """Accumulates LossOutputs over micro-batches, then sums them over ranks in one all-reduce."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.values: list[torch.Tensor] = []
        self.metric_names: list[str] | None = None

    def add(self, out: LossOutput) -> None:
        names = sorted(out.metrics)
        assert self.metric_names in (None, names), f"metric names changed: {self.metric_names} -> {names}"
        self.metric_names = names
        parts = [out.loss_sum.detach(), out.n_targets, out.n_tokens, out.flops]
        parts += [x for name in names for x in (out.metrics[name][0].detach(), out.metrics[name][1])]
        self.values.append(
            torch.stack([torch.as_tensor(p, dtype=torch.float64, device=self.device) for p in parts])
        )

    def reduce(self) -> _Totals:
        # Metric names must be the same on every rank (they may not depend on the batch content).
        total = all_reduce_sum(torch.stack(self.values).sum(0)).cpu().tolist()
        loss_sum, n_targets, n_tokens, flops, *metric_values = total
        metrics = {  # a metric with no count in this step (e.g. a frame an image lacks) reads nan
            name: metric_values[2 * i] / metric_values[2 * i + 1] if metric_values[2 * i + 1] else math.nan
            for i, name in enumerate(self.metric_names or [])
        }
        return _Totals(
            loss=loss_sum / max(n_targets, 1.0),
            n_targets=n_targets,
            n_tokens=n_tokens,
            flops=flops,
            metrics=metrics,
        )


def run(config_path: str | Path, resume: bool = False, overwrite: bool = False) -> None:
    """Train a Task kind (what `arvideo train CONFIG` runs for it): process group, train, clean up."""
    config = load_config(config_path)
    dist = init_distributed()
    try:
        if not dist.is_main:  # rank 0 alone speaks
            logging.getLogger("arvideo").setLevel(logging.WARNING)
            set_progress(False)
        trainer = Trainer(config, build_task(config), dist, resume=resume, overwrite=overwrite)
        try:
            trainer.train()
        finally:
            trainer.close()
            # DDP and FSDP hold the process group. Free them now so the group is torn down here,
            # not by the garbage collector at interpreter exit (a rank once aborted there in CI).
            del trainer
            gc.collect()
    finally:
        destroy_distributed()
