"""Wrap a single-device model for training, from the outside, in one fixed order.

1. activation checkpointing: each block becomes a non-reentrant `checkpoint_wrapper`, so its
   activations are recomputed in backward instead of stored;
2. `torch.compile` per block (compiling blocks, not the whole model, keeps compile time flat
   in depth and lets FSDP hook between blocks);
3. data parallelism: DDP around the whole model, or FSDP2 — `fully_shard` on every block, then
   on the root, which groups the remaining parameters (embeddings, final norm, head) into one unit.

The order matters: the checkpoint wrapper holds the plain block, so recomputation replays
exactly its forward; compile then sees the wrapper and traces through the checkpointed region;
FSDP comes last so that its hooks gather each block's parameters around everything else, once
for forward and again for the recompute in backward.
Model files never import torch.distributed; everything distributed happens here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch.nn as nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

from arvideo.errors import ArvideoError
from arvideo.train.config import ParallelConfig
from arvideo.train.distributed import Dist

logger = logging.getLogger(__name__)


def parallelize(model: nn.Module, blocks: Sequence[nn.Module], cfg: ParallelConfig, dist: Dist) -> nn.Module:
    """Return the model to train: `model` itself for single mode, else its DDP/FSDP2 wrapping."""
    if cfg.mode != "single" and not dist.distributed:
        raise ArvideoError(
            f"`parallel.mode: {cfg.mode}` needs several processes; launch with "
            "`torchrun --nproc-per-node N -m arvideo train CONFIG` or set `parallel.mode: single`"
        )
    if cfg.mode == "single" and dist.distributed:
        raise ArvideoError(
            f"launched {dist.world_size} processes but `parallel.mode: single`; set it to ddp or fsdp"
        )
    model.to(dist.device)
    blocks = list(blocks)
    if cfg.activation_checkpointing:
        blocks = apply_activation_checkpointing(model, blocks)
    if cfg.compile:
        for block in blocks:
            block.compile()
    match cfg.mode:
        case "single":
            return model
        case "ddp":
            device_ids = [dist.device.index] if dist.device.type == "cuda" else None
            return DistributedDataParallel(model, device_ids=device_ids)
        case "fsdp":
            mesh = init_device_mesh(dist.device.type, (dist.world_size,))
            for block in blocks:
                fully_shard(block, mesh=mesh)
            fully_shard(model, mesh=mesh)
            return model
    raise AssertionError(f"unhandled parallel mode {cfg.mode}")


def apply_activation_checkpointing(model: nn.Module, blocks: Sequence[nn.Module]) -> list[nn.Module]:
    """Replace each block, wherever it sits in `model`, by a checkpointed wrapper of it.

    State-dict keys are unchanged (the wrapper strips its own prefix), so checkpoints written
    with and without activation checkpointing are interchangeable.
    """
    wanted = {id(b) for b in blocks}
    wrapped: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in wanted:
                wrapped[id(child)] = checkpoint_wrapper(child, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
                parent.register_module(name, wrapped[id(child)])
    missing = len(wanted) - len(wrapped)
    assert missing == 0, f"{missing} of {len(wanted)} blocks are not submodules of the model"
    return [wrapped[id(b)] for b in blocks]


def unwrap(model: nn.Module) -> nn.Module:
    """The module the task built (DDP keeps it in `.module`; FSDP2 shards in place)."""
    return model.module if isinstance(model, DistributedDataParallel) else model
