"""A tiny task and tiny shards for the trainer tests (not a test module itself).

The toy model predicts each next visual token of (caption ids, visual ids) from the current
token through an embedding, residual MLP blocks and a head: enough to exercise batching,
padding, accumulation, parallel wrappers and checkpoints in a fraction of a second per step.
`mask_ratio > 0` drops targets at random through the trainer's generator, so exact-resume
tests also cover the generator state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from arvideo.errors import ArvideoError
from arvideo.train.config import from_dict
from arvideo.train.data import META_FILE, TokenItem, pad_sequences, write_shard
from arvideo.train.task import LossOutput, Task

TEXT_VOCAB = 32
CODEBOOK = 48
IGNORE = -100


@dataclass(kw_only=True)
class ToyOptions:
    dim: int = 32
    n_blocks: int = 2
    mask_ratio: float = 0.0


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class ToyModel(nn.Module):
    def __init__(self, dim: int, n_blocks: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(TEXT_VOCAB + CODEBOOK, dim)
        self.blocks = nn.ModuleList(Block(dim) for _ in range(n_blocks))
        self.head = nn.Linear(dim, TEXT_VOCAB + CODEBOOK)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # [B, L, D]
        for block in self.blocks:
            x = block(x)
        logits = self.head(x).float()  # [B, L, V]
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum")


class ToyTask(Task):
    def __init__(self, config) -> None:
        super().__init__(config)
        self.options = from_dict(ToyOptions, config.task, "task")

    def build_model(self) -> nn.Module:
        return ToyModel(self.options.dim, self.options.n_blocks)

    def blocks(self, model: nn.Module) -> list[nn.Module]:
        return list(model.blocks)

    def collate(self, items: list[TokenItem], generator: torch.Generator) -> dict[str, torch.Tensor]:
        seqs = [np.concatenate([it.text, it.visual.ravel() + TEXT_VOCAB]) for it in items]
        ids, lengths = pad_sequences(seqs, pad_value=0)  # [B, L]
        targets = ids[:, 1:].clone()  # [B, L-1]
        is_visual = targets >= TEXT_VOCAB
        in_seq = torch.arange(targets.shape[1]) < (lengths[:, None] - 1)
        keep = is_visual & in_seq
        if self.options.mask_ratio > 0:
            keep &= torch.rand(targets.shape, generator=generator) >= self.options.mask_ratio
        targets[~keep] = IGNORE
        return {"ids": ids[:, :-1], "targets": targets, "lengths": lengths}

    def loss(self, model, batch) -> LossOutput:
        targets = batch["targets"]
        loss_sum = model(batch["ids"], targets)
        n_targets = (targets != IGNORE).sum()
        n_tokens = int((batch["lengths"] - 1).sum())
        n_params = sum(p.numel() for p in model.parameters())
        return LossOutput(
            loss_sum=loss_sum,
            n_targets=n_targets,
            n_tokens=n_tokens,
            flops=6.0 * n_params * n_tokens,
            metrics={"targets_per_batch": (n_targets.float(), torch.tensor(1.0))},
        )

    def model_config(self) -> dict:
        return {"kind": "toy", "dim": self.options.dim, "n_blocks": self.options.n_blocks}


def random_item(rng: np.random.Generator, index: int, frames: int) -> TokenItem:
    text = rng.integers(0, TEXT_VOCAB, size=int(rng.integers(3, 9)), dtype=np.int32)
    # A learnable pattern: each row of the visual grid counts up from a random start.
    start = rng.integers(0, CODEBOOK, size=(frames, 4, 1))
    visual = ((start + np.arange(4)) % CODEBOOK).astype(np.int32)  # [T', 4, 4]
    return TokenItem(id=f"clip{index:04d}.mp4", text=text, visual=visual, fps=8.0, size=(32, 32))


def make_shards(folder: Path, n_videos: int, n_images: int = 0, shard_size: int = 16, seed: int = 0) -> Path:
    """A shard folder of random items: videos with 3 latent frames, images with 1."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items = [random_item(rng, i, 3) for i in range(n_videos)]
    items += [random_item(rng, n_videos + i, 1) for i in range(n_images)]
    for start in range(0, len(items), shard_size):
        write_shard(folder, start // shard_size, items[start : start + shard_size])
    (folder / META_FILE).write_text('{"tokenizer": "toy", "text_tokenizer": "toy"}')
    return folder


class StandInTokenizer:
    """Obeys the VideoTokenizer interface with a fixed function: 8x8 patch means of every 4th frame."""

    temporal_compression = 4
    spatial_compression = 8
    codebook_size = 64

    def latent_frames(self, n_frames: int) -> int:
        return 1 + -(-(n_frames - 1) // 4)

    def pixel_frames(self, n_latent: int) -> int:
        return 1 + 4 * (n_latent - 1)

    def check_size(self, height: int, width: int) -> None:
        if height % 8 or width % 8:
            raise ArvideoError(f"frame size must be a multiple of 8, got {height}x{width}")

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        x = video[:, :, ::4].float().mean(1)  # [B, T', H, W]
        x = F.avg_pool2d(x, 8)  # [B, T', H/8, W/8]
        return (x / 256 * self.codebook_size).long()


class StandInText:
    """A text tokenizer stand-in: one id per word."""

    def encode(self, text: str) -> list[int]:
        return [sum(word.encode()) % TEXT_VOCAB for word in text.split()]
