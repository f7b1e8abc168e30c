"""Training data for the ARLON stages, in the trainer's token-shard format.

The generic trainer reads token shards (train/data.py): per item its caption ids and an int32
array `visual`. Three kinds of ARLON shards are written by the same pre-tokenizer
(`train.tokenize_data.tokenize_folder`, so they are parallel, resumable and skip bad files),
each with its own "codec" in place of a video tokenizer:

| shards | codec | `visual` of one item | read by |
| --- | --- | --- | --- |
| frames | `FrameSource` | uint8 pixels [T, H, W, 3], 4 bytes per int32: [T, H, 3W/4] | `arlon_vae` |
| latents | `LatentSource` | float32 scaled VAE latent [C, T', h, w], bits: [C*T', h, w] | `arlon_vq`, `dit` |
| codes | `CodeSource` | fine latent-VQ codes [T', H', W'] (`ArlonTokenizer`) | `lumos` (AR) |

Latents are computed once (the VAE is frozen after its stage) instead of in every training step:
encoding a 64x64x17 clip costs about as much as a DiT training step on a whole batch. Storing
float32 bits in the int32 column keeps them exact and lets the trainer's data order, bucketing,
rank split and exact resume work unchanged.

    python -m arvideo.arlon.build latents data/arlon data/arlon-latents --vae runs/arlon-vae/model
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from arvideo.arlon.latent_vq import LatentVQ
from arvideo.arlon.tokenizer import ArlonTokenizer
from arvideo.arlon.vae import VideoVAE
from arvideo.errors import ArvideoError
from arvideo.tokenizers import base
from arvideo.train.data import TokenItem


class FrameCodec:
    """Pixels stored losslessly: uint8 [T, H, W, 3] as int32 [T, H, 3W/4]."""

    temporal_compression = 1
    spatial_compression = 1
    codebook_size = 0  # not a codebook: the values are packed bytes

    def latent_frames(self, n_frames: int) -> int:
        return n_frames

    def pixel_frames(self, n_latent: int) -> int:
        return n_latent

    def check_size(self, height: int, width: int) -> None:
        base.check_size(height, width, 4)  # whole int32 words per row

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, T, H, W] -> int32 [B, T, H, 3W/4] holding the same bytes."""
        if video.dtype != torch.uint8:
            raise ArvideoError(f"frame shards store uint8 pixels, got {video.dtype}")
        frames = video.permute(0, 2, 3, 4, 1).contiguous()  # [B, T, H, W, 3]
        b, t, h, w, _ = frames.shape
        return frames.view(b, t, h, w * 3).view(torch.int32)  # [B, T, H, 3W/4]


class LatentCodec:
    """Scaled VAE posterior means stored exactly: float32 [C, T', h, w] as int32 [C*T', h, w]."""

    codebook_size = 0  # not a codebook: the values are float32 bit patterns

    def __init__(self, vae: VideoVAE):
        self.vae = vae.eval()
        self.temporal_compression = vae.temporal_compression
        self.spatial_compression = vae.spatial_compression

    def latent_frames(self, n_frames: int) -> int:
        return base.latent_frames(n_frames, self.temporal_compression)

    def pixel_frames(self, n_latent: int) -> int:
        return base.pixel_frames(n_latent, self.temporal_compression)

    def check_size(self, height: int, width: int) -> None:
        self.vae.check_size(height, width)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Video [B, 3, 1+tc*k, H, W] -> int32 [B, C*(1+k), H/sc, W/sc] (float32 bits)."""
        latent = self.vae.scale_latent(self.vae.encode(video).mode()).float()  # [B, C, T', h, w]
        return latent.flatten(1, 2).contiguous().view(torch.int32)


# Picklable factories for `tokenize_folder` (worker processes build their own codec); the class
# name is what tokenize.json records as the "tokenizer", and what the tasks check.


@dataclass(frozen=True)
class FrameSource:
    def __call__(self) -> FrameCodec:
        return FrameCodec()


@dataclass(frozen=True)
class LatentSource:
    vae: str  # VAE model folder

    def __call__(self) -> LatentCodec:
        return LatentCodec(VideoVAE.from_pretrained(self.vae))


@dataclass(frozen=True)
class CodeSource:
    vae: str
    fine_vq: str

    def __call__(self) -> ArlonTokenizer:
        return ArlonTokenizer(VideoVAE.from_pretrained(self.vae), LatentVQ.from_pretrained(self.fine_vq))


def source_name(cls: type) -> str:
    """The "tokenizer" entry `tokenize_folder` writes for shards made with a `cls` source."""
    return f"{cls.__module__}.{cls.__qualname__}"


def check_shards(meta: dict[str, Any], cls: type, task: str) -> None:
    """Refuse shards written by another codec than the task reads."""
    if meta.get("tokenizer") != source_name(cls):
        kind = {FrameSource: "frames", LatentSource: "latents"}.get(cls, cls.__name__)
        raise ArvideoError(
            f"`kind: {task}` trains on ARLON {kind} shards, but these were written with "
            f"{meta.get('tokenizer')!r}; make them with `python -m arvideo.arlon.build {kind} ...`"
        )


def item_frames(item: TokenItem) -> torch.Tensor:
    """The pixels of a frame-shard item: uint8 [T, H, W, 3]."""
    t, h, _ = item.visual.shape
    data = np.array(item.visual, dtype=np.int32).view(np.uint8)  # [T, H, 3W], a writable copy
    return torch.from_numpy(data.reshape(t, h, -1, 3))


def item_latent(item: TokenItem, channels: int) -> torch.Tensor:
    """The scaled VAE latent of a latent-shard item: float32 [C, T', h, w]."""
    ct, h, w = item.visual.shape
    if ct % channels:
        raise ArvideoError(f"latent shard item {item.id} has {ct} planes, not a multiple of {channels}")
    data = np.array(item.visual, dtype=np.int32).view(np.float32)  # a writable copy
    return torch.from_numpy(data.reshape(channels, ct // channels, h, w))
