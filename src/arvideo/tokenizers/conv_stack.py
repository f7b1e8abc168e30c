"""The causal conv autoencoder shared by the built-in FSQ video tokenizer and the ARLON video VAE.

- Temporal compression is space-time patchify: frame 0 is replicated `tc` times so it forms a latent
  frame alone, the rest is cut into groups of `tc` frames (the last group padded by repeating its
  last frame), and each `tc x p x p` block of pixels becomes channels. Every layer then works at
  latent time, and the decoder writes each group's frames back from channels, so motion inside a
  group costs nothing to represent. (A full-resolution 3-D conv stack with strided time, tried first
  for the VAE, reconstructed moving shapes as smears at their first position after 1,000 steps.)
- Spatial compression is the patch times one stride-2 conv per extra width in `channels`; the decoder
  mirrors it with sub-pixel (depth-to-space) upsampling.
- Causal: temporal kernels pad the past only, and the RMS norm is over channels at each position,
  so latent frame j depends on pixel frames up to the end of group j, never later.

Axes: B batch, C channels, T frames (T' latent frames), H/W height/width.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def latent_frames(n_frames: int, tc: int) -> int:
    """Latent frames of an n-frame video: frame 0 alone, then ceil((n - 1) / tc) groups."""
    return 1 + -(-(n_frames - 1) // tc)


def patchify(x: torch.Tensor, tc: int, p: int) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, C*tc*p*p, T', H/p, W/p]: frame 0 alone, then groups of tc frames."""
    missing = 1 + tc * (latent_frames(x.shape[2], tc) - 1) - x.shape[2]  # completes the last group
    first, last = x[:, :, :1], x[:, :, -1:]
    x = torch.cat([first.expand(-1, -1, tc - 1, -1, -1), x, last.expand(-1, -1, missing, -1, -1)], dim=2)
    return rearrange(x, "b c (t i) (h j) (w k) -> b (c i j k) t h w", i=tc, j=p, k=p)


def unpatchify(x: torch.Tensor, tc: int, p: int) -> torch.Tensor:
    """[B, C*tc*p*p, T', h, w] -> [B, C, 1 + tc*(T'-1), p*h, p*w], dropping frame 0's replicas."""
    x = rearrange(x, "b (c i j k) t h w -> b c (t i) (h j) (w k)", i=tc, j=p, k=p)  # [B, C, tc*T', H, W]
    return x[:, :, tc - 1 :]


class CausalConv3d(nn.Module):
    """k x k spatial conv with a causal temporal kernel: pads only the past (by repeating frame 0)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, temporal_kernel: int = 1, stride: int = 1):
        super().__init__()
        self.pad_t = temporal_kernel - 1
        self.conv = nn.Conv3d(
            cin,
            cout,
            (temporal_kernel, kernel, kernel),
            stride=(1, stride, stride),
            padding=(0, kernel // 2, kernel // 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_t:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.pad_t, -1, -1), x], dim=2)  # [B, C, T+kt-1, H, W]
        return self.conv(x)


class ChannelNorm(nn.Module):
    """RMS norm over channels at every (t, h, w): per position, so it never mixes frames (causal)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps) * self.weight


class ResBlock(nn.Module):
    def __init__(self, channels: int, temporal_kernel: int, kernel: int = 3):
        super().__init__()
        self.norm = ChannelNorm(channels)
        self.conv1 = CausalConv3d(channels, channels, kernel, temporal_kernel=temporal_kernel)
        self.conv2 = CausalConv3d(channels, channels, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(self.norm(x)))))


class Upsample(nn.Module):
    """2x spatial sub-pixel upsampling: a conv makes 4 sub-pixels per channel, then depth-to-space."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = CausalConv3d(cin, 4 * cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self.conv(x), "b (c i j) t h w -> b c t (h i) (w j)", i=2, j=2)  # [B, C, T, 2H, 2W]


def levels(widths: tuple[int, ...], blocks: int, temporal_kernel: int,
           resample: Callable[[int, int], nn.Module], kernel: int = 3) -> nn.Sequential:  # fmt: skip
    """`blocks` residual blocks (spatial `kernel`) at each width, with `resample(width, next width)`
    between levels."""
    layers: list[nn.Module] = []
    for i, c in enumerate(widths):
        layers += [ResBlock(c, temporal_kernel, kernel) for _ in range(blocks)]
        if i + 1 < len(widths):
            layers.append(resample(c, widths[i + 1]))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Patchified video [B, in_channels, T', H/p, W/p] -> latent [B, out_channels, T', h, w]."""

    def __init__(self, in_channels: int, out_channels: int, channels: tuple[int, ...], blocks: int,
                 temporal_kernel: int, kernel: int = 3):  # fmt: skip
        super().__init__()
        self.conv_in = CausalConv3d(in_channels, channels[0])
        self.blocks = levels(
            channels, blocks, temporal_kernel, functools.partial(CausalConv3d, stride=2), kernel
        )
        self.norm_out = ChannelNorm(channels[-1])
        self.conv_out = CausalConv3d(channels[-1], out_channels, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(F.silu(self.norm_out(self.blocks(self.conv_in(x)))))


class Decoder(nn.Module):
    """Latent [B, in_channels, T', h, w] -> patchified video [B, out_channels, T', H/p, W/p]; mirrors
    `Encoder` with the same `channels` (finest first)."""

    def __init__(self, in_channels: int, out_channels: int, channels: tuple[int, ...], blocks: int,
                 temporal_kernel: int):  # fmt: skip
        super().__init__()
        ch = channels[::-1]
        self.conv_in = CausalConv3d(in_channels, ch[0], temporal_kernel=temporal_kernel)
        self.blocks = levels(ch, blocks, temporal_kernel, Upsample)
        self.norm_out = ChannelNorm(ch[-1])
        self.conv_out = CausalConv3d(ch[-1], out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv_out(F.silu(self.norm_out(self.blocks(self.conv_in(z)))))


def init_autoencoder(encoder: Encoder, decoder: Decoder, generator: torch.Generator | None = None) -> None:
    """He-uniform convs and zero biases (drawn from `generator`, else torch's global RNG); zero for the
    last conv of every residual block (each block starts as the identity) and for the decoder's output
    conv (the first reconstruction is flat mid-grey instead of noise the optimizer must first undo)."""
    modules = [*encoder.modules(), *decoder.modules()]
    for module in modules:
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
            nn.init.zeros_(module.bias)
    for module in modules:
        if isinstance(module, ResBlock):
            nn.init.zeros_(module.conv2.conv.weight)
    nn.init.zeros_(decoder.conv_out.conv.weight)
