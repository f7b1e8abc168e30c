"""Run ShapesBench on a folder of generated media and report.

The folder holds one file per case, named by case id: `<id>.mp4` (or .webm/.gif/.png/.jpg).
`evaluate` reads each with `arvideo.io.read_video`, scores it with `score_case` and returns
a JSON-ready report: per case, per task and overall, every metric next to its chance level.
`score_suite` does the same for media made on the fly (a pipeline), without files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arvideo import __version__
from arvideo.errors import ArvideoError
from arvideo.eval import metrics
from arvideo.eval.suite import Case, Suite, load_suite
from arvideo.files import atomic_write
from arvideo.io import read_video
from arvideo.progress import progress

MEDIA_SUFFIXES = (".mp4", ".webm", ".gif", ".png", ".jpg")
_SHOWN = 5  # missing or ambiguous case files named in an error


def find_media(media_dir: str | os.PathLike, cases: list[Case], subset: bool = False) -> dict[str, Path]:
    """Case id -> its media file; one error naming what is missing or ambiguous."""
    media_dir = Path(media_dir)
    if not media_dir.is_dir():
        raise ArvideoError(
            f"media folder {media_dir} does not exist; pass the folder holding <case id>.mp4 files"
        )
    found, missing, ambiguous = {}, [], []
    for case in cases:
        files = [
            media_dir / f"{case.id}{s}" for s in MEDIA_SUFFIXES if (media_dir / f"{case.id}{s}").is_file()
        ]
        if not files:
            missing.append(case.id)
        elif len(files) > 1:
            ambiguous.append(case.id)
        else:
            found[case.id] = files[0]
    if missing:
        raise ArvideoError(
            f"{len(missing)} of {len(cases)} cases have no media in {media_dir} "
            f"(e.g. {', '.join(missing[:_SHOWN])}); name files <case id>{'|'.join(MEDIA_SUFFIXES)}"
            + ("" if subset else ", or pass --subset to score the CI subset only")
        )
    if ambiguous:
        raise ArvideoError(
            f"{len(ambiguous)} cases have several media files in {media_dir} "
            f"(e.g. {', '.join(ambiguous[:_SHOWN])}); keep one file per case"
        )
    return found


def evaluate(media_dir: str | os.PathLike, suite: Suite | str = "v1", subset: bool = False) -> dict[str, Any]:
    """Score every case's media file in `media_dir`; returns the report (see `metrics`)."""
    suite = load_suite(suite) if isinstance(suite, str) else suite
    files = find_media(media_dir, suite.select(subset), subset)
    report = score_suite(lambda case: read_video(files[case.id]).frames, suite, subset)
    report["media_dir"] = str(media_dir)
    for entry in report["cases"]:
        entry["file"] = files[entry["id"]].name
    return report


def score_suite(
    video_for: Callable[[Case], torch.Tensor | np.ndarray], suite: Suite | str = "v1", subset: bool = False
) -> dict[str, Any]:
    """Score media produced on the fly, no files: `video_for(case)` -> uint8 [T, H, W, 3].

    E.g. `score_suite(lambda case: pipe(case.prompt, seed=0).frames)` (image-to-video cases also
    give the model `first_frame(case)`); one video is held at a time.
    """
    suite = load_suite(suite) if isinstance(suite, str) else suite
    cases = suite.select(subset)
    entries = [metrics.score_case(case, video_for(case)) for case in progress(cases, desc="shapesbench")]
    return build_report(entries, cases, suite.name, subset)


def build_report(
    entries: list[dict[str, Any]], cases: list[Case], suite: str, subset: bool
) -> dict[str, Any]:
    """Assemble the report from the `score_case` entries of `cases`."""
    summary = metrics.aggregate(entries, metrics.chance_levels(cases))
    i2v = [e["first_frame"] for e in entries if "first_frame" in e]
    return {
        "benchmark": "shapesbench",
        "suite": suite,
        "subset": subset,
        "media_dir": None,
        "arvideo": __version__,
        **summary,
        "i2v_first_frame": {
            "mean_psnr": _mean([f["psnr"] for f in i2v]),
            "mean_iou": _mean([f["iou"] for f in i2v]),
        },
        "thresholds": {
            "still_fraction": metrics.STILL_FRACTION,
            "smooth_scale": metrics.SMOOTH_SCALE,
            "fidelity_iou": metrics.FIDELITY_IOU,
            "fidelity_background": metrics.FIDELITY_BACKGROUND,
        },
        "cases": entries,
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def write_report(report: dict[str, Any], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the report as strict JSON (no NaN or infinity), atomically."""
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    return Path(path)


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table: metrics down, tasks across, chance in brackets."""
    tasks = report["tasks"]
    names = list(dict.fromkeys(m for t in tasks.values() for m in t["metrics"]))
    header = ["metric"] + [f"{t} ({tasks[t]['cases']})" for t in tasks]
    rows = [header]
    for m in names:
        cells = [m]
        for t in tasks.values():
            v = t["metrics"].get(m)
            cells.append(f"{v['score']:6.1%} [{v['chance']:5.1%}]" if v else "")
        rows.append(cells)
    rows.append(["task score"] + [f"{t['score']:6.1%} [{t['chance']:5.1%}]" for t in tasks.values()])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    for name, task in tasks.items():
        groups = task.get("by_objects", {})
        if len(groups) < 2:  # every case asks for the same number of objects: the table says it all
            continue
        for n, group in groups.items():
            scores = " ".join(f"{m} {v:.1%}" for m, v in group.items() if m != "cases")
            lines.append(f"{name}, {n} object{'s' * (n != '1')} ({group['cases']} cases): {scores}")
    for name, task in tasks.items():
        for n, kinds in task.get("by_motion", {}).items():
            scores = ", ".join(f"{kind} {g['motion']:.1%} ({g['objects']})" for kind, g in kinds.items())
            lines.append(f"{name}, {n} object{'s' * (n != '1')}, motion by direction (objects): {scores}")
    for name, task in tasks.items():
        shapes = task.get("by_shape", {})
        if "persistence" in task["metrics"] and len(shapes) > 1:
            scores = ", ".join(f"{shape} {g['persistence']:.1%}" for shape, g in shapes.items())
            lines.append(f"{name}, persistence by shape: {scores}")
        if failures := task.get("persistence_failures"):
            reasons = ", ".join(f"{reason} {frames}" for reason, frames in failures.items())
            lines.append(f"{name}, object-frames failing persistence: {reasons}")
    overall = report["overall"]
    lines.append(
        f"overall {overall['score']:.1%} (chance {overall['chance']:.1%}); [chance level] per metric"
    )
    return "\n".join(lines)


def format_comparison(
    reports: dict[str, dict[str, Any]],
    task: str,
    metric_names: tuple[str, ...],
    extra: dict[str, list[str]] | None = None,
) -> str:
    """Several reports of one task side by side: a row per report (percent), then a chance row.

    `extra` adds columns after the metrics, one value per report in order (e.g. seconds per video).
    """
    extra = extra or {}
    header = ["source", f"{task} score", *metric_names, *extra]
    rows = [header]
    for i, (name, report) in enumerate(reports.items()):
        t = report["tasks"][task]
        cells = [f"{100 * t['metrics'][m]['score']:.1f}" for m in metric_names]
        rows.append([name, f"{100 * t['score']:.1f}", *cells, *(values[i] for values in extra.values())])
    chance = next(iter(reports.values()))["tasks"][task]
    cells = [f"{100 * chance['metrics'][m]['chance']:.1f}" for m in metric_names]
    rows.append(["chance", f"{100 * chance['chance']:.1f}", *cells, *("" for _ in extra)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )
