"""Finite scalar quantization (FSQ, arXiv 2309.15505): a codebook without codebook vectors.

Each of the `d = len(levels)` latent channels is squashed into a bounded range and rounded to one
of `levels[i]` values, so the implicit codebook is the product grid of `prod(levels)` points and
every code is used without auxiliary losses. The index of a code is its mixed-radix number
`sum_i q_i * basis_i` with `basis = (1, L0, L0*L1, ...)`: for Cosmos' levels (8,8,8,5,5,5) that is
basis (1, 8, 64, 512, 2560, 12800) and 64,000 ids (reference lumos1.md §7, §11).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class FSQ(nn.Module):
    """Bound, round (straight-through) and index a `[..., d]` latent; levels per channel."""

    def __init__(self, levels: Sequence[int], eps: float = 1e-3):
        super().__init__()
        if len(levels) == 0 or any(int(level) < 2 for level in levels):
            raise ValueError(f"FSQ levels must all be >= 2, got {tuple(levels)}")
        self.levels_tuple = tuple(int(level) for level in levels)
        self.eps = eps
        levels_t = torch.tensor(self.levels_tuple, dtype=torch.long)
        basis = torch.cumprod(torch.tensor((1, *self.levels_tuple[:-1]), dtype=torch.long), 0)
        # Buffers are derived from `levels`, so they stay out of the state dict.
        self.register_buffer("levels", levels_t, persistent=False)
        self.register_buffer("basis", basis, persistent=False)

    @property
    def dim(self) -> int:
        return len(self.levels_tuple)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels_tuple)

    def _half_width(self) -> torch.Tensor:
        return (self.levels // 2).float()

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash each channel into an interval that rounds onto exactly `L` integers.

        Even L needs an interval centred on a half-integer (L=8 rounds to -4..3), hence the shift.
        """
        half, offset, shift = self._bound_params()
        return torch.tanh(z + shift) * half - offset

    def _bound_params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        half = (self.levels.float() - 1) * (1 + self.eps) / 2
        offset = (self.levels % 2 == 0).float() * 0.5
        return half, offset, torch.atanh(offset / half)

    def saturation(self, z: torch.Tensor, limit: float = 2.0) -> torch.Tensor:
        """Mean squared excess of the pre-tanh latent beyond +-`limit`: a training penalty.

        The tanh bound has a vanishing gradient far out, so an encoder that pushes a latent deep into
        saturation can no longer move it: distinct inputs collapse onto the extreme level and the
        decoder cannot tell them apart. Every level is already reached inside +-1.5, so keeping the
        latent within +-2 costs no code and keeps its gradient >= 7% of the maximum.
        """
        shift = self._bound_params()[2]
        return torch.relu((z.float() + shift).abs() - limit).pow(2).mean()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [..., d] float -> (codes [..., d] in [-1, 1] with straight-through gradient, ids [...])."""
        z = z.float()  # rounding must not happen in bf16
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()  # straight-through estimator
        ids = self.levels_to_ids(torch.round(bounded).long() + self.levels // 2)
        return rounded / self._half_width(), ids

    def levels_to_ids(self, q: torch.Tensor) -> torch.Tensor:
        """Per-channel level numbers q [..., d] in [0, L_i) -> ids [...] (mixed radix)."""
        return (q * self.basis).sum(-1)

    def ids_to_levels(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [...] -> per-channel level numbers [..., d] in [0, L_i)."""
        return (ids.long().unsqueeze(-1) // self.basis) % self.levels

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Normalised codes [..., d] in [-1, 1] -> ids [...]."""
        q = torch.round(codes.float() * self._half_width()).long() + self.levels // 2
        return self.levels_to_ids(q)

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [...] -> normalised codes [..., d] in [-1, 1], the decoder's input."""
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.codebook_size):
            lo, hi = int(ids.min()), int(ids.max())
            raise ValueError(f"code ids must lie in [0, {self.codebook_size}), got range [{lo}, {hi}]")
        return (self.ids_to_levels(ids) - self.levels // 2).float() / self._half_width()


def codebook_usage(ids: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """How much of a codebook a set of ids uses: fraction of codes seen, perplexity, counts.

    Perplexity is exp(entropy) of the empirical code distribution: equal to the number of codes
    when all are used uniformly, 1 when a single code is used.
    """
    counts = torch.bincount(ids.reshape(-1).long(), minlength=codebook_size).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    used = int((counts > 0).sum())
    return {
        "codes_used": used,
        "fraction_used": used / codebook_size,
        "perplexity": float(entropy.exp()),
        "n_tokens": int(counts.sum()),
    }
