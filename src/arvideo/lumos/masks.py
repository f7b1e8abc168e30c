"""The Lumos-1 attention pattern: causal across frames, bidirectional inside a frame (reference §3).

Official rule: query i may see key j iff j <= i, or i and j lie in the same frame segment
(image_start .. image_end inclusive). A segment is contiguous, so this is a prefix rule:
query i sees exactly the keys 0..limit[i], where limit[i] is the end of i's frame segment if i is
in one, else i itself. `FrameMask` stores only `limit` ([B, L] longs instead of an [L, L] mask).

Attention runs through `F.scaled_dot_product_attention` in query chunks: each chunk attends to the
keys up to its largest limit with a small additive mask [B, 1, chunk, keys] (0 or -inf: what SDPA
would turn a boolean mask into at every call), or with none when every query of the chunk sees
every one of those keys (a decoding step without guidance). This is exact, never builds an
O(L^2) mask, and skips the keys no query of the chunk may see. On CPU (torch 2.13) SDPA with a
mask runs its flash kernel, forward and backward.

`FrameMask.block_mask` gives the same pattern as a flex-attention `BlockMask` for GPUs. On CPU,
flex attention has no backward, and without `torch.compile` it materialises the full score
matrix (measured in torch 2.13; compiling it took ~20 s), so CPU uses the SDPA path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from arvideo.lumos.sequence import structure
from arvideo.lumos.vocab import Vocab


@dataclass
class FrameMask:
    """allowed[b, i, j] = j <= limit[b, i]; rows are queries, `limit` holds global key indices."""

    limit: torch.Tensor  # [B, Lq] long
    # [B, Lq] long: first key a query may see, for left-padded rows of a batch (None = key 0)
    first: torch.Tensor | None = None
    # `bias` of all rows as one chunk, by (keys, dtype, inference mode): limit and first must not
    # change after it is built
    _whole: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def slice(self, start: int, end: int | None = None) -> FrameMask:
        """Rows [start, end): the queries of a chunk run against a KV cache holding keys < start."""
        first = None if self.first is None else self.first[:, start:end]
        return FrameMask(self.limit[:, start:end], first)

    def dense(self, n_keys: int | None = None) -> torch.Tensor:
        """The full boolean mask [B, 1, Lq, n_keys] (True = may attend), for tests and short inputs."""
        n_keys = self.limit.shape[1] if n_keys is None else n_keys
        return self._allowed(0, self.limit.shape[1], n_keys)[:, None]  # [B, 1, Lq, Lk]

    def bias(self, start: int, end: int, n_keys: int, dtype: torch.dtype) -> tuple[int, torch.Tensor | None]:
        """What query rows [start, end) over keys [0, n_keys) need for SDPA: how many keys they may
        see at most (m <= n_keys), and the additive mask [B, 1, rows, m] (0 = may attend, -inf not),
        None if every row sees all m keys.

        All layers of a forward ask for the same rows. When they are all the rows (every decoding
        forward), the answer is kept on this mask for all of them and for the next forward that
        passes the same object; a long input's chunks are built at each call, so no more than one
        chunk's mask is ever alive.
        """
        whole = start == 0 and end >= self.limit.shape[1]
        # a mask made in inference mode cannot serve a forward that records autograd, hence the flag
        key = (n_keys, dtype, torch.is_inference_mode_enabled())
        if whole and key in self._whole:
            return self._whole[key]
        limit = self.limit[:, start:end]
        seen = min(int(limit.max()) + 1, n_keys)  # a chunk may stop inside a frame (next-token decoding)
        sees_all = int(limit.min()) + 1 >= seen and (self.first is None or not self.first[:, start:end].any())
        bias = None
        if not sees_all:
            allowed = self._allowed(start, end, seen)
            bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
            bias = bias.masked_fill_(~allowed, float("-inf"))[:, None]
        if whole:
            self._whole[key] = seen, bias
        return seen, bias

    def _allowed(self, start: int, end: int, n_keys: int) -> torch.Tensor:
        """Boolean mask [B, rows, n_keys] of query rows [start, end) over keys [0, n_keys)."""
        keys = torch.arange(n_keys, device=self.limit.device)
        allowed = keys <= self.limit[:, start:end, None]
        if self.first is not None:
            allowed &= keys >= self.first[:, start:end, None]
        return allowed

    def block_mask(self, n_keys: int | None = None):
        """The same pattern as a flex-attention BlockMask (queries are the last Lq of n_keys)."""
        from torch.nn.attention.flex_attention import create_block_mask

        limit, first = self.limit, self.first
        n_keys = limit.shape[1] if n_keys is None else n_keys

        def allowed(b, h, q, k):
            if first is None:
                return k <= limit[b, q]
            return (k <= limit[b, q]) & (k >= first[b, q])

        return create_block_mask(
            allowed, B=limit.shape[0], H=None, Q_LEN=limit.shape[1], KV_LEN=n_keys, device=limit.device
        )


def frame_mask(ids: torch.Tensor, vocab: Vocab) -> FrameMask:
    """The frame-causal / intra-frame-bidirectional pattern of ids [B, L] (global indices)."""
    return FrameMask(structure(ids, vocab).segment_end)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: FrameMask, chunk: int = 1024
) -> torch.Tensor:
    """Masked attention of q [B, H, Lq, D] over k, v [B, KV, Lk, D] (GQA when KV < H).

    Query rows are processed `chunk` at a time; each chunk sees the keys up to the largest limit of
    its rows, or up to the last key if that comes first (next-token decoding stops inside a frame).
    """
    length = q.shape[2]
    gqa = k.shape[1] != q.shape[1]
    out = []
    for start in range(0, length, chunk):
        n_keys, bias = mask.bias(start, start + chunk, k.shape[2], q.dtype)  # [B, 1, c, n_keys] or None
        out.append(
            F.scaled_dot_product_attention(
                q[:, :, start : start + chunk],
                k[:, :, :n_keys],
                v[:, :, :n_keys],
                attn_mask=bias,
                enable_gqa=gqa,
            )
        )  # [B, H, c, D]
    return torch.cat(out, dim=2) if len(out) > 1 else out[0]  # [B, H, Lq, D]
