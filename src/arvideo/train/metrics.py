"""Training metrics: CSV (always) and TensorBoard (when installed) on rank 0, and peak FLOP/s for MFU."""

from __future__ import annotations

import csv
import functools
import logging
import time
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


class MetricsLog:
    """Appends one row per logged step to `<name>.csv`; columns are fixed by the first row written.

    On resume, rows past the resumed step are dropped first: those steps are about to be run
    again, and the file should read as one run.
    """

    def __init__(self, out_dir: Path, name: str, resume_step: int | None, tensorboard: bool) -> None:
        self.path = out_dir / f"{name}.csv"
        self.fields: list[str] | None = None
        if self.path.exists() and resume_step is not None:
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
            if rows:
                self.fields = list(rows[0])
                kept = [row for row in rows if int(row["step"]) <= resume_step]
                with open(self.path, "w", newline="") as fh:
                    writer = csv.DictWriter(fh, self.fields)
                    writer.writeheader()
                    writer.writerows(kept)
        elif self.path.exists():
            self.path.unlink()
        self.tb = _summary_writer(out_dir / "tb") if tensorboard else None

    def write(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **values}
        if self.fields is None:
            self.fields = list(row)
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, self.fields).writeheader()
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fields, restval="").writerow({k: row.get(k, "") for k in self.fields})
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _summary_writer(folder: Path):  # -> SummaryWriter | None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        _tensorboard_missing()
        return None
    return SummaryWriter(str(folder))


@functools.cache
def _tensorboard_missing() -> None:  # said once per process
    logger.info("tensorboard is not installed; metrics go to CSV only (pip install tensorboard)")


def read_log(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics CSV as floats (for tests and reports)."""
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def measure_peak_flops(
    device: torch.device, dtype: torch.dtype, seconds: float = 0.5, windows: int = 5
) -> float:
    """FLOP/s of a square matmul in `dtype` on `device`: the denominator of MFU on this machine.

    On a CPU there is no datasheet peak that training could approach, so MFU is reported
    against what a large dense matmul achieves here. `seconds` are split into `windows` timings
    and the best is kept: a moment of contention (another process starting) only lowers one
    window, and a low peak would inflate MFU (a single 0.5 s timing measured 31-69 GFLOP/s on the
    same two cores). A slow dtype (bf16 without AMX) stops after the window that used up `seconds`.
    """
    n = 4096 if device.type == "cuda" else 1024
    generator = torch.Generator(device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=generator).to(dtype)  # [n, n]
    b = torch.randn(n, n, device=device, generator=generator).to(dtype)  # [n, n]
    for _ in range(2):  # warm up kernels and caches
        a @ b
    best, total = 0.0, 0.0
    for _ in range(windows):
        iters, start = 0, time.perf_counter()
        while True:
            a @ b
            iters += 1
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / windows:
                break
        best, total = max(best, 2 * n**3 * iters / elapsed), total + elapsed
        if total >= seconds:
            break
    return best


BF16_MIN_SPEEDUP = 1.2  # bf16 autocast also costs casts; below this gain fp32 is as fast


def bf16_pays(fp32_flops: float, bf16_flops: float) -> bool:
    """Whether a measured bf16 matmul beats fp32 by BF16_MIN_SPEEDUP: measured, not guessed.

    CPUs with AMX or AVX512-BF16 run bf16 matmuls ~2x faster than fp32; CPUs with only AVX2
    (e.g. many AMD EPYC and laptop chips) emulate them and run bf16 autocast ~40x slower.
    """
    return bf16_flops >= BF16_MIN_SPEEDUP * fp32_flops
