"""Training speed of the Lumos trainer: tokens/s and MFU, fp32 vs bf16 autocast, with and without
activation checkpointing, all measured side by side in one process.

MFU is model FLOPs per second over the FLOP/s of a dense square matmul measured in the same run,
in the same precision (a CPU has no datasheet peak training could approach). A Linear layer
forward + backward, fp32 vs bf16 autocast, shows where bf16 pays. Activation memory is the bytes
autograd saves for backward in one forward pass (counted with saved-tensor hooks).

    .venv/bin/python benchmarks/train_speed.py                       # small preset, ~2 min on 1 core
    .venv/bin/python benchmarks/train_speed.py --preset tiny --steps 3
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from arvideo.train.config import RunConfig, from_dict
from arvideo.train.data import META_FILE, TokenItem, write_shard
from arvideo.train.lumos_task import LumosTask
from arvideo.train.metrics import measure_peak_flops
from arvideo.train.trainer import Trainer

CODEBOOK, TEXT_VOCAB = 1024, 256
GRID = (5, 8, 8)  # 17 frames of 64 x 64 pixels through a 4x8x8 tokenizer


def make_shards(folder: Path, n: int) -> Path:
    """Random items shaped like the shapes world (captions of ~12 tokens, 5 x 8 x 8 codes)."""
    rng = np.random.default_rng(0)
    items = [
        TokenItem(id=f"{i}", text=rng.integers(0, TEXT_VOCAB, 12, dtype=np.int32),
                  visual=rng.integers(0, CODEBOOK, GRID, dtype=np.int32), fps=8.0, size=(64, 64))
        for i in range(n)
    ]  # fmt: skip
    folder.mkdir(parents=True)
    write_shard(folder, 0, items)
    meta = {"tokenizer": "bench", "text_tokenizer": "bench", "codebook_size": CODEBOOK,
            "text_vocab_size": TEXT_VOCAB, "temporal_compression": 4, "spatial_compression": 8,
            "frames": 17}  # fmt: skip
    (folder / META_FILE).write_text(json.dumps(meta))
    return folder


def run_config(
    root: Path, shards: Path, args: argparse.Namespace, precision: str, ac: bool, peak: float
) -> RunConfig:
    return from_dict(RunConfig, {
        "kind": "lumos", "out_dir": str(root / f"{precision}-{ac}"), "steps": args.steps + 2,
        "model": args.preset, "precision": precision, "task": {"text_drop": 0.0},
        "data": {"shards": str(shards), "batch_size": args.batch, "micro_batch_size": args.batch},
        "parallel": {"activation_checkpointing": ac}, "checkpoint": {"every": 10_000}, "eval": {"every": 0},
        "log": {"peak_flops": peak, "tensorboard": False},
    })  # fmt: skip


def saved_activation_bytes(trainer: Trainer) -> int:
    """Bytes autograd keeps for backward during one forward of one batch (each storage once)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    items = [trainer.dataset[i] for i in range(trainer.config.data.micro_batch_size)]
    batch = trainer.task.collate(items, torch.Generator().manual_seed(0))
    params = {p.untyped_storage().data_ptr() for p in trainer.model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), trainer._autocast():
        trainer.task.loss(trainer.model, batch).loss_sum.backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    return sum(n for ptr, n in storages.items() if ptr not in params)


def linear_speed(autocast: bool, n: int = 1024, rows: int = 2048, reps: int = 5) -> float:
    """Seconds per forward + backward of Linear(n, 4n) on [rows, n] inputs."""
    layer = nn.Linear(n, 4 * n)
    x = torch.randn(rows, n, generator=torch.Generator().manual_seed(0), requires_grad=True)
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = layer(x)
        y.float().sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", help="Lumos model preset (tiny, small)")
    parser.add_argument(
        "--steps", type=int, default=5, help="timed optimizer steps per setting (after 2 warm-up)"
    )
    parser.add_argument("--batch", type=int, default=4, help="clips per step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--precisions", default="fp32,bf16",
        help="comma-separated training precisions to time (bf16 autocast is ~40x slower on AVX2-only CPUs)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    peaks = {p: measure_peak_flops(torch.device("cpu"), dt, seconds=1.0)
             for p, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))}  # fmt: skip
    fp32_linear, bf16_linear = linear_speed(False), linear_speed(True)
    print(f"matmul 1024^2: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s "
          f"(x{peaks['bf16'] / peaks['fp32']:.2f}); threads {args.threads}")  # fmt: skip
    print(f"Linear(1024, 4096) fwd+bwd on 2048 rows: fp32 {fp32_linear * 1e3:.1f} ms, "
          f"bf16 autocast {bf16_linear * 1e3:.1f} ms (x{fp32_linear / bf16_linear:.2f})\n")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards = make_shards(root / "shards", n=args.batch * (args.steps + 2))
        rows = []
        for precision in args.precisions.split(","):
            for ac in (False, True):
                cfg = run_config(root, shards, args, precision, ac, peaks[precision])
                trainer = Trainer(cfg, LumosTask(cfg))
                activations = saved_activation_bytes(trainer)
                stats = trainer.train()[2:]  # drop warm-up steps
                tokens = statistics.median(s.tokens_per_s for s in stats)
                mfu = statistics.median(s.mfu for s in stats)
                rows.append((precision, ac, tokens, mfu, activations))
        n_params = sum(p.numel() for p in trainer.model.parameters())
    print(f"Lumos {args.preset} ({n_params / 1e6:.1f}M parameters), {args.batch} clips of "
          f"{GRID[0]}x{GRID[1]}x{GRID[2]} codes per step")  # fmt: skip
    header = ("precision", "act. ckpt", "tokens/s", "vs fp32", "MFU", "act. MB", "vs no AC")
    print(" ".join(f"{h:>9}" for h in header))
    base = rows[0][2]
    for precision, ac, tokens, mfu, activations in rows:
        no_ac = next(r[4] for r in rows if r[0] == precision and not r[1])
        print(f"{precision:>9} {'on' if ac else 'off':>9} {tokens:9.0f} {tokens / base:9.2f} "
              f"{100 * mfu:8.1f}% {activations / 2**20:9.1f} {activations / no_ac:9.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
