"""What every video tokenizer in arvideo shares: the API, the frame rule, input checks.

Pipelines and trainers only see `VideoTokenizer`, so the built-in causal FSQ tokenizer and the
Cosmos DV adapter are interchangeable. Frames follow the causal rule of Cosmos DV (reference
lumos1.md §7): the first frame is coded alone, then every `tc` frames make one latent frame, so
`T` frames -> `1 + ceil((T - 1) / tc)` latent frames -> `1 + tc * (T' - 1)` decoded frames.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from arvideo.errors import ArvideoError


@runtime_checkable
class VideoTokenizer(Protocol):
    temporal_compression: int
    spatial_compression: int
    codebook_size: int

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """uint8 or [-1, 1] float video [B, 3, T, H, W] -> ids [B, T', H', W'] (int64)."""
        ...

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, T', H', W'] -> float video [B, 3, 1 + tc*(T'-1), sc*H', sc*W'] in [-1, 1]."""
        ...

    def latent_frames(self, n_frames: int) -> int: ...

    def pixel_frames(self, n_latent: int) -> int: ...

    def check_size(self, height: int, width: int) -> None: ...


def latent_frames(n_frames: int, temporal_compression: int) -> int:
    """Causal frame rule: frame 0 alone, then groups of `temporal_compression` frames."""
    if n_frames < 1:
        raise ArvideoError(f"a video needs at least 1 frame, got {n_frames}")
    return 1 + -(-(n_frames - 1) // temporal_compression)


def pixel_frames(n_latent: int, temporal_compression: int) -> int:
    """Frames a decoder produces from `n_latent` latent frames."""
    if n_latent < 1:
        raise ArvideoError(f"need at least 1 latent frame, got {n_latent}")
    return 1 + temporal_compression * (n_latent - 1)


def check_size(height: int, width: int, factor: int) -> None:
    """Refuse frame sizes the tokenizer cannot tile, naming the nearest sizes it can."""
    for name, value in (("height", height), ("width", width)):
        if value < factor or value % factor:
            below = value // factor * factor
            options = f"{factor}" if below == 0 else f"{below} or {below + factor}"
            raise ArvideoError(
                f"frame {name} {value} is not a multiple of {factor} (the tokenizer's spatial "
                f"compression); resize or crop to {options}"
            )


class CompressionMixin:
    """`latent_frames`, `pixel_frames` and `check_size` from the class's own compression factors,
    so every tokenizer answers them by the same rule and with the same errors."""

    temporal_compression: int
    spatial_compression: int

    def latent_frames(self, n_frames: int) -> int:
        return latent_frames(n_frames, self.temporal_compression)

    def pixel_frames(self, n_latent: int) -> int:
        return pixel_frames(n_latent, self.temporal_compression)

    def check_size(self, height: int, width: int) -> None:
        check_size(height, width, self.spatial_compression)


def video_to_float(video: torch.Tensor, spatial_compression: int) -> torch.Tensor:
    """Check a [B, 3, T, H, W] video and bring it to float32 in [-1, 1] (uint8 is scaled)."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise ArvideoError(
            f"video must be [B, 3, T, H, W] (uint8 or float in [-1, 1]), got shape {tuple(video.shape)}"
        )
    if video.shape[2] < 1:
        raise ArvideoError("video has no frames")
    check_size(video.shape[3], video.shape[4], spatial_compression)
    if video.dtype == torch.uint8:
        return video.float() / 127.5 - 1
    if not video.is_floating_point():
        raise ArvideoError(f"video must be uint8 or float, got {video.dtype}")
    return video.float()


def check_ids(ids: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Check an ids tensor [B, T', H', W'] before decoding and return it as int64."""
    if ids.ndim != 4:
        raise ArvideoError(f"ids must be [B, T', H', W'], got shape {tuple(ids.shape)}")
    if ids.is_floating_point():
        raise ArvideoError(f"ids must be an integer tensor, got {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= codebook_size):
        raise ArvideoError(
            f"ids must lie in [0, {codebook_size}) for this tokenizer, got range "
            f"[{int(ids.min())}, {int(ids.max())}]; were they made by another tokenizer?"
        )
    return ids.long()
