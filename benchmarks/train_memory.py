"""Peak memory and time of one AR-DF training forward+backward on a long sequence, two ways.

- ours:  the frame mask as per-chunk boolean SDPA masks built from [B, L] limits, and the loss on
         the masked visual rows only, projected on the visual head rows in chunks (`visual_loss`);
- naive: what the official training does (reference §3.2, §4.4): a dense fp32 additive mask
         [B, 1, L, L] and full-vocabulary fp32 logits [B, L, V], sliced to the visual columns.

Same model, same tube-masked sequence (official layout, 512x256 frames = 32x64 latents), both
with per-layer activation checkpointing as in the official training. Each variant runs in a fresh
subprocess and reports its peak RSS (resource.getrusage, with glibc's mmap threshold lowered
so that RSS follows live memory) and wall time; the parent prints both and the ratios.

CPU example (about 10 minutes on 2 cores, ~15 GB peak for the naive variant):
    .venv/bin/python benchmarks/train_memory.py
Quick check:
    .venv/bin/python benchmarks/train_memory.py --seq-len 2048 --preset small
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

import arvideo.lumos.decoder as decoder_module
from arvideo.lumos.ardf import ardf_mask, visual_loss
from arvideo.lumos.decoder import DecoderConfig, LumosDecoder
from arvideo.lumos.masks import FrameMask
from arvideo.lumos.sequence import serialize, training_labels
from arvideo.lumos.vocab import Vocab

PRESETS = {  # transformer parameters without embedding/head; the official vocabulary adds 2 x 129,536 x d
    "100m": dict(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
    ),
    "small": dict(
        hidden_size=256,
        intermediate_size=704,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
    ),
}
LATENT_H, LATENT_W = 32, 64  # 512x256-pixel frames: 4 latent frames make 8,443 tokens


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def make_batch(vocab: Vocab, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A tube-masked official-layout sample of at least seq_len tokens."""
    frame_tokens = LATENT_H * (LATENT_W + 1) + 4
    text = torch.randint(10_000, 60_000, (100,), generator=generator).tolist()
    n_frames = max(1, -(-(seq_len - len(text) - 7) // frame_tokens))
    codes = torch.randint(0, vocab.codebook_size, (n_frames, LATENT_H, LATENT_W), generator=generator)
    ids = serialize(vocab, text, codes, duration=2, fps=8)[None]
    masked = ardf_mask(ids, training_labels(vocab, ids), vocab, generator)
    return masked.input_ids, masked.labels


def dense_float_attend(q, k, v, mask: FrameMask, chunk: int) -> torch.Tensor:
    """The official attention input: one additive fp32 mask [B, 1, L, L] (0 or int64-min)."""
    if not hasattr(mask, "dense_float"):  # built once per forward, shared by all layers
        mask.dense_float = torch.zeros(mask.dense().shape).masked_fill_(
            ~mask.dense(), torch.iinfo(torch.int64).min
        )
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask.dense_float, enable_gqa=k.shape[1] != q.shape[1]
    )


def naive_loss(model: LumosDecoder, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = model.logits(hidden)  # [B, L, V] fp32: the official forward materialises these
    off, k = model.vocab.visual_offset, model.vocab.codebook_size
    rows = labels >= off
    return F.cross_entropy(logits[..., off : off + k][rows], labels[rows] - off)


class Checkpointed(nn.Module):
    """A decoder block recomputed in backward (the official training wraps every layer so)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, *args):
        return checkpoint(self.block, *args, use_reentrant=False)


def run_variant(variant: str, preset: str, seq_len: int) -> dict:
    torch.manual_seed(0)  # benchmark script: model init draws from the global generator
    vocab = Vocab.official()
    model = LumosDecoder(DecoderConfig(vocab=vocab, **PRESETS[preset]))
    model.layers = nn.ModuleList(Checkpointed(block) for block in model.layers)
    ids, labels = make_batch(vocab, seq_len, torch.Generator().manual_seed(0))
    if variant == "naive":
        decoder_module.attend = dense_float_attend  # this subprocess only
    before = peak_rss_mb()
    start = time.perf_counter()
    hidden = model(ids)
    loss = (
        visual_loss(model, hidden, ids, labels).loss
        if variant == "ours"
        else naive_loss(model, hidden, labels)
    )
    loss.backward()
    seconds = time.perf_counter() - start
    return dict(
        variant=variant,
        seq_len=ids.shape[1],
        loss=loss.item(),
        seconds=seconds,
        peak_mb=peak_rss_mb(),
        before_mb=before,
        masked=int((labels >= vocab.visual_offset).sum()),
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=8192, help="minimum sequence length in tokens")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="100m", help="model size")
    parser.add_argument("--variant", choices=["ours", "naive"], help="run one variant here (used internally)")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.preset, args.seq_len)))
        return
    # Large allocations through mmap, so that freed tensors leave the RSS at once and the peak RSS
    # tracks live memory instead of glibc heap fragmentation (same setting for both variants).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    results = {}
    for variant in ("ours", "naive"):
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--preset",
            args.preset,
            "--seq-len",
            str(args.seq_len),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
        results[variant] = r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{variant:>5}: L={r['seq_len']} masked visual tokens={r['masked']} params={r['params_m']:.0f}M "
            f"loss={r['loss']:.4f} time={r['seconds']:.1f}s peak RSS={r['peak_mb']:.0f} MB "
            f"(+{r['peak_mb'] - r['before_mb']:.0f} MB over model+inputs)",
            flush=True,
        )
    ours, naive = results["ours"], results["naive"]
    growth = {k: r["peak_mb"] - r["before_mb"] for k, r in results.items()}
    print(
        f"peak RSS ratio ours/naive = {ours['peak_mb'] / naive['peak_mb']:.3f}; "
        f"peak growth ratio = {growth['ours'] / growth['naive']:.3f}; "
        f"time ratio = {ours['seconds'] / naive['seconds']:.2f}; "
        f"|loss diff| = {abs(ours['loss'] - naive['loss']):.2e}"
    )


if __name__ == "__main__":
    main()
