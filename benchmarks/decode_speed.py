"""Decoding speed of the Lumos-1 sampler, all measured side by side in one process on one random model.

(a) per-frame parallel decoding vs raster next-token decoding (same model, same KV cache, same CFG);
(b) KV-cached decoding vs recomputing the whole sequence at every step, and the time per frame as
    the video grows (with the cache it should stay flat: the slope is printed);
(c) achieved FLOP/s of the parallel-decoding forward passes vs a matmul of the shape of the
    model's largest GEMM ([rows of one forward, d] x [d, ffn]) timed in the same run.

The model is the `small` training preset (the CPU-sized shapes model) with the compact vocabulary
of the built-in tokenizers (512 text ids, 2,560 codes), generating 64x64 videos of 17 frames
(5 latent frames of 8x8). Weights are random: speed does not depend on them.

    .venv/bin/python benchmarks/decode_speed.py                  # ~3 min on one busy core
    .venv/bin/python benchmarks/decode_speed.py --preset tiny --long 6
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from arvideo.lumos.decoder import DecoderConfig, LumosDecoder
from arvideo.lumos.sampler import SamplerConfig, stream
from arvideo.lumos.vocab import Vocab
from arvideo.train.lumos_task import PRESETS

TEXT_VOCAB, CODEBOOK = 512, 2560  # built-in caption BPE, FSQ levels (8, 8, 8, 5)
PROMPT = list(range(1, 13))  # a ~12-token caption, like the shapes world's
HEADER = (2, 8)  # duration, fps of a 17-frame clip at 8 fps


def build_model(preset: str) -> LumosDecoder:
    torch.manual_seed(0)  # benchmark-only: module init draws from the global generator
    config = DecoderConfig(**PRESETS[preset], vocab=Vocab.compact(TEXT_VOCAB, CODEBOOK))
    return LumosDecoder(config).eval()


def frame_times(model: LumosDecoder, n_frames: int, grid: int, config: SamplerConfig) -> list[float]:
    """Seconds from the start (or the previous frame) to each generated frame's codes."""
    frames = stream(model, PROMPT, (n_frames, grid, grid), *HEADER, config=config,
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    times, last = [], time.perf_counter()
    for _ in frames:
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return times


def best_total(model, n_frames, grid, config, repeat) -> float:
    return min(sum(frame_times(model, n_frames, grid, config)) for _ in range(repeat))


def slope(ys: list[float]) -> float:
    """Least-squares slope of ys against their index."""
    xs = range(len(ys))
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


class ForwardMeter:
    """Times every decoder forward and counts its FLOPs (matmuls: 2 per multiply-add)."""

    def __init__(self, model: LumosDecoder):
        c = model.config
        self.config = c
        self.per_token = 2 * (
            2 * c.hidden_size * c.num_attention_heads * c.head_dim  # q, o
            + 2 * c.hidden_size * c.num_key_value_heads * c.head_dim  # k, v
            + 3 * c.hidden_size * c.intermediate_size  # SwiGLU
        )
        self.seconds = self.flops = self.attention_flops = 0.0
        self.calls, self.rows = 0, set()
        self.handles = [
            model.register_forward_pre_hook(self.start),
            model.register_forward_hook(self.stop),
        ]

    def start(self, _module, args) -> None:
        ids, cache = args[0], args[3] if len(args) > 3 else None
        batch, q_len = ids.shape
        k_len = q_len + (cache.length if cache is not None else 0)
        c = self.config
        attention = 2 * 2 * c.num_attention_heads * c.head_dim * q_len * k_len  # scores and values
        self.flops += c.num_hidden_layers * batch * (self.per_token * q_len + attention)
        self.attention_flops += c.num_hidden_layers * batch * attention
        self.rows.add(batch * q_len)
        self.calls += 1
        self.t0 = time.perf_counter()

    def stop(self, *_args) -> None:
        self.seconds += time.perf_counter() - self.t0

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def matmul_flops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """FLOP/s of a [m, k] x [k, n] fp32 matmul, best of repeated timings."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(10):
        a @ b
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(20):
            a @ b
        best = min(best, (time.perf_counter() - t) / 20)
    return 2 * m * k * n / best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", default="small", choices=sorted(PRESETS), help="model size (training presets)"
    )
    parser.add_argument("--frames", type=int, default=5, help="latent frames of the video for (a) and (c)")
    parser.add_argument("--grid", type=int, default=8, help="latent frame side (8 = 64 pixels)")
    parser.add_argument("--steps", type=int, default=16, help="parallel decoding steps per frame")
    parser.add_argument("--cfg", type=float, default=4.0, help="guidance scale (1 runs one branch)")
    parser.add_argument("--long", type=int, default=14, help="latent frames for the growth curve (b)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement in (a), best kept")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = build_model(args.preset)
    c = model.config
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: preset {args.preset}, d={c.hidden_size}, ffn={c.intermediate_size}, "
          f"{c.num_hidden_layers} layers, {c.num_attention_heads} heads / {c.num_key_value_heads} kv, "
          f"{n_params / 1e6:.1f}M params, vocab {c.vocab.size}; threads {args.threads}")  # fmt: skip
    print(f"video: {args.frames} latent frames of {args.grid}x{args.grid} "
          f"({1 + 4 * (args.frames - 1)} frames of {8 * args.grid}x{8 * args.grid}), cfg {args.cfg}")  # fmt: skip
    parallel = SamplerConfig(steps=args.steps, cfg=args.cfg)
    frame_times(model, 2, args.grid, parallel)  # warm-up

    # (a) parallel vs next-token decoding, and (c) the forward passes of the parallel runs
    meter = ForwardMeter(model)
    totals = [sum(frame_times(model, args.frames, args.grid, parallel)) for _ in range(args.repeat)]
    meter.remove()
    t_par = min(totals)
    t_par50 = best_total(model, args.frames, args.grid, SamplerConfig(steps=50, cfg=args.cfg), 1)
    t_ntp = best_total(model, args.frames, args.grid, SamplerConfig(cfg=args.cfg, decoding="next_token"), 1)
    n_codes = args.grid * args.grid
    print("\n(a) parallel vs next-token decoding, whole video")
    print(f"  parallel, {args.steps} steps/frame   {t_par:8.2f} s   {args.frames / t_par:6.2f} frames/s")
    print(f"  parallel, 50 steps/frame   {t_par50:8.2f} s   {args.frames / t_par50:6.2f} frames/s")
    print(f"  next-token, {n_codes} fwd/frame  {t_ntp:8.2f} s   {args.frames / t_ntp:6.2f} frames/s")
    print(
        f"  speed-up of parallel ({args.steps} steps): {t_ntp / t_par:.2f}x; with 50 steps: {t_ntp / t_par50:.2f}x"
    )

    # (b) KV cache vs recomputation, as the video grows
    cached = frame_times(model, args.long, args.grid, parallel)
    recomputed = frame_times(
        model, args.long, args.grid, SamplerConfig(steps=args.steps, cfg=args.cfg, kv_cache=False)
    )
    print(f"\n(b) KV cache vs recomputing the sequence every step, {args.long} latent frames; ms per frame")
    print("  frame     " + " ".join(f"{f:6d}" for f in range(args.long)))
    print("  cached    " + " ".join(f"{1e3 * t:6.0f}" for t in cached))
    print("  recompute " + " ".join(f"{1e3 * t:6.0f}" for t in recomputed))
    for name, ts in (("cached", cached), ("recompute", recomputed)):
        s, mean = slope(ts[1:]), statistics.fmean(ts[1:])  # frame 0 also fills the prompt
        print(f"  {name:9s} slope {1e3 * s:7.2f} ms/frame per frame ({100 * s / mean:5.1f}% of its mean "
              f"{1e3 * mean:.0f} ms)")  # fmt: skip
    print(f"  whole video: recompute / cached = {sum(recomputed) / sum(cached):.2f}x; "
          f"last frame: {recomputed[-1] / cached[-1]:.2f}x")  # fmt: skip

    # (c) FLOP/s of the parallel forwards vs a matmul of the largest GEMM's shape
    rows = max(meter.rows)
    achieved = meter.flops / meter.seconds
    reference = matmul_flops(rows, c.hidden_size, c.intermediate_size)
    print("\n(c) FLOP/s of the parallel-decoding forward passes")
    print(f"  forwards: {meter.calls}, {meter.seconds:.2f} s, {meter.flops / 1e9:.1f} GFLOP "
          f"({100 * meter.attention_flops / meter.flops:.0f}% attention)")  # fmt: skip
    print(f"  achieved {achieved / 1e9:6.1f} GFLOP/s")
    print(
        f"  matmul [{rows}, {c.hidden_size}] x [{c.hidden_size}, {c.intermediate_size}]: {reference / 1e9:6.1f} GFLOP/s"
    )
    print(f"  ratio {100 * achieved / reference:.0f}% (target >= 50%)")
    print(f"  share of decoding time spent in forwards: {100 * meter.seconds / sum(totals):.0f}%")


if __name__ == "__main__":
    main()
