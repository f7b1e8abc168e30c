"""Latent VQ-VAEs: discrete codes over the (scaled) video-VAE latent (reference §2, §5).

ARLON nests a VQ-VAE inside the continuous VAE latent: its encoder compresses the latent, a
plain codebook quantises it, and its decoder returns a *coarse latent* F with exactly the shape
of the VAE latent X. Two are trained:
- the FINE one, whose codes the AR model predicts (ARLON: 4x8x8 relative to the latent);
- the COARSE one (ARLON: 4x16x16), whose reconstructions the DiT is trained on, so the DiT
  learns to treat F as a low-information hint and tolerates the AR model's errors.

At arvideo's scale the latent of a 64x64x17 clip is only 5x8x8, so the defaults compress
1x2x2 (fine: 4x4 codes per latent frame) and 1x4x4 (coarse: 2x2 codes); time is not compressed,
which gives the AR model one code frame per latent frame (docs/arlon.md explains the choice).
Encoder and decoder are the causal conv stacks of the VAE, so codes of latent frame j only
depend on latent frames <= j.

The quantiser is plain VQ (nearest codebook row) with a straight-through gradient and a
commitment loss; the codebook learns by EMA (default) or by gradient, optionally on
l2-normalised vectors; codes unused for a while restart from random encoder outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from arvideo.arlon.causal_conv import CausalDecoder, CausalEncoder, check_stack, check_video_shape
from arvideo.arlon.pretrained import PretrainedModel
from arvideo.errors import ArvideoError


@dataclass
class LatentVQConfig:
    latent_channels: int = 4  # channels of the VAE latent (input and output)
    channels: tuple[int, ...] = (32, 64)  # width per stage; spatial compression 2**(len-1)
    temporal_compression: int = 1  # latent frames per code frame after the first
    num_res_blocks: int = 1
    norm_groups: int = 8
    codebook_size: int = 1024
    code_dim: int = 8
    commitment: float = 0.25  # beta: weight of ||z - sg(e)||^2
    codebook_update: Literal["ema", "grad"] = "ema"
    ema_decay: float = 0.99
    l2_normalize: bool = False  # cosine-similarity codebook lookup
    dead_code_threshold: float = 1e-3  # restart codes whose usage EMA (hits per step) falls below

    def __post_init__(self) -> None:
        check_stack(self.channels, self.temporal_compression, self.norm_groups, "LatentVQConfig")
        if self.codebook_update not in ("ema", "grad"):
            raise ArvideoError(
                f"LatentVQConfig.codebook_update must be 'ema' or 'grad', got {self.codebook_update!r}"
            )
        if self.codebook_size < 2 or self.code_dim < 1:
            raise ArvideoError(
                "LatentVQConfig needs codebook_size >= 2 and code_dim >= 1, "
                f"got {self.codebook_size}, {self.code_dim}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ArvideoError(f"LatentVQConfig.ema_decay must be in [0, 1), got {self.ema_decay}")

    @property
    def spatial_compression(self) -> int:
        return 2 ** (len(self.channels) - 1)


def fine_vq_config(latent_channels: int = 4) -> LatentVQConfig:
    """Codes the AR model predicts: 1x2x2 over the latent (16 codes per 64x64 latent frame)."""
    return LatentVQConfig(latent_channels=latent_channels, channels=(32, 64), codebook_size=1024)


def coarse_vq_config(latent_channels: int = 4) -> LatentVQConfig:
    """Coarser codes the DiT is trained on: 1x4x4 over the latent (4 codes per 64x64 latent frame)."""
    return LatentVQConfig(latent_channels=latent_channels, channels=(32, 64, 64), codebook_size=512)


class VectorQuantizer(nn.Module):
    """Nearest-row VQ over the last axis, with straight-through gradients (arXiv 1711.00937)."""

    def __init__(self, config: LatentVQConfig):
        super().__init__()
        c = config
        self.config = c
        codebook = torch.randn(c.codebook_size, c.code_dim)
        if c.codebook_update == "grad":
            self.codebook = nn.Parameter(codebook)
        else:
            self.register_buffer("codebook", codebook)
            self.register_buffer("embed_sum", codebook.clone())
        # EMA of hits per code and step (both update modes): EMA cluster sizes, dead-code detection
        self.register_buffer("usage", torch.ones(c.codebook_size))

    def lookup_table(self) -> torch.Tensor:
        return F.normalize(self.codebook, dim=-1) if self.config.l2_normalize else self.codebook

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., D] -> ids [...] of the nearest codebook rows."""
        table = self.lookup_table()
        if self.config.l2_normalize:
            z = F.normalize(z, dim=-1)
        dist = z.square().sum(-1, keepdim=True) - 2 * z @ table.t() + table.square().sum(-1)  # [..., K]
        return dist.argmin(-1)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.lookup_table())  # [..., D]

    def forward(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z [..., D] -> (quantised z with straight-through gradient, ids [...], codebook+commitment loss).

        In training mode the codebook statistics update (EMA mode) and, when a generator is given,
        dead codes restart from random rows of this batch.
        """
        c = self.config
        if c.l2_normalize:
            z = F.normalize(z, dim=-1)
        ids = self.codes(z)
        zq = self.embed(ids)
        loss = c.commitment * F.mse_loss(z, zq.detach())
        if c.codebook_update == "grad":
            loss = loss + F.mse_loss(zq, z.detach())
        if self.training:
            self._update(z.detach().flatten(0, -2), ids.flatten(), generator)
        return z + (zq - z).detach(), ids, loss

    @torch.no_grad()
    def _update(self, z: torch.Tensor, ids: torch.Tensor, generator: torch.Generator | None) -> None:
        """EMA codebook step and dead-code restart from a batch z [N, D] with ids [N]."""
        c = self.config
        hits = torch.bincount(ids, minlength=c.codebook_size).to(z.dtype)  # [K]
        self.usage.lerp_(hits, 1 - c.ema_decay)
        if c.codebook_update == "ema":
            self.embed_sum.mul_(c.ema_decay).index_add_(0, ids, z, alpha=1 - c.ema_decay)
            # Laplace smoothing keeps rarely used codes from dividing by ~0
            n = self.usage.sum()
            size = (self.usage + 1e-5) / (n + c.codebook_size * 1e-5) * n
            self.codebook.copy_(self.embed_sum / size[:, None])
        dead = self.usage < c.dead_code_threshold
        if generator is not None and bool(dead.any()):
            n_dead = int(dead.sum())
            pick = torch.randint(0, z.shape[0], (n_dead,), generator=generator, device=z.device)
            self.codebook[dead] = z[pick]
            self.usage[dead] = 1.0
            if c.codebook_update == "ema":
                self.embed_sum[dead] = z[pick]


@dataclass
class VQOutput:
    recon: torch.Tensor  # [B, C, T, H, W] coarse latent F, same shape as the input latent
    ids: torch.Tensor  # [B, T', H', W'] code ids in [0, codebook_size)
    vq_loss: torch.Tensor  # codebook + commitment loss (scalar)


class LatentVQ(PretrainedModel):
    """Latent VQ-VAE: latent [B, C, 1+tc*k, H, W] -> ids [B, 1+k, H/sc, W/sc] -> latent of the input's shape.

    Exposes the attributes the AR stage reads from a video tokenizer (`codebook_size`,
    `temporal_compression`, `spatial_compression`), measured against the VAE latent.
    """

    config_class = LatentVQConfig
    model_type = "arlon_latent_vq"

    def __init__(self, config: LatentVQConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = CausalEncoder(
            c.latent_channels, c.code_dim, c.channels, c.temporal_compression, c.num_res_blocks, c.norm_groups
        )
        self.quantizer = VectorQuantizer(c)
        self.decoder = CausalDecoder(
            c.code_dim, c.latent_channels, c.channels, c.temporal_compression, c.num_res_blocks, c.norm_groups
        )

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def temporal_compression(self) -> int:
        return self.config.temporal_compression

    @property
    def spatial_compression(self) -> int:
        return self.config.spatial_compression

    def code_shape(self, latent_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(T', H', W') of the codes for a latent of that shape; ArvideoError if it does not fit."""
        tc, sc = self.temporal_compression, self.spatial_compression
        check_video_shape(latent_frames, height, width, tc, sc, "latent")
        return 1 + (latent_frames - 1) // tc, height // sc, width // sc

    def _encode(self, latent: torch.Tensor) -> torch.Tensor:
        _, _, t, h, w = latent.shape
        self.code_shape(t, h, w)
        return rearrange(self.encoder(latent), "b d t h w -> b t h w d")  # [B, T', H', W', D]

    def encode(self, latent: torch.Tensor) -> torch.Tensor:
        """Scaled VAE latent [B, C, T, H, W] -> code ids [B, T', H', W']."""
        return self.quantizer.codes(self._encode(latent))

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Code ids [B, T', H', W'] -> coarse latent F [B, C, 1+tc*(T'-1), H'*sc, W'*sc]."""
        zq = rearrange(self.quantizer.embed(ids), "b t h w d -> b d t h w")  # [B, D, T', H', W']
        return self.decoder(zq)

    def forward(self, latent: torch.Tensor, generator: torch.Generator | None = None) -> VQOutput:
        zq, ids, vq_loss = self.quantizer(self._encode(latent), generator)
        recon = self.decoder(rearrange(zq, "b t h w d -> b d t h w"))  # [B, C, T, H, W]
        return VQOutput(recon, ids, vq_loss)


def vq_loss(latent: torch.Tensor, out: VQOutput, codebook_size: int) -> dict[str, torch.Tensor]:
    """Training objective from one forward's outputs: MSE(F, X) + codebook/commitment loss.

    Also reports the codebook perplexity of the batch (how many codes are in effective use).
    """
    rec = F.mse_loss(out.recon, latent)
    probs = torch.bincount(out.ids.flatten(), minlength=codebook_size).float()
    probs = probs / probs.sum()
    perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
    return {
        "loss": rec + out.vq_loss,
        "recon": rec.detach(),
        "vq": out.vq_loss.detach(),
        "perplexity": perplexity,
    }
