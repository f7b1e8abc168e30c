"""Decoding speed of the Lumos-1 sampler, all measured side by side in one process on one random model.

(a) per-frame parallel decoding vs raster next-token decoding (same model, same KV cache, same CFG);
(b) KV-cached decoding vs recomputing the whole sequence at every step, and the time per frame as
    the video grows (with the cache it should stay flat: the slope is printed);
(c) achieved FLOP/s of the parallel-decoding forward passes vs a matmul of the shape of the
    model's largest GEMM ([rows of one forward, d] x [d, ffn]), repeated right after every forward
    until it has done as many FLOPs, so that both see the same machine load; measured on several
    videos, the one with the median ratio is printed (one video moves by several points).

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


def best_total(model, n_frames, grid, config, repeat) -> tuple[float, int, int]:
    """Best time of `repeat` videos, and the forwards and token rows (batch x length) of one video."""
    count = [0, 0]

    def hook(_module, args) -> None:
        count[0] += 1
        count[1] += args[0].numel()

    handle = model.register_forward_pre_hook(hook)
    best = min(sum(frame_times(model, n_frames, grid, config)) for _ in range(repeat))
    handle.remove()
    return best, count[0] // repeat, count[1] // repeat


def slope(ys: list[float]) -> float:
    """Least-squares slope of ys against their index."""
    xs = range(len(ys))
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


class ForwardMeter:
    """Times every decoder forward and counts its FLOPs (2 per multiply-add), and right after each
    one times a matmul [rows of that forward, d] x [d, ffn]: both see the same machine load."""

    def __init__(self, model: LumosDecoder):
        c = self.config = model.config
        self.per_token = 2 * (
            2 * c.hidden_size * c.num_attention_heads * c.head_dim  # q, o
            + 2 * c.hidden_size * c.num_key_value_heads * c.head_dim  # k, v
            + 3 * c.hidden_size * c.intermediate_size  # SwiGLU
        )
        self.weight = torch.randn(c.hidden_size, c.intermediate_size)
        self.seconds = self.flops = self.attention_flops = 0.0
        self.matmul_seconds = self.matmul_flops = 0.0
        self.calls, self.rows = 0, set()
        self.handles = [model.register_forward_pre_hook(self.start), model.register_forward_hook(self.stop)]

    def start(self, _module, args) -> None:
        ids, cache = args[0], args[3] if len(args) > 3 else None
        batch, q_len = ids.shape
        k_len = q_len + (cache.length if cache is not None else 0)
        c = self.config
        attention = 2 * 2 * c.num_attention_heads * c.head_dim * q_len * k_len  # scores and values
        self.last = c.num_hidden_layers * batch * (self.per_token * q_len + attention)
        self.flops += self.last
        self.attention_flops += c.num_hidden_layers * batch * attention
        self.rows.add(batch * q_len)
        self.calls += 1
        self.x = torch.randn(batch * q_len, c.hidden_size)
        self.t0 = time.perf_counter()

    def stop(self, *_args) -> None:
        self.seconds += time.perf_counter() - self.t0
        # as many reference matmuls as the forward has FLOPs, so both last about as long and
        # suffer the same preemptions on a busy machine
        flops = 2 * self.x.shape[0] * self.weight.numel()
        n = max(1, round(self.last / flops))
        t0 = time.perf_counter()
        for _ in range(n):
            self.x @ self.weight
        self.matmul_seconds += time.perf_counter() - t0
        self.matmul_flops += n * flops

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    @property
    def ratio(self) -> float:
        """FLOP/s of the forwards over the FLOP/s of the reference matmul."""
        return (self.flops / self.seconds) / (self.matmul_flops / self.matmul_seconds)


def metered_video(
    model: LumosDecoder, args: argparse.Namespace, config: SamplerConfig
) -> tuple[ForwardMeter, float]:
    """The forward meter of one decoded video, and its decoding time without the reference matmuls."""
    meter = ForwardMeter(model)
    total = sum(frame_times(model, args.frames, args.grid, config)) - meter.matmul_seconds
    meter.remove()
    return meter, total


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
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing in (a), the best is kept")
    parser.add_argument(
        "--flop-videos", type=int, default=5, help="videos measured in (c), the median ratio is printed"
    )
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
    side = 8 * args.grid
    print(f"video: {args.frames} latent frames of {args.grid}x{args.grid} "
          f"({1 + 4 * (args.frames - 1)} frames of {side}x{side}), cfg {args.cfg}")  # fmt: skip
    parallel = SamplerConfig(steps=args.steps, cfg=args.cfg)
    frame_times(model, 2, args.grid, parallel)  # warm-up

    # (a) parallel vs next-token decoding
    n_codes = args.grid * args.grid
    runs = {
        f"parallel, {args.steps} steps/frame": parallel,
        "parallel, 50 steps/frame": SamplerConfig(steps=50, cfg=args.cfg),
        f"next-token, {n_codes} fwd/frame": SamplerConfig(cfg=args.cfg, decoding="next_token"),
    }
    print(f"\n(a) parallel vs next-token decoding, whole video (best of {args.repeat} runs)")
    print(f"  {'':28s} {'seconds':>8s} {'frames/s':>9s} {'forwards':>9s} {'token rows':>11s}")
    times = {}
    for name, config in runs.items():
        t, calls, rows = best_total(model, args.frames, args.grid, config, args.repeat)
        times[name] = t
        print(f"  {name:28s} {t:8.2f} {args.frames / t:9.2f} {calls:9d} {rows:11d}")
    t_par, t_par50, t_ntp = times.values()
    print(f"  next-token / parallel: {t_ntp / t_par:.2f}x with {args.steps} steps, "
          f"{t_ntp / t_par50:.2f}x with 50 steps")  # fmt: skip

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

    # (c) FLOP/s of the parallel forwards vs the matmul timed after each of them, median video
    runs = sorted(
        (metered_video(model, args, parallel) for _ in range(args.flop_videos)), key=lambda r: r[0].ratio
    )
    meter, total = runs[len(runs) // 2]
    achieved = meter.flops / meter.seconds
    reference = meter.matmul_flops / meter.matmul_seconds
    print(f"\n(c) FLOP/s of the parallel-decoding forward passes (the median of {len(runs)} videos by ratio)")
    share = 100 * meter.attention_flops / meter.flops
    print(f"  forwards: {meter.calls}, {meter.seconds:.2f} s of {total:.2f} s decoding, "
          f"{meter.flops / 1e9:.1f} GFLOP ({share:.0f}% attention); rows {sorted(meter.rows)}")  # fmt: skip
    print(f"  achieved {achieved / 1e9:6.1f} GFLOP/s")
    shape = f"[rows, {c.hidden_size}] x [{c.hidden_size}, {c.intermediate_size}]"
    print(f"  matmul {shape}, as many FLOPs after each forward: {reference / 1e9:6.1f} GFLOP/s")
    low, high = (100 * run[0].ratio for run in (runs[0], runs[-1]))
    print(f"  ratio {100 * meter.ratio:.0f}% ({low:.0f}%-{high:.0f}% over the videos; target >= 50%)")
    shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in op_shares(model, args, parallel).items())
    print(f"  operator time of one decoded video (torch profiler): {shares}")


def op_shares(model: LumosDecoder, args: argparse.Namespace, config: SamplerConfig) -> dict[str, float]:
    """Share of operator time by kind in one profiled video."""
    from torch.profiler import profile

    with profile() as prof:
        frame_times(model, args.frames, args.grid, config)
    kinds = {"matmuls": ("aten::mm", "aten::addmm", "aten::bmm"), "attention": ("aten::_scaled_dot_product",)}
    totals = dict.fromkeys([*kinds, "other ops"], 0.0)
    for event in prof.key_averages():
        kind = next((k for k, names in kinds.items() if event.key.startswith(names)), "other ops")
        totals[kind] += event.self_cpu_time_total
    whole = sum(totals.values())
    return {k: v / whole for k, v in totals.items()}


if __name__ == "__main__":
    main()
