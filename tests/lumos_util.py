"""Shared helpers of the tests/test_lumos_*.py files: tiny models and random sequences."""

from __future__ import annotations

from pathlib import Path

import torch

from arvideo.lumos.decoder import DecoderConfig, LumosDecoder
from arvideo.lumos.sequence import pad_batch, serialize
from arvideo.lumos.vocab import Vocab

COMPACT = Vocab.compact(text_vocab_size=50, codebook_size=40)


def fixture_dir() -> Path | None:
    """The official parity fixture beside the repo (CI layout), else the shared workspace copy."""
    for root in (Path(__file__).resolve().parents[2], Path("/work")):
        path = root / "shared" / "fixtures" / "lumos1_official_tiny"
        if (path / "config.json").is_file():
            return path
    return None


def tiny_config(vocab: Vocab = COMPACT, **overrides) -> DecoderConfig:
    # a wide init makes every dependency of an output visible well above float noise
    base = dict(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab=vocab,
        initializer_range=0.3,
    )
    return DecoderConfig(**{**base, **overrides})


def tiny_decoder(seed: int = 0, vocab: Vocab = COMPACT, **overrides) -> LumosDecoder:
    torch.manual_seed(seed)  # test-only: module init draws from the global generator
    return LumosDecoder(tiny_config(vocab, **overrides)).eval()


def random_sequence(
    vocab: Vocab,
    g: torch.Generator,
    frames: int,
    height: int,
    width: int,
    text: int | None = 5,
    duration: int = 2,
    fps: int = 12,
) -> torch.Tensor:
    """ids [1, L] of a random video; text=None gives the unconditional sequence."""
    codes = torch.randint(0, vocab.codebook_size, (frames, height, width), generator=g)
    low, high = (10_000, 60_000) if vocab.layout == "official" else (0, vocab.text_size)  # plain text ids
    text_ids = None if text is None else torch.randint(low, high, (text,), generator=g).tolist()
    return serialize(vocab, text_ids, codes, duration, fps)[None]


def batch(vocab: Vocab, *seqs: torch.Tensor) -> torch.Tensor:
    """Right-padded [B, L] from [1, L_b] sequences of different lengths."""
    rows = [x[0] for x in seqs]
    return pad_batch(vocab, rows, rows)[0]
