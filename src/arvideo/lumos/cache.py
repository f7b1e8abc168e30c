"""Key/value cache for frame-by-frame decoding.

The cache holds the keys and values (after RoPE) of a committed prefix of the sequence,
`length` tokens long. A forward over a new chunk always computes with (cache + chunk); whether
the chunk becomes part of the prefix is the caller's choice:

- `write=True`: the chunk is appended (prompt prefill, a finished history-masked frame);
- `write=False`: the chunk is only attended to (each parallel-decoding step of the frame being
  generated re-runs that frame against the history without committing it).

Both modes write the chunk's keys/values into the buffer right after the prefix; only `write=True`
advances `length`, so an uncommitted chunk is simply overwritten by the next call.
"""

from __future__ import annotations

import torch


class KVCache:
    """Preallocated buffers [n_layers, B, KV, capacity, D] that grow on demand."""

    def __init__(
        self,
        n_layers: int,
        batch: int,
        n_kv_heads: int,
        head_dim: int,
        capacity: int = 4096,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        shape = (n_layers, batch, n_kv_heads, capacity, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    def reset(self) -> None:
        self.length = 0

    def crop(self, n: int) -> None:
        """Keep only the first n committed tokens (e.g. drop a frame to re-decode it)."""
        assert 0 <= n <= self.length, f"cannot crop a cache of {self.length} tokens to {n}"
        self.length = n

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Put a chunk's k, v [B, KV, n, D] after the prefix; return prefix + chunk [B, KV, length + n, D]."""
        end = self.length + k.shape[2]
        if end > self.capacity:
            self._grow(end)
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int) -> None:
        """Commit the last chunk of n tokens (called by the decoder after its last layer)."""
        assert self.length + n <= self.capacity
        self.length += n

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * self.capacity)
        pad = capacity - self.capacity
        self.k = torch.nn.functional.pad(self.k, (0, 0, 0, pad))
        self.v = torch.nn.functional.pad(self.v, (0, 0, 0, pad))
