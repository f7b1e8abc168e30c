"""ShapesBench checks itself: ground truth must score near 100%, broken media near chance.

Each "source" answers every case of a suite with some media:

- `truth`: the case's own render; `truth-mp4`: the same after an H.264 round trip;
  `truth-blur`: blurred (Gaussian sigma BLUR_SIGMA px) with pixel noise (sigma NOISE_SIGMA) —
  roughly what a tokenizer's reconstruction looks like.
- `noise`: uniform random pixels.
- `shuffled`: the render with its frames in random order (motion and smoothness must fall;
  the attributes must not).
- `wrong-prompt`: the render of another case of the same task (every prompt-bound metric must
  fall to chance; persistence and smoothness, which ignore the prompt, must not).

`arvideo eval validate` prints the table; tests/test_shapesbench.py asserts the bands.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arvideo.data import shapes
from arvideo.eval.shapesbench import score_suite
from arvideo.eval.suite import Case, Suite, load_suite
from arvideo.io import read_video, write_video

BLUR_SIGMA = 0.8  # px at 64x64
NOISE_SIGMA = 10.0  # grey levels
SOURCES = ("truth", "truth-mp4", "truth-blur", "noise", "shuffled", "wrong-prompt")


def blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of uint8 [T, H, W, 3] (edges replicated), as float [T, H, W, 3]."""
    r = max(1, round(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    x = frames.permute(0, 3, 1, 2).float()  # [T, 3, H, W]
    x = torch.nn.functional.pad(x, (r, r, r, r), mode="replicate")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    x = torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return x.permute(0, 2, 3, 1)  # [T, H, W, 3]


def degrade(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur plus pixel noise, back to uint8."""
    x = blur(frames, BLUR_SIGMA)
    x = x + NOISE_SIGMA * torch.randn(x.shape, generator=generator)
    return x.round().clamp(0, 255).to(torch.uint8)


def _derangement(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random permutation moving every index (n >= 2)."""
    while True:
        p = rng.permutation(n)
        if (p != np.arange(n)).all():
            return p


def render(case: Case) -> torch.Tensor:
    """The case's ground truth, uint8 [T, H, W, 3]."""
    return shapes.render(case.spec)[0]


def media_source(name: str, cases: list[Case], seed: int = 0, workdir: Path | None = None) -> Callable:
    """`video_for(case)` for source `name` (see module docstring); `workdir` holds mp4 round trips."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    if name == "truth":
        return render
    if name == "truth-mp4":
        assert workdir is not None, "truth-mp4 needs a folder for the round trip"

        def round_trip(case: Case) -> torch.Tensor:
            path = write_video(workdir / f"{case.id}.mp4", render(case), overwrite=True)
            return read_video(path).frames

        return round_trip
    if name == "truth-blur":
        return lambda case: degrade(render(case), generator)
    if name == "noise":
        return lambda case: torch.from_numpy(
            rng.integers(0, 256, size=(case.n_frames, case.size, case.size, 3), dtype=np.uint8)
        )
    if name == "shuffled":
        return lambda case: (
            render(case)[_derangement(rng, case.n_frames)] if case.n_frames > 1 else render(case)
        )
    if name == "wrong-prompt":
        other: dict[str, Case] = {}
        for task in dict.fromkeys(c.task for c in cases):  # in suite order: same seed, same pairs
            mine = [c for c in cases if c.task == task]
            for c, j in zip(mine, _derangement(rng, len(mine)), strict=True):
                other[c.id] = mine[j]
        return lambda case: render(other[case.id])
    raise ValueError(f"unknown source {name!r}; sources are {', '.join(SOURCES)}")


def validate(
    suite: Suite | str = "v1", subset: bool = False, sources: tuple[str, ...] = SOURCES, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Score every source on the suite -> {source: report}."""
    suite = load_suite(suite) if isinstance(suite, str) else suite
    cases = suite.select(subset)
    with tempfile.TemporaryDirectory(prefix="shapesbench-") as tmp:
        return {s: score_suite(media_source(s, cases, seed, Path(tmp)), suite, subset) for s in sources}


def format_validation(reports: dict[str, dict[str, Any]]) -> str:
    """One row per source, one column per (task, metric), chance in the last row."""
    first = next(iter(reports.values()))
    columns = [(t, m) for t, task in first["tasks"].items() for m in task["metrics"]]
    head = ["source"] + [f"{t}:{m[:5]}" for t, m in columns] + ["overall"]
    rows = [head]
    for source, rep in reports.items():
        values = [rep["tasks"][t]["metrics"][m]["score"] for t, m in columns] + [rep["overall"]["score"]]
        rows.append([source] + [f"{100 * v:.0f}" for v in values])
    chance = [first["tasks"][t]["metrics"][m]["chance"] for t, m in columns] + [first["overall"]["chance"]]
    rows.append(["chance"] + [f"{100 * v:.0f}" for v in chance])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
