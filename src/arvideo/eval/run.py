"""Run ShapesBench against a model: generate every case with a pipeline, score it, report.

    pipe = arvideo.load("builtin:shapes")
    report = evaluate_pipeline(pipe, "v1", subset=True, tasks=["t2v"], out_dir="media/")

Every case is generated with the same seed: text-to-image as one frame, text-to-video and
image-to-video with the case's frame count, image-to-video from `first_frame(case)`. The report
is `build_report`'s, as `arvideo eval shapesbench` makes it, plus the generation settings.
With `out_dir`, each case's media is written as `<case id>.png` (images) or `.mp4` (videos) into
a folder that appears only when complete, and the scores are those of the files as written
(mp4 is near-lossless), so `evaluate(out_dir)` gives the same report.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arvideo.errors import ArvideoError
from arvideo.eval.metrics import score_case
from arvideo.eval.shapesbench import build_report
from arvideo.eval.suite import TASKS, Case, Suite, first_frame, load_suite
from arvideo.files import atomic_write
from arvideo.io import Video, read_video
from arvideo.progress import progress

if TYPE_CHECKING:
    import torch

    from arvideo.pipelines.lumos import LumosPipeline


def select_cases(suite: Suite, subset: bool = False, tasks: Sequence[str] | str | None = None) -> list[Case]:
    """The suite's cases (or its CI subset), only those of `tasks` (e.g. ["t2v", "i2v"]) if given."""
    tasks = TASKS if tasks is None else (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not tasks:
        raise ArvideoError(f"no ShapesBench task selected; tasks: {', '.join(TASKS)}")
    for task in tasks:
        if task not in TASKS:
            raise ArvideoError(f"unknown ShapesBench task {task!r}; tasks: {', '.join(TASKS)}")
    cases = [c for c in suite.select(subset) if c.task in tasks]
    if not cases:
        raise ArvideoError(f"suite {suite.name!r} has no {', '.join(tasks)} cases to run")
    return cases


def evaluate_pipeline(
    pipe: LumosPipeline,
    suite: Suite | str = "v1",
    *,
    subset: bool = False,
    tasks: Sequence[str] | str | None = None,
    seed: int = 0,
    steps: int | None = None,
    cfg: float | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    history_ratio: float | None = None,
    decoding: str = "parallel",
    out_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Generate and score every selected case; unset sampling options take the model's defaults.

    Every case's inputs are checked before the first one is generated, so a bad setting fails
    at once rather than after an hour; `out_dir` is refused if it exists, unless `overwrite`.
    """
    from arvideo.pipelines.lumos import LumosPipeline

    if not isinstance(pipe, LumosPipeline):
        raise ArvideoError(
            f"ShapesBench runs Lumos-1 models (text/image-to-video), got a {type(pipe).__name__}; "
            "pass builtin:shapes or a Lumos model folder"
        )
    suite = load_suite(suite) if isinstance(suite, str) else suite
    cases = select_cases(suite, subset, tasks)
    options = dict(
        seed=seed,
        steps=steps,
        cfg=cfg,
        temperature=temperature,
        top_k=top_k,
        history_ratio=history_ratio,
        decoding=decoding,
    )
    for case in cases:
        pipe.check_inputs(case.prompt, _given(case), **_shape(case), **options)

    writer = contextlib.nullcontext() if out_dir is None else atomic_write(out_dir, overwrite, is_dir=True)
    with writer as folder:  # None: nothing written
        entries = []
        for case in progress(cases, desc="shapesbench run"):
            video = pipe(case.prompt, _given(case), **_shape(case), **options)
            entries.append(_score(case, video, folder))
    report = build_report(entries, cases, suite.name, subset)
    report["media_dir"] = None if out_dir is None else str(out_dir)
    report["generation"] = options
    report["cases"] = report.pop("cases")  # the long list stays last
    return report


def _given(case: Case) -> torch.Tensor | None:
    return first_frame(case) if case.task == "i2v" else None


def _shape(case: Case) -> dict[str, Any]:
    return {"frames": case.n_frames, "size": (case.size, case.size)}  # t2i cases have one frame


def _score(case: Case, video: Video, folder: Path | None) -> dict[str, Any]:
    """The case's report entry; with a folder, of its media file as written and read back."""
    if folder is None:
        return score_case(case, video.frames)
    path = video.save(folder / f"{case.id}{'.png' if case.task == 't2i' else '.mp4'}")
    entry = score_case(case, read_video(path).frames)
    entry["file"] = path.name
    return entry
