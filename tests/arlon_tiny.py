"""Tiny untrained ARLON components and pipelines for the tests (not a test module itself)."""

from __future__ import annotations

import torch

from arvideo.arlon.dit import ArlonDiT, DiTConfig
from arvideo.arlon.flow import FlowMatchEulerScheduler
from arvideo.arlon.latent_vq import LatentVQ, LatentVQConfig
from arvideo.arlon.tasks import DIT_PRESETS, VAE_PRESETS, VQ_PRESETS
from arvideo.arlon.tokenizer import ArlonTokenizer
from arvideo.arlon.vae import VAEConfig, VideoVAE
from arvideo.lumos.decoder import DecoderConfig, LumosDecoder
from arvideo.lumos.vocab import Vocab
from arvideo.pipelines.arlon import ArlonConfig, ArlonPipeline
from arvideo.tokenizers import load_text_tokenizer
from arvideo.train.lumos_task import PRESETS as LUMOS_PRESETS


@torch.no_grad()
def jitter(model: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    """Move every weight off its init: zero-initialised gates would make an untrained DiT output 0."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g))
    return model


def tiny_tokenizer() -> ArlonTokenizer:
    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(**VAE_PRESETS["tiny"]))
    fine = LatentVQ(LatentVQConfig(**VQ_PRESETS["tiny-fine"]))
    return ArlonTokenizer(vae, fine)


def tiny_pipeline(**config) -> ArlonPipeline:
    """VAE + fine VQ + AR + DiT, all tiny and random, at 64x64 with 17-frame segments."""
    tokenizer = tiny_tokenizer()
    text = load_text_tokenizer("builtin:shapes")
    torch.manual_seed(1)
    vocab = Vocab.compact(text.vocab_size, tokenizer.codebook_size)
    ar = LumosDecoder(DecoderConfig(**LUMOS_PRESETS["tiny"], vocab=vocab, rope_strides=(4, 16, 16)))
    dit = jitter(ArlonDiT(DiTConfig(**DIT_PRESETS["tiny"])), seed=2)
    return ArlonPipeline(tokenizer, dit, FlowMatchEulerScheduler(), text, ar,
                         ArlonConfig(steps=2, ar_steps=2, **config))  # fmt: skip
