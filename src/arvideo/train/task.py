"""The contract between the model-agnostic trainer and one model family.

The trainer owns the loop, parallelism, optimizer, data order, checkpoints and logs; a `Task`
owns everything that knows what the model is: how to build it, which modules are its repeated
blocks, how token items become a batch (including the training-time randomness: masking, text
dropout, drawn on the CPU from the rank's generator), the loss, the FLOPs estimate, and the
model folder format. `arvideo train` picks the task from the config's `kind` through the table
in `train/kinds.py` (`lumos`, or `package.module:Class` for a task of your own).

A task's `loss` must call the model (the possibly DDP/FSDP-wrapped module it is given) exactly
once per micro-batch, and compute everything that needs parameters inside that call: the
wrappers synchronise through the model's forward hooks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from arvideo.errors import ArvideoError
from arvideo.train.config import RunConfig
from arvideo.train.data import TokenItem
from arvideo.train.kinds import is_task, resolve


@dataclass
class LossOutput:
    """What a task's loss returns for one micro-batch on one rank.

    The trainer sums `loss_sum` and `n_targets` over micro-batches and ranks and divides the
    gradient by the global target count (weight), so every target token weighs the same (its
    weight) whatever the batch split.
    """

    loss_sum: torch.Tensor  # [] fp32: sum of per-target losses (not the mean)
    n_targets: torch.Tensor  # []: targets in loss_sum (the sum of their weights, if weighted)
    n_tokens: int  # input tokens processed, padding excluded: for tokens/s
    flops: float  # model FLOPs of forward + backward on this micro-batch: for MFU
    metrics: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict
    )  # name -> (sum, count)


class Task:
    """Base class of training tasks; subclasses implement the methods that raise."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def build_model(self) -> nn.Module:
        """A fresh single-device fp32 model on CPU (the trainer seeds the init and moves it)."""
        raise NotImplementedError

    def blocks(self, model: nn.Module) -> list[nn.Module]:
        """The repeated blocks: units of activation checkpointing and of FSDP sharding."""
        raise NotImplementedError

    def collate(self, items: list[TokenItem], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Turn token items into one padded CPU batch; all training randomness draws from `generator`.

        `generator` is this rank's CPU generator, saved in checkpoints, so resuming replays the
        same masks.
        """
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        """Loss of one micro-batch (on the model's device); deterministic given the batch."""
        raise NotImplementedError

    def model_config(self) -> dict[str, Any]:
        """The model's config.json content."""
        raise NotImplementedError

    def save_model(self, state: dict[str, torch.Tensor], folder: Path) -> None:
        """Write the standard model folder: config.json + model.safetensors from a full state dict."""
        (folder / "config.json").write_text(json.dumps(self.model_config(), indent=2) + "\n")
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))

    def load_model(self, folder: Path) -> dict[str, torch.Tensor]:
        """Read the full state dict (the model's own keys) back from a model folder."""
        return load_file(str(folder / "model.safetensors"))

    def start_from(self, model: nn.Module, folder: Path) -> None:
        """Load the weights of `checkpoint.init_from` into a freshly built model (strict)."""
        model.load_state_dict(self.load_model(folder))

    def evaluate(self, model: nn.Module, step: int) -> dict[str, float]:
        """Task-specific periodic evaluation (e.g. ShapesBench); the validation loss is the trainer's."""
        return {}


def build_task(config: RunConfig) -> Task:
    """The task named by `config.kind` (see `train/kinds.py`)."""
    cls = resolve(config.kind)
    if not is_task(cls):
        raise ArvideoError(
            f"`kind: {config.kind}` names {cls.__module__}.{cls.__qualname__}, which the trainer cannot "
            "run: it needs a subclass of arvideo.train.task.Task"
        )
    return cls(config)
