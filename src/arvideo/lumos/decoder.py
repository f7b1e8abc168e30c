"""The Lumos-1 decoder: a Chameleon/Llama-style LLM over text ids and video codes (reference §6.2).

Architecture choices:
- RMSNorm pre-norm blocks (or Chameleon's "swin-norm" post-norm blocks), statistics in fp32;
- attention with grouped-query heads (GQA) and Chameleon's qk-LayerNorm: LayerNorm over the head
  dimension without affine, then one [1, D] scale and bias shared by all heads;
- RoPE applied after qk-norm: MM-RoPE, naive 3-D or 1-D (`rope.py`);
- frame-causal / intra-frame-bidirectional attention (`masks.py`), through SDPA or flex attention;
- SwiGLU MLP, no biases anywhere, untied output head.

`forward` returns the final-normed hidden states; the head is applied separately (`logits`,
`visual_logits`) so that training can project only the rows and columns it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from arvideo.errors import ArvideoError
from arvideo.lumos.cache import KVCache
from arvideo.lumos.masks import FrameMask, attend, frame_mask
from arvideo.lumos.rope import Positions, RoPE, RopeKind, apply_rope, positions
from arvideo.lumos.vocab import Vocab


@dataclass(kw_only=True)
class DecoderConfig:
    """Hyper-parameters; the fields carry the names of the HF config.json of Lumos-1 (§6.4)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab: Vocab = field(default_factory=Vocab.official)  # vocab_size = vocab.size
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_kind: RopeKind = "mm"  # config.json `mm_rope: true` is "mm", false is "1d"
    rope_strides: tuple[int, int, int] = (4, 8, 8)  # video tokenizer compression (t, h, w)
    swin_norm: bool = False
    max_position_embeddings: int = 4096  # informational: RoPE has no length limit
    initializer_range: float = 0.02
    attn_impl: Literal["sdpa", "flex"] = "sdpa"  # flex: GPU only (no CPU backward in torch 2.13)
    attn_chunk: int = 1024  # query rows per SDPA call

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ArvideoError(
                f"hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ArvideoError(
                f"num_attention_heads {self.num_attention_heads} is not divisible by "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        for name, allowed in (("rope_kind", get_args(RopeKind)), ("attn_impl", ("sdpa", "flex"))):
            if getattr(self, name) not in allowed:
                raise ArvideoError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        need = {"mm": 32, "3d": 16, "1d": 2}[self.rope_kind]
        if self.head_dim % need:
            raise ArvideoError(
                f"rope_kind {self.rope_kind!r} needs head_dim % {need} == 0, got head_dim "
                f"{self.head_dim}; change hidden_size or num_attention_heads"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def vocab_size(self) -> int:
        return self.vocab.size


class RMSNorm(nn.Module):
    """Llama RMSNorm: x / rms(x) * weight, with the statistics in fp32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype == torch.float32:  # one fused kernel
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        # other dtypes (autocast, bf16 weights): statistics in fp32, the normalised values cast back
        # to x's dtype before the scale, as the official code; no mixed-dtype weight for the kernel
        return self.weight * F.rms_norm(x.float(), self.weight.shape, eps=self.eps).to(x.dtype)


class QKNorm(nn.Module):
    """Chameleon qk-norm: LayerNorm over the head dim, then a [1, D] affine shared by all heads."""

    def __init__(self, head_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, head_dim))
        self.bias = nn.Parameter(torch.zeros(1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype == torch.float32:  # the shared affine is LayerNorm's own: fused
            return F.layer_norm(x, x.shape[-1:], self.weight[0], self.bias[0], self.eps)  # [..., H, D]
        # other dtypes: the official order, the normalised values in x's dtype before the affine
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight + self.bias


class Attention(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.chunk, self.impl = cfg.attn_chunk, cfg.attn_impl
        d = cfg.hidden_size
        self.q = nn.Linear(d, self.n_head * self.head_dim, bias=False)
        self.k = nn.Linear(d, self.n_kv * self.head_dim, bias=False)
        self.v = nn.Linear(d, self.n_kv * self.head_dim, bias=False)
        self.o = nn.Linear(self.n_head * self.head_dim, d, bias=False)
        self.q_norm = QKNorm(self.head_dim)
        self.k_norm = QKNorm(self.head_dim)

    def forward(
        self, x, rope, mask: FrameMask, block_mask, cache: KVCache | None, layer: int
    ) -> torch.Tensor:
        B, L, _ = x.shape  # [B, L, d]
        q = self.q_norm(self.q(x).view(B, L, self.n_head, self.head_dim)).transpose(1, 2)  # [B, H, L, D]
        k = self.k_norm(self.k(x).view(B, L, self.n_kv, self.head_dim)).transpose(1, 2)  # [B, KV, L, D]
        v = self.v(x).view(B, L, self.n_kv, self.head_dim).transpose(1, 2)  # [B, KV, L, D]
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, KV, cached + L, D]
        if block_mask is not None:
            from torch.nn.attention.flex_attention import flex_attention

            y = flex_attention(q, k, v, block_mask=block_mask, enable_gqa=self.n_kv != self.n_head)
        else:
            y = attend(q, k, v, mask, self.chunk)  # [B, H, L, D]
        return self.o(y.transpose(1, 2).reshape(B, L, -1))  # [B, L, d]


class MLP(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))  # SwiGLU


class Block(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.swin_norm = cfg.swin_norm
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, rope, mask, block_mask, cache, layer) -> torch.Tensor:
        if self.swin_norm:  # post-norm inside the residual branch: x + norm(f(x))
            x = x + self.attn_norm(self.attn(x, rope, mask, block_mask, cache, layer))
            return x + self.mlp_norm(self.mlp(x))
        x = x + self.attn(self.attn_norm(x), rope, mask, block_mask, cache, layer)
        return x + self.mlp(self.mlp_norm(x))


class LumosDecoder(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.vocab = config.vocab
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        # the untied head as two row blocks, so a visual-only loss leaves the text rows' .grad None
        # (no dense gradient for them); on disk it is the one official tensor (see checkpoint.py)
        v = self.vocab
        assert v.size == v.visual_offset + v.codebook_size, "the visual ids end every layout"
        self.head_text = nn.Linear(config.hidden_size, v.visual_offset, bias=False)  # text + specials
        self.head_visual = nn.Linear(config.hidden_size, v.codebook_size, bias=False)
        self.rope = RoPE(config.head_dim, config.rope_theta, config.rope_kind)
        self.init_weights()

    def init_weights(self) -> None:
        """Linear and embedding weights ~ N(0, initializer_range); norms start as the identity."""
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, std=self.config.initializer_range)
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)
            elif isinstance(m, QKNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def positions(self, ids: torch.Tensor) -> Positions:
        """Global positions of ids [B, L] under this model's vocabulary and tokenizer strides."""
        return positions(ids, self.vocab, self.config.rope_strides)

    def mask(self, ids: torch.Tensor) -> FrameMask:
        """Global attention pattern of ids [B, L]."""
        return frame_mask(ids, self.vocab)

    def new_cache(self, batch: int, capacity: int = 4096) -> KVCache:
        p = self.head_visual.weight
        c = self.config
        return KVCache(
            c.num_hidden_layers, batch, c.num_key_value_heads, c.head_dim, capacity, p.dtype, p.device
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: Positions | None = None,
        mask: FrameMask | None = None,
        cache: KVCache | None = None,
        write_cache: bool = True,
    ) -> torch.Tensor:
        """Final-normed hidden states [B, L, d] of input_ids [B, L].

        Without a cache (or with an empty one) positions and mask default to those of input_ids.
        With a non-empty cache, input_ids is a chunk that follows the cached prefix: pass its
        global `positions` and `mask` (computed on the whole sequence, then `.slice(start)`).
        The chunk attends to (cache + itself); `write_cache=False` leaves the cache as it was.
        Passing the same `positions` and `mask` objects again reuses the RoPE tables and attention
        mask built from them (as every decoding step of a frame does).
        """
        B, L = input_ids.shape
        assert not (cache is not None and cache.length and (positions is None or mask is None)), (
            "a chunk after a non-empty cache needs its global positions and mask"
        )
        positions = self.positions(input_ids) if positions is None else positions
        mask = self.mask(input_ids) if mask is None else mask
        assert mask.limit.shape == (B, L), f"mask rows {tuple(mask.limit.shape)} != ids {(B, L)}"
        n_keys = L + (cache.length if cache is not None else 0)
        block_mask = mask.block_mask(n_keys) if self.config.attn_impl == "flex" else None

        x = self.embed(input_ids)  # [B, L, d]
        rope = self.rope(positions, x.dtype)  # cos, signed sin [B, L, D]
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, mask, block_mask, cache, i)
        if cache is not None and write_cache:
            cache.advance(L)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary fp32 logits [..., V] (use on a few rows only for long sequences)."""
        return F.linear(hidden, self.head_weight).float()

    def visual_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """fp32 logits [..., codebook_size] over the visual codes only (index = tokenizer code)."""
        return F.linear(hidden, self.visual_head_weight).float()

    @property
    def head_weight(self) -> torch.Tensor:
        """The whole head [V, d] in vocabulary order (a concatenated copy: gradients flow)."""
        return torch.cat([self.head_text.weight, self.head_visual.weight])

    @property
    def visual_head_weight(self) -> torch.Tensor:
        """The head rows of the visual codes [codebook_size, d] (the parameter itself)."""
        return self.head_visual.weight
