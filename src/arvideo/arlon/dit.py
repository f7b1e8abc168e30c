"""ARLON diffusion transformer over the video-VAE latent (reference §4, §5).

Architecture choices:
- patchify 1 x p x p (no temporal patching), fixed sin-cos positions (2-D spatial + 1-D temporal);
- spatial-temporal blocks in STDiT's order: spatial self-attention -> text cross-attention ->
  temporal self-attention -> [semantic injection] -> MLP; qk-RMSNorm in every attention;
- timestep conditioning by adaLN-Zero (DiT, arXiv 2212.09748): each block's shift/scale/gate
  come from the timestep embedding through a zero-initialised linear, so every block starts as
  the identity; the modulation is per latent frame, so clean reference frames get t = 0;
- text: ids from the built-in BPE through a small embedding table + transformer layers (no
  external encoder), attended by cross-attention; a learned null key is always present, so the
  text-dropped branch of CFG is "all text masked";
- semantic injection (ARLON): coarse latent F -> patch projection -> latent adapter blocks
  (residual MLP-GELU-MLP) -> uncertainty sampling (training only) -> per-block zero-initialised
  gated adaptive normalisation, token-wise, into the blocks `inject_blocks` (default: first half);
- reference frames for long video (OpenSora's loop mechanism): "replace" puts the clean frames
  into the noisy latent and gives them t = 0; "concat" appends them and a mask as channels.

Axes: B batch, T latent frames, S = h*w patch tokens per frame, D hidden, L text tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from arvideo.arlon.pretrained import PretrainedModel
from arvideo.errors import ArvideoError

TIMESTEP_FREQ_DIM = 256  # width of the sinusoidal timestep features fed to the timestep MLP


@dataclass
class DiTConfig:
    latent_channels: int = 4
    patch_size: int = 1  # spatial patch (temporal patch is always 1)
    hidden_size: int = 192
    depth: int = 6
    num_heads: int = 6
    mlp_ratio: float = 4.0
    text_vocab_size: int = 512  # >= the text tokenizer's vocab_size (built-in BPE: 384)
    max_text_len: int = 64
    text_layers: int = 1  # transformer layers over the text embeddings
    # semantic injection (reference §4): coarse latent -> projection -> adapters -> uncertainty -> gated adaLN
    injection: bool = True
    inject_blocks: tuple[int, ...] | None = None  # None: the first half of the blocks
    injection_mode: Literal["residual", "temporal"] = "residual"
    adapter_blocks: int = 2
    # uncertainty sampling (reference §5), training only:
    # c~ = sqrt(a) c + sqrt(1-a) eps with eps ~ N(mean_c, std_c^2)
    uncertainty: bool = True
    uncertainty_alpha: tuple[float, float] = (0.5, 1.0)  # a ~ U[lo, hi]
    uncertainty_per: Literal["sample", "token"] = "sample"  # one a per sample, or one per token
    # previous-segment conditioning (reference §6)
    reference_mode: Literal["replace", "concat"] = "replace"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads or self.hidden_size % 4:
            raise ArvideoError(
                f"DiTConfig.hidden_size={self.hidden_size} must be divisible by 4 (sin-cos positions) "
                f"and by num_heads={self.num_heads}"
            )
        if self.inject_blocks is not None and any(not 0 <= i < self.depth for i in self.inject_blocks):
            raise ArvideoError(
                f"DiTConfig.inject_blocks={self.inject_blocks} must lie in [0, depth={self.depth})"
            )
        lo, hi = self.uncertainty_alpha
        if not 0.0 <= lo <= hi <= 1.0:
            raise ArvideoError(
                f"DiTConfig.uncertainty_alpha must satisfy 0 <= lo <= hi <= 1, got {self.uncertainty_alpha}"
            )
        for name, value, allowed in (
            ("injection_mode", self.injection_mode, ("residual", "temporal")),
            ("uncertainty_per", self.uncertainty_per, ("sample", "token")),
            ("reference_mode", self.reference_mode, ("replace", "concat")),
        ):
            if value not in allowed:
                raise ArvideoError(f"DiTConfig.{name} must be one of {allowed}, got {value!r}")

    @property
    def injected(self) -> frozenset[int]:
        """Indices of the blocks that receive the semantic injection."""
        if not self.injection:
            return frozenset()
        return frozenset(range(self.depth // 2) if self.inject_blocks is None else self.inject_blocks)


# ---------------------------------------------------------------------------------------------
# small pieces


def sincos(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features [..., dim] of float positions [...] (transformer / DiT timestep style)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)  # [dim/2]
    angles = positions.float()[..., None] * freqs  # [..., dim/2]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def position_embedding(t: int, h: int, w: int, dim: int, device: torch.device) -> torch.Tensor:
    """Fixed positions [T, h*w, D]: spatial (y, x) sin-cos in the first half, plus temporal sin-cos."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    spatial = torch.cat([sincos(ys.flatten(), dim // 2), sincos(xs.flatten(), dim // 2)], dim=-1)  # [S, D]
    temporal = sincos(torch.arange(t, device=device), dim)  # [T, D]
    return temporal[:, None] + spatial[None]  # [T, S, D]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Attention(nn.Module):
    """Multi-head attention with qk-RMSNorm; self-attention, or cross-attention with a key mask."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.q_norm = nn.RMSNorm(dim // num_heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // num_heads, eps=1e-6)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [N, Lq, D], context [N, Lk, D] (default x), key_mask [N, Lk] bool (True = attend)."""
        ctx = x if context is None else context
        q = rearrange(self.q(x), "n l (h d) -> n h l d", h=self.num_heads)
        k, v = rearrange(self.kv(ctx), "n l (two h d) -> two n h l d", two=2, h=self.num_heads)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # [N, 1, 1, Lk]
        out = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v, attn_mask=mask)  # [N,H,Lq,d]
        return self.proj(rearrange(out, "n h l d -> n l (h d)"))


class Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


class TextLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # padding keys are masked; a fully padded row (dropped text) attends to all of them, and
        # its output is then ignored by the DiT's cross-attention mask
        keys = mask | ~mask.any(1, keepdim=True)
        x = x + self.attn(self.norm1(x), key_mask=keys)
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    """Text ids -> context for cross-attention, with a learned null key always in front.

    The null key keeps every row's attention well defined when all text is masked, which is
    exactly the unconditional (text-dropped) branch used for classifier-free guidance.
    """

    def __init__(self, config: DiTConfig):
        super().__init__()
        d = config.hidden_size
        self.max_len = config.max_text_len
        self.embed = nn.Embedding(config.text_vocab_size, d)
        self.pos = nn.Parameter(torch.zeros(config.max_text_len, d))
        self.null = nn.Parameter(torch.zeros(1, d))
        self.layers = nn.ModuleList(
            TextLayer(d, config.num_heads, config.mlp_ratio) for _ in range(config.text_layers)
        )
        self.norm = nn.LayerNorm(d)

    def forward(
        self, ids: torch.Tensor | None, mask: torch.Tensor | None, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [B, L] (None: no text), mask [B, L] bool -> (context [B, 1+L, D], key mask [B, 1+L])."""
        null = self.null.expand(batch, 1, -1)  # [B, 1, D]
        keep_null = torch.ones(batch, 1, dtype=torch.bool, device=null.device)
        if ids is None:
            return null, keep_null
        n = ids.shape[1]
        if n > self.max_len:
            raise ArvideoError(f"text has {n} tokens, the DiT takes at most {self.max_len}; shorten the text")
        mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask
        x = self.embed(ids) + self.pos[:n]  # [B, L, D]
        for layer in self.layers:
            x = layer(x, mask)
        return torch.cat([null, self.norm(x)], dim=1), torch.cat([keep_null, mask], dim=1)


# ---------------------------------------------------------------------------------------------
# semantic injection path


class AdapterBlock(nn.Module):
    """Latent adapter: x + MLP(GELU(MLP(LN x))), token-wise (the figure's MLP-GELU-MLP with skip)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class UncertaintySampling(nn.Module):
    """Simulate AR errors during training: c~ = sqrt(a) c + sqrt(1-a) eps, identity at inference.

    eps ~ N(mean, std^2) with the mean/std of the condition itself (per sample and channel), so
    the noise follows "the distribution of the original coarse latent features"; a ~ U[lo, hi]
    once per sample (or per token).
    """

    def __init__(self, alpha: tuple[float, float], per: Literal["sample", "token"]):
        super().__init__()
        self.alpha = alpha
        self.per = per

    def forward(self, c: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """c [B, T, S, D] -> perturbed c (training) or c itself (eval)."""
        if not self.training:
            return c
        assert generator is not None, "uncertainty sampling in training mode draws from an explicit generator"
        b, t, s, _ = c.shape
        stats = c.detach()  # the noise is a sample, not a path for gradients
        mean = stats.mean(dim=(1, 2), keepdim=True)  # [B, 1, 1, D]
        std = stats.std(dim=(1, 2), keepdim=True) if t * s > 1 else torch.zeros_like(mean)
        eps = mean + std * torch.randn(c.shape, generator=generator, device=c.device, dtype=c.dtype)
        lo, hi = self.alpha
        a_shape = (b, 1, 1, 1) if self.per == "sample" else (b, t, s, 1)
        a = lo + (hi - lo) * torch.rand(a_shape, generator=generator, device=c.device, dtype=c.dtype)
        return a.sqrt() * c + (1 - a).sqrt() * eps


class SemanticCondition(nn.Module):
    """Coarse latent F -> projection -> latent adapters -> uncertainty sampling, aligned token by token."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        d, p = config.hidden_size, config.patch_size
        self.proj = nn.Linear(config.latent_channels * p * p, d)
        self.adapters = nn.Sequential(*(AdapterBlock(d) for _ in range(config.adapter_blocks)))
        self.uncertainty = (
            UncertaintySampling(config.uncertainty_alpha, config.uncertainty_per)
            if config.uncertainty
            else None
        )

    def forward(self, patches: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        c = self.adapters(self.proj(patches))  # [B, T, S, D]
        return c if self.uncertainty is None else self.uncertainty(c, generator)


class SemanticInjection(nn.Module):
    """Token-wise gated adaptive norm from the condition; zero-initialised so it starts as a no-op."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(dim, 3 * dim)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """cond [B, T, S, D] -> (shift, scale, gate), each [B, T, S, D]."""
        return self.ada(cond).chunk(3, dim=-1)


# ---------------------------------------------------------------------------------------------
# DiT


class DiTBlock(nn.Module):
    def __init__(self, config: DiTConfig, injected: bool):
        super().__init__()
        d = config.hidden_size
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.spatial = Attention(d, config.num_heads)
        self.norm2 = nn.LayerNorm(d)
        self.cross = Attention(d, config.num_heads)
        self.norm3 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.temporal = Attention(d, config.num_heads)
        self.norm4 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(d, int(d * config.mlp_ratio))
        self.ada = nn.Linear(d, 9 * d)  # shift/scale/gate for the spatial, temporal and MLP branches
        self.inject = SemanticInjection(d) if injected else None
        self.injection_mode = config.injection_mode

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        cond: torch.Tensor | None,
    ) -> torch.Tensor:
        """x [B, T, S, D], c [B, T, D] (SiLU'd timestep embedding per frame), cond [B, T, S, D] or None."""
        b, t, s, d = x.shape
        mods = self.ada(c)[:, :, None].chunk(9, dim=-1)  # 9 x [B, T, 1, D]
        sh_s, sc_s, g_s, sh_t, sc_t, g_t, sh_m, sc_m, g_m = mods

        h = modulate(self.norm1(x), sh_s, sc_s).flatten(0, 1)  # [B*T, S, D]
        x = x + g_s * self.spatial(h).view(b, t, s, d)

        h = self.cross(self.norm2(x).flatten(1, 2), text, text_mask)  # [B, T*S, D]
        x = x + h.view(b, t, s, d)

        inject = cond is not None and self.inject is not None
        if inject:
            sh_i, sc_i, g_i = self.inject(cond)  # [B, T, S, D] each
            if self.injection_mode == "temporal":  # the condition modulates the temporal branch itself
                sh_t, sc_t, g_t = sh_t + sh_i, sc_t + sc_i, g_t + g_i
        h = rearrange(modulate(self.norm3(x), sh_t, sc_t), "b t s d -> (b s) t d")
        x = x + g_t * rearrange(self.temporal(h), "(b s) t d -> b t s d", b=b)
        if inject and self.injection_mode == "residual":  # own gated adaLN residual after temporal attention
            x = x + g_i * modulate(self.inject.norm(x), sh_i, sc_i)

        return x + g_m * self.mlp(modulate(self.norm4(x), sh_m, sc_m))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c)[:, :, None].chunk(2, dim=-1)  # [B, T, 1, D] each
        return self.linear(modulate(self.norm(x), shift, scale))


class ArlonDiT(PretrainedModel):
    """Velocity model v(x_t, t | text, coarse latent, reference frames) over the scaled VAE latent."""

    config_class = DiTConfig
    model_type = "arlon_dit"

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = c = config
        d, p = c.hidden_size, c.patch_size
        in_channels = 2 * c.latent_channels + 1 if c.reference_mode == "concat" else c.latent_channels
        self.patch_embed = nn.Linear(in_channels * p * p, d)
        self.t_embed = nn.Sequential(nn.Linear(TIMESTEP_FREQ_DIM, d), nn.SiLU(), nn.Linear(d, d))
        self.text = TextEncoder(c)
        self.semantic = SemanticCondition(c) if c.injection else None
        self.blocks = nn.ModuleList(DiTBlock(c, i in c.injected) for i in range(c.depth))
        self.final = FinalLayer(d, c.latent_channels * p * p)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Xavier for linears, N(0, 0.02) for embeddings and the timestep MLP; zeros for every
        adaLN/injection modulation, cross-attention output and the final layer, so each block and
        the injection start as the identity and the initial velocity is 0 (adaLN-Zero)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.text.embed.weight, std=0.02)
        nn.init.normal_(self.text.pos, std=0.02)
        nn.init.normal_(self.text.null, std=0.02)
        for layer in (self.t_embed[0], self.t_embed[2]):
            nn.init.normal_(layer.weight, std=0.02)
        zeroed = [self.final.ada, self.final.linear]
        for block in self.blocks:
            zeroed += [block.ada, block.cross.proj] + ([block.inject.ada] if block.inject is not None else [])
        for layer in zeroed:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def injection_parameters(self) -> list[nn.Parameter]:
        """The ARLON branch (projection, adapters, per-block injection); trained with the backbone frozen."""
        modules = [self.semantic] + [b.inject for b in self.blocks]
        return [p for m in modules if m is not None for p in m.parameters()]

    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        return rearrange(x, "b c t (h ph) (w pw) -> b t (h w) (ph pw c)", ph=p, pw=p)  # [B, T, S, C*p*p]

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        text_ids: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        coarse: torch.Tensor | None = None,
        reference: torch.Tensor | None = None,
        reference_mask: torch.Tensor | None = None,
        drop_text: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Predict the flow velocity.

        x [B, C, T, H, W] noisy latent; timestep [B] in [0, num_train_timesteps] (0 = clean);
        text_ids/text_mask [B, L] (None: unconditional); coarse [B, C, T, H, W] coarse latent F
        (None: no injection); reference [B, C, T, H, W] with reference_mask [B, T] bool marking the
        clean previous-segment frames; drop_text [B] bool drops the text of those rows (CFG /
        caption dropout); generator drives uncertainty sampling in training mode.
        Returns velocity [B, C, T, H, W].
        """
        c = self.config
        b, _, t, h, w = x.shape
        p = c.patch_size
        if h % p or w % p:
            raise ArvideoError(f"latent size {h}x{w} must be a multiple of the DiT patch size {p}")
        assert (reference is None) == (reference_mask is None), "pass reference and reference_mask together"
        t_frames = timestep.float()[:, None].expand(b, t)  # [B, T]
        if c.reference_mode == "concat":
            m = (
                torch.zeros(b, t, dtype=torch.bool, device=x.device)
                if reference_mask is None
                else reference_mask
            )[:, None, :, None, None].to(x.dtype)  # [B, 1, T, 1, 1]
            ref = torch.zeros_like(x) if reference is None else reference
            x = torch.cat([x, ref * m, m.expand(b, 1, t, h, w)], dim=1)  # [B, 2C+1, T, H, W]
        elif reference is not None:
            x = torch.where(reference_mask[:, None, :, None, None], reference, x)
            t_frames = t_frames.masked_fill(reference_mask, 0.0)

        tokens = self.patch_embed(self._patchify(x))  # [B, T, S, D]
        tokens = tokens + position_embedding(t, h // p, w // p, c.hidden_size, x.device)
        temb = F.silu(self.t_embed(sincos(t_frames, TIMESTEP_FREQ_DIM)))  # [B, T, D]
        if drop_text is not None and text_ids is not None:
            keep = torch.ones_like(text_ids, dtype=torch.bool) if text_mask is None else text_mask
            text_mask = keep & ~drop_text[:, None]
        text, text_keys = self.text(text_ids, text_mask, b)  # [B, 1+L, D], [B, 1+L]
        cond = None
        if coarse is not None and self.semantic is not None:
            cond = self.semantic(self._patchify(coarse), generator)  # [B, T, S, D]

        for block in self.blocks:
            tokens = block(tokens, temb, text, text_keys, cond)
        out = self.final(tokens, temb)  # [B, T, S, C*p*p]
        return rearrange(out, "b t (h w) (ph pw c) -> b c t (h ph) (w pw)", h=h // p, ph=p, pw=p)
