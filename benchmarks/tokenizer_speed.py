"""Encode/decode speed of a video tokenizer, next to an fp32 matmul of the same FLOPs.

For each frame size, times `encode` and `decode` of a 17-frame video and one fp32 matmul whose
FLOPs equal the tokenizer's conv FLOPs for that call (counted from the model), all in the same
run. The ratio `time / matmul time` says how far the tokenizer is from running at matmul speed
(1.0 = as fast as a dense matmul of equal work); the machine is shared and noisy, so compare the
columns of one run, not numbers across runs. For a trainable tokenizer it then times one training
step (forward, loss, backward, as `arvideo train` runs it) in fp32 and under bf16 autocast, side by
side: bf16 pays on CPUs with AMX or AVX512-BF16 and is far slower without them.

    python benchmarks/tokenizer_speed.py                     # built-in tokenizer, 64x64 and 256x256
    python benchmarks/tokenizer_speed.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

from arvideo.tokenizers import load_tokenizer
from arvideo.tokenizers.losses import reconstruction_loss
from arvideo.tokenizers.train import VideoTrainConfig
from arvideo.tokenizers.video import CausalVideoTokenizer


def timed(fn, repeats: int) -> float:
    """Median wall time of `fn()` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_seconds(flops: float, repeats: int) -> float:
    """Time of one fp32 square matmul with `flops` floating-point operations (2 n^3)."""
    n = max(16, round((flops / 2) ** (1 / 3)))
    a, b = torch.randn(n, n), torch.randn(n, n)
    return timed(lambda: a @ b, repeats) * flops / (2 * n**3)  # rescale the rounding of n


def train_step_seconds(tok: CausalVideoTokenizer, video: torch.Tensor, bf16: bool, repeats: int) -> float:
    """Median time of one training step on `video` ([-1, 1], [B, 3, T, H, W]), fp32 or bf16 autocast,
    with the loss weights of the built-in recipe (VideoTrainConfig's defaults)."""
    cfg = VideoTrainConfig()
    weights = dict(l1=cfg.l1_weight, l2=cfg.l2_weight, edge=cfg.edge_weight, foreground=cfg.foreground_weight)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            recon = tok(video)[0]
        reconstruction_loss(recon[:, :, : video.shape[2]], video, **weights)["loss"].backward()
        tok.zero_grad(set_to_none=True)

    return timed(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", default="builtin:shapes", help="builtin:NAME or a tokenizer folder")
    parser.add_argument("--sizes", default="64,256", help="comma-separated square frame sizes")
    parser.add_argument("--frames", type=int, default=17, help="frames per video")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (median)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.tokenizer)
    print(
        f"tokenizer {args.tokenizer}: {tok.temporal_compression}x{tok.spatial_compression}x"
        f"{tok.spatial_compression}, {args.frames} frames, {args.threads} threads, fp32"
    )
    print(f"{'size':>9} {'op':>6} {'GFLOP':>7} {'frames/s':>9} {'ms':>8} {'matmul ms':>10} {'ratio':>6}")
    for size in (int(s) for s in args.sizes.split(",")):
        batch = max(1, (64 * 64 * 4) // (size * size))  # a few videos at 64x64, one at 256x256
        video = torch.randint(0, 256, (batch, 3, args.frames, size, size), dtype=torch.uint8)
        ids = tok.encode(video)
        macs = tok.conv_macs(args.frames, size, size)
        calls = {"encode": (tok.encode, video), "decode": (tok.decode, ids)}
        for op, (method, arg) in calls.items():
            fn = functools.partial(method, arg)
            flops = 2.0 * macs[op] * batch
            seconds = timed(fn, args.repeats)
            reference = matmul_seconds(flops, args.repeats)
            print(
                f"{size:>4}x{size:<4} {op:>6} {flops / 1e9:7.2f} {batch * args.frames / seconds:9.1f} "
                f"{seconds * 1e3:8.1f} {reference * 1e3:10.1f} {seconds / reference:6.2f}"
            )
    if isinstance(tok, CausalVideoTokenizer):
        cfg = VideoTrainConfig()  # the training batch of the built-in recipe
        video = torch.rand(cfg.batch_size, 3, cfg.window, cfg.size, cfg.size) * 2 - 1
        tok.train()
        fp32, bf16 = (train_step_seconds(tok, video, on, args.repeats) for on in (False, True))
        print(
            f"train step, {cfg.batch_size} clips of {cfg.window} frames at {cfg.size}x{cfg.size}: fp32 "
            f"{cfg.batch_size / fp32:.1f} clips/s, bf16 autocast {cfg.batch_size / bf16:.1f} clips/s, "
            f"bf16 speed / fp32 speed {fp32 / bf16:.2f}"
        )


if __name__ == "__main__":
    main()
