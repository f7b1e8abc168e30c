"""Rotary position embeddings: plain 1-D, naive 3-D and Lumos-1's MM-RoPE (reference §1).

Every token carries a 1-D position (its sequence index) and, if it is a frame-body slot, a 3-D
position (t, h, w). Frame-body slots use the 3-D position, every other token (text and all
structural tokens) the 1-D one on all channels. The kinds differ in which frequency channel
rotates with which axis:

- "1d": every token uses its 1-D position (no 3-D information).
- "3d": contiguous channel blocks t | h | w in the ratio 2:3:3 of the D/2 frequencies.
- "mm": MM-RoPE. In every block of 16 frequencies, channels 0-3 are t, {4,5,8,9,12,13} are h and
  {6,7,10,11,14,15} are w, so each axis gets frequencies from the whole spectrum.

3-D positions are scaled by the video tokenizer's compression (t*4, h*8, w*8 for Cosmos
DV4x8x8: pixel units) and shifted by p0, the index of the first frame-body slot of the sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from arvideo.lumos.sequence import structure
from arvideo.lumos.vocab import Vocab

RopeKind = Literal["1d", "3d", "mm"]

# MM-RoPE axis (0 = t, 1 = h, 2 = w) of each frequency inside a block of 16 (reference §1.3).
_MM_BLOCK = (0, 0, 0, 0, 1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2)


@dataclass
class Positions:
    """Positions of a [B, L] batch (reference §1.4): 1-D, t, h, w and the frame-body flag."""

    text: torch.Tensor  # [B, L] long
    t: torch.Tensor  # [B, L] long
    h: torch.Tensor  # [B, L] long
    w: torch.Tensor  # [B, L] long
    flag: torch.Tensor  # [B, L] bool: frame-body slot (uses the 3-D position)
    # the `RoPE` tables of these positions, kept for the next forward that passes the same object
    # (every decoding step of a frame): the tensors above must not change after they are built
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def slice(self, start: int, end: int | None = None) -> Positions:
        """Columns [start, end): the global positions of a chunk run against a KV cache."""
        cut = slice(start, end)
        return Positions(self.text[:, cut], self.t[:, cut], self.h[:, cut], self.w[:, cut], self.flag[:, cut])


def positions(ids: torch.Tensor, vocab: Vocab, strides: tuple[int, int, int] = (4, 8, 8)) -> Positions:
    """Positions of every token of ids [B, L], computed on the whole (global) sequence."""
    s = structure(ids, vocab)
    batch, length = ids.shape
    text = torch.arange(length, device=ids.device).expand(batch, length)  # [B, L]
    p0 = s.first_body[:, None]  # [B, 1]
    st, sh, sw = strides
    t = torch.where(s.body, p0 + st * s.frame, text)
    h = torch.where(s.body, p0 + sh * s.row, text)
    w = torch.where(s.body, p0 + sw * s.col, text)
    return Positions(text, t, h, w, s.body)


def channel_axes(head_dim: int, kind: RopeKind) -> torch.Tensor:
    """Axis (0 = t, 1 = h, 2 = w) of every one of the head_dim/2 frequencies."""
    half = head_dim // 2
    if kind == "mm":
        assert half % 16 == 0, f"MM-RoPE needs head_dim % 32 == 0, got {head_dim}"
        return torch.tensor(_MM_BLOCK).repeat(half // 16)
    assert half % 8 == 0, f"3-D RoPE needs head_dim % 16 == 0, got {head_dim}"
    n_t, n_h = half * 2 // 8, half * 3 // 8
    return torch.cat([torch.zeros(n_t), torch.ones(n_h), torch.full((half - n_t - n_h,), 2)]).long()


class RoPE(nn.Module):
    """cos and signed sin tables [B, L, D] for a `Positions`; one pair serves every layer of a forward.

    The signed sin is -sin on the first D/2 channels and sin on the others: rotate-half's sign is
    folded into the table once, so `apply_rope` only swaps the halves.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0, kind: RopeKind = "mm"):
        super().__init__()
        self.kind = kind
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim)
        self.register_buffer("inv_freq", torch.cat([inv_freq, inv_freq]), persistent=False)  # [D]
        sign = torch.cat([-torch.ones_like(inv_freq), torch.ones_like(inv_freq)])
        self.register_buffer("sin_sign", sign, persistent=False)  # [D]
        if kind != "1d":
            axes = channel_axes(head_dim, kind)
            self.register_buffer("axes", torch.cat([axes, axes]), persistent=False)  # [D]

    def forward(
        self, pos: Positions, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # tables made in inference mode cannot serve a forward that records autograd, hence the flag
        key = (self, dtype, torch.is_inference_mode_enabled())
        if key not in pos._tables:
            pos._tables[key] = self.tables(pos, dtype)
        return pos._tables[key]

    def tables(self, pos: Positions, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and signed sin [B, L, D], computed (`forward` keeps them on `pos`)."""
        text = pos.text[..., None]  # [B, L, 1]
        if self.kind == "1d":
            per_channel = text
        else:
            thw = torch.stack([pos.t, pos.h, pos.w], dim=-1)  # [B, L, 3]
            visual = thw[..., self.axes]  # [B, L, D]: each channel reads its axis
            per_channel = torch.where(pos.flag[..., None], visual, text)
        angles = per_channel.float() * self.inv_freq  # [B, L, D], fp32 as in the official tables
        return angles.cos().to(dtype), (angles.sin() * self.sin_sign).to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, L, D] by the `RoPE` tables [B, L, D]; channel i pairs with i + D/2
    (rotate-half: x * cos + [-x2, x1] * sin, the minus already in `signed_sin`)."""
    swapped = x.roll(x.shape[-1] // 2, dims=-1)  # [x2, x1]
    return x * cos[:, None] + swapped * signed_sin[:, None]
