"""Causal 3-D convolution stacks shared by the ARLON video VAE and the latent VQ-VAEs.

Time is causal, as in the discrete video tokenizer: a video of 1 + tc*k frames maps to 1 + k
latent frames, latent 0 encodes frame 0 alone and latent j (j >= 1) encodes frames
tc*(j-1)+1 .. tc*j. An output never sees a later input, so a long video can be encoded or
decoded segment by segment. Three rules make it so:
- every temporal kernel is padded on the past side only (with copies of the first frame),
- normalisation is per frame (GroupNorm over channels and space, never over time),
- temporal down/up-sampling by 2 maps 1 + 2k <-> 1 + k frames with the first frame kept alone.

Axes: B batch, C channels, T frames, H/W height/width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from arvideo.errors import ArvideoError


class CausalConv3d(nn.Module):
    """3x3x3 convolution padded in time on the past side only; stride 2 in time maps 1+2k -> 1+k frames."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, stride, padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x[:, :, :1].expand(-1, -1, 2, -1, -1)  # two copies of frame 0 stand in for the past
        return self.conv(torch.cat([first, x], dim=2))  # [B, C', T', H', W']


class FrameNorm(nn.GroupNorm):
    """GroupNorm applied to each frame on its own, so statistics never leak across time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)


class ResBlock(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm1 = FrameNorm(groups, channels)
        self.conv1 = CausalConv3d(channels, channels)
        self.norm2 = FrameNorm(groups, channels)
        self.conv2 = CausalConv3d(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class Upsample(nn.Module):
    """Double H and W, and the frame count (1+k -> 1+2k) when `time` is set.

    Time goes up depth-to-time: a causal conv makes two frames' worth of channels per input frame,
    they are unfolded into frames, and the extra frame in front of the first one is dropped.
    """

    def __init__(self, cin: int, cout: int, time: bool):
        super().__init__()
        self.time_conv = CausalConv3d(cin, 2 * cin) if time else None
        self.conv = CausalConv3d(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_conv is not None:
            x = rearrange(self.time_conv(x), "b (c r) t h w -> b c (t r) h w", r=2)  # [B, C, 2+2k, H, W]
            x = x[:, :, 1:]  # [B, C, 1+2k, H, W]: the frame before frame 0 does not exist
        x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")  # [B, C, T, 2H, 2W]
        return self.conv(x)


def check_stack(channels: tuple[int, ...], temporal_compression: int, groups: int, owner: str) -> None:
    """Validate an encoder/decoder shape: time is only halved together with space, widths fit GroupNorm."""
    if not channels or any(c < 1 for c in channels):
        raise ArvideoError(f"{owner}.channels must be a non-empty tuple of positive widths, got {channels}")
    tc = temporal_compression
    if tc < 1 or tc & (tc - 1) or tc.bit_length() > len(channels):
        raise ArvideoError(
            f"{owner}.temporal_compression must be a power of 2 <= 2**(len(channels)-1) = "
            f"{2 ** (len(channels) - 1)}, got {tc}"
        )
    if any(c % groups for c in channels):
        raise ArvideoError(f"{owner}.norm_groups={groups} must divide every width in channels={channels}")


def check_video_shape(frames: int, height: int, width: int, temporal: int, spatial: int, what: str) -> None:
    """ArvideoError naming the nearest valid sizes when (frames, height, width) do not fit the compression."""
    if frames < 1 or (frames - 1) % temporal:
        lo = 1 + max(frames - 1, 0) // temporal * temporal
        raise ArvideoError(
            f"{what} must have 1 + {temporal}*k frames, got {frames}; nearest valid: {lo} or {lo + temporal}"
        )
    for name, size in (("height", height), ("width", width)):
        if size < spatial or size % spatial:
            lo = max(size // spatial, 1) * spatial
            raise ArvideoError(
                f"{what} {name} must be a multiple of {spatial}, got {size}; nearest valid: "
                f"{lo} or {lo + spatial}"
            )


def stage_plan(channels: tuple[int, ...], temporal_compression: int) -> list[bool]:
    """Which of the len(channels)-1 resolution stages also halve time (the lowest-resolution ones)."""
    n_stages = len(channels) - 1
    n_time = temporal_compression.bit_length() - 1
    return [i >= n_stages - n_time for i in range(n_stages)]


class CausalEncoder(nn.Module):
    """[B, cin, 1+tc*k, H, W] -> [B, cout, 1+k, H/sc, W/sc] with sc = 2**(len(channels)-1)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        channels: tuple[int, ...],
        temporal_compression: int,
        num_res_blocks: int,
        groups: int,
    ):
        super().__init__()
        self.stem = CausalConv3d(cin, channels[0])
        layers: list[nn.Module] = []
        for i, time in enumerate(stage_plan(channels, temporal_compression)):
            layers += [ResBlock(channels[i], groups) for _ in range(num_res_blocks)]
            layers.append(CausalConv3d(channels[i], channels[i + 1], stride=(2 if time else 1, 2, 2)))
        layers += [ResBlock(channels[-1], groups) for _ in range(num_res_blocks)]
        self.body = nn.Sequential(*layers)
        self.norm = FrameNorm(groups, channels[-1])
        self.head = CausalConv3d(channels[-1], cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.silu(self.norm(self.body(self.stem(x)))))


class CausalDecoder(nn.Module):
    """Mirror of `CausalEncoder`: [B, cin, 1+k, h, w] -> [B, cout, 1+tc*k, h*sc, w*sc]."""

    def __init__(
        self,
        cin: int,
        cout: int,
        channels: tuple[int, ...],
        temporal_compression: int,
        num_res_blocks: int,
        groups: int,
    ):
        super().__init__()
        self.stem = CausalConv3d(cin, channels[-1])
        layers: list[nn.Module] = [ResBlock(channels[-1], groups) for _ in range(num_res_blocks)]
        plan = stage_plan(channels, temporal_compression)
        for i in reversed(range(len(plan))):
            layers.append(Upsample(channels[i + 1], channels[i], plan[i]))
            layers += [ResBlock(channels[i], groups) for _ in range(num_res_blocks)]
        self.body = nn.Sequential(*layers)
        self.norm = FrameNorm(groups, channels[0])
        self.head = CausalConv3d(channels[0], cout)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(F.silu(self.norm(self.body(self.stem(z)))))
