"""ARLON's claim at small scale, measured side by side in one run on one model folder.

Short clips (ShapesBench text-to-video cases, one 17-frame segment each):
  (a) the DiT alone at many Euler steps (30, OpenSora-1.2's default);
  (b) the DiT alone at few steps (5);
  (c) ARLON at few steps: AR codes -> fine VQ-VAE -> coarse latent F -> the injected DiT (5 steps);
  (d) a diagnostic, not a configuration of the paper: the AR codes alone, decoded by the fine
      VQ-VAE and the VAE with no DiT, which shows what the condition F of (c) carries.
ARLON's claim (reference §6) is that (c) comes close to (a) in quality at several times its speed.
"The DiT alone" is the same folder's DiT with no condition F: its backbone is the stage-4 model,
frozen while the injection branch trained, so the branch adds nothing when F is absent.

Long videos (the ShapesBench long-video suite: 8 cases of 4 segments, 65 frames, progressive
prompts): persistence across segment boundaries, prompt-switch accuracy and segment accuracy of
ARLON vs the DiT alone, with the same segment loop and the same few steps.

    .venv/bin/python benchmarks/arlon_vs_dit.py                          # builtin:arlon-shapes
    .venv/bin/python benchmarks/arlon_vs_dit.py --model FOLDER --cases 4 --long-cases 2 --report r.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from arvideo.eval.long import FIRST_FRAMES, NEW_FRAMES, format_long, load_long_suite, score_long_suite
from arvideo.eval.shapesbench import format_comparison, score_suite
from arvideo.eval.suite import Suite, load_suite
from arvideo.pipelines import load
from arvideo.pipelines.arlon import ArlonPipeline
from arvideo.pipelines.lumos import LumosPipeline, PipelineConfig

SHORT_METRICS = ("colour", "shape", "size", "background", "motion", "persistence", "smoothness")


def timed(make: Callable[[Any], torch.Tensor], seconds: list[float]) -> Callable[[Any], torch.Tensor]:
    """`make`, recording the wall time of every call into `seconds`."""

    def run(case: Any) -> torch.Tensor:
        start = time.perf_counter()
        frames = make(case)
        seconds.append(time.perf_counter() - start)
        return frames

    return run


def ar_alone(pipe: ArlonPipeline) -> LumosPipeline:
    """The folder's AR model over its tokenizer as a plain Lumos-1 pipeline: codes decoded with no DiT."""
    c = pipe.config
    config = PipelineConfig(
        prompt="caption", width=c.width, height=c.height, frames=c.segment_frames, fps=c.fps,
        steps=c.ar_steps, cfg=c.ar_cfg, history_ratio=c.history_ratio,
    )  # fmt: skip
    assert pipe.ar is not None
    return LumosPipeline(pipe.ar, pipe.tokenizer, pipe.text_tokenizer, config)


def short_clips(pipe: ArlonPipeline, suite: Suite, many_steps: int, few_steps: int,
                seed: int) -> dict[str, dict[str, Any]]:  # fmt: skip
    """ShapesBench t2v report and seconds per video of configurations (a)-(d)."""
    ar = ar_alone(pipe)
    configs: list[tuple[str, int | None, Callable[[Any], torch.Tensor]]] = [  # name, Euler steps, maker
        (f"(a) DiT alone, {many_steps} steps", many_steps,
         lambda case: pipe(case.prompt, segments=1, steps=many_steps, use_ar=False, seed=seed).frames),
        (f"(b) DiT alone, {few_steps} steps", few_steps,
         lambda case: pipe(case.prompt, segments=1, steps=few_steps, use_ar=False, seed=seed).frames),
        (f"(c) ARLON, {few_steps} steps", few_steps,
         lambda case: pipe(case.prompt, segments=1, steps=few_steps, use_ar=True, seed=seed).frames),
        ("(d) AR codes alone, no DiT", None, lambda case: ar(case.prompt, seed=seed).frames),
    ]  # fmt: skip
    results = {}
    for name, steps, make in configs:
        seconds: list[float] = []
        report = score_suite(timed(make, seconds), suite)
        results[name] = {"steps": steps, "seconds": sum(seconds) / len(seconds), "report": report}
    return results


def long_videos(pipe: ArlonPipeline, steps: int, n_cases: int | None, seed: int) -> dict[str, dict[str, Any]]:
    """Long-video report and seconds per video of ARLON and of the DiT alone."""
    cases = load_long_suite()[:n_cases]
    results = {}
    for name, use_ar in (("ARLON", True), ("DiT alone", False)):
        seconds: list[float] = []
        make = timed(lambda case, a=use_ar: pipe(list(case.prompts), segments=len(case.prompts), steps=steps,
                                                 use_ar=a, seed=seed).frames, seconds)  # fmt: skip
        report = score_long_suite(make, cases)
        results[name] = {"steps": steps, "seconds": sum(seconds) / len(seconds), "report": report}
    return results


def short_table(results: dict[str, dict[str, Any]]) -> str:
    base = next(iter(results.values()))["seconds"]
    extra = {
        "steps": ["-" if r["steps"] is None else str(r["steps"]) for r in results.values()],
        "s/video": [f"{r['seconds']:.2f}" for r in results.values()],
        "speed-up": [f"{base / r['seconds']:.2f}x" for r in results.values()],
    }
    return format_comparison({name: r["report"] for name, r in results.items()}, "t2v", SHORT_METRICS, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="builtin:arlon-shapes", help="ARLON folder or builtin:NAME")
    parser.add_argument("--cases", type=int, default=None, help="first N t2v cases (default: all 64)")
    parser.add_argument("--long-cases", type=int, default=None, help="first N long cases (default: all 8)")
    parser.add_argument("--many-steps", type=int, default=30, help="Euler steps of configuration (a)")
    parser.add_argument(
        "--few-steps", type=int, default=5, help="Euler steps of (b), (c) and the long videos"
    )
    parser.add_argument("--seed", type=int, default=0, help="generation seed of every video")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--report", default=None, help="also write every report as JSON to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pipe = load(args.model)
    if not isinstance(pipe, ArlonPipeline):
        raise SystemExit(f"{args.model} is not an ARLON model folder")
    c = pipe.config
    if (c.segment_frames, c.reference_frames) != (FIRST_FRAMES, 1):
        raise SystemExit("the long-video suite needs 17-frame segments with 1 reference latent frame")
    t2v = [case for case in load_suite("v1").cases if case.task == "t2v"][: args.cases]
    suite = Suite("v1-t2v", tuple(t2v), ())

    print(f"model {args.model}; {torch.get_num_threads()} threads; seed {args.seed}; "
          f"DiT cfg {c.cfg}, AR {c.ar_steps} steps per frame, cfg {c.ar_cfg}")  # fmt: skip
    short = short_clips(pipe, suite, args.many_steps, args.few_steps, args.seed)
    print(f"\nShort clips: ShapesBench t2v, {len(t2v)} cases of 17 frames (percent; speed-up vs (a))")
    print(short_table(short))

    long = long_videos(pipe, args.few_steps, args.long_cases, args.seed)
    n_long = long["ARLON"]["report"]["cases"]
    jump = long["ARLON"]["report"]["jump_threshold_px"]
    print(f"\nLong videos: {n_long} cases x 4 segments ({FIRST_FRAMES} + 3 x {NEW_FRAMES} frames), "
          f"{args.few_steps} steps; jump threshold {jump:.1f} px")  # fmt: skip
    print(format_long({name: r["report"] for name, r in long.items()}))
    print("seconds per long video: " + ", ".join(f"{name} {r['seconds']:.2f}" for name, r in long.items()))

    if args.report:
        Path(args.report).write_text(json.dumps({"short": short, "long": long}, indent=1) + "\n")


if __name__ == "__main__":
    main()
