"""AdamW, the warmup + cosine learning rate, and gradient-norm clipping that works on sharded grads.

The learning rate is a pure function of the step, so there is no scheduler state to save:
resuming at step s restores the LR by construction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn as nn
from torch.distributed.tensor import DTensor

from arvideo.train.config import OptimConfig


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over all parameters with weight decay on all of them, as in the Lumos-1 reference."""
    return torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
    )


def lr_at(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """LR for optimizer step `step` (0-based): linear warmup to `lr`, then half-cosine to `min_lr`.

    Warmup reaches the full LR on its last step ((step + 1) / warmup), so no step runs at LR 0.
    The cosine runs from the first step after warmup (lr) to step `total_steps` (min_lr).
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def grad_norm(params: Iterable[nn.Parameter]) -> torch.Tensor:
    """Global L2 norm of all gradients, a plain scalar tensor even when grads are FSDP-sharded."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0, foreach=True)
    return norm.full_tensor() if isinstance(norm, DTensor) else norm  # sum over shards


def scale_grads_(params: Iterable[nn.Parameter], factor: float) -> None:
    """Multiply every gradient by `factor` in place."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        torch._foreach_mul_(grads, factor)


def clip_grads_(params: Iterable[nn.Parameter], max_norm: float, total_norm: torch.Tensor) -> None:
    """Scale gradients so that their global norm is at most `max_norm` (norm computed by `grad_norm`)."""
    torch.nn.utils.clip_grads_with_norm_(list(params), max_norm, total_norm, foreach=True)
