"""Quality floors of a model folder (`quality_floors.json`): regression checks CI runs on shipped models.

    {"why": "...", "margin": 0.1, "floors": {"t2v": {"colour": 0.9, "motion": 0.5, ...}, "t2i": {...}}}

`floors` maps a task (t2i, t2v, i2v) to metric names as a ShapesBench report's
`tasks.<task>.metrics` spells them (`METRICS`) and a floor in [0, 1]; tasks and metrics left out
are not checked. A metric passes when its score is >= floor - margin (margin: optional, default 0;
room for other CPUs' float rounding, since the same seed gives the same media on one machine).
Without the file, every task must still beat its chance level.

The floors belong to the weights beside them, so whoever writes new weights writes new floors
(`floors_from_report`, from the model's own CI-subset report): the built-in build does it on export.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from arvideo.eval.metrics import METRICS

FLOORS_FILE = "quality_floors.json"
# The metrics the built-in model's quality targets name (issue 6): what regresses silently.
TARGET_METRICS: dict[str, tuple[str, ...]] = {
    "t2v": ("colour", "shape", "motion", "persistence"),
    "t2i": ("colour", "position"),
    "i2v": ("fidelity",),
}


def floors_from_report(
    report: dict[str, Any],
    why: str,
    metrics: dict[str, tuple[str, ...]] = TARGET_METRICS,
    margin: float = 0.1,
    cap: float = 0.9,
) -> dict[str, Any]:
    """The floors file of a model from its own report: each of `metrics` (of the tasks the report
    has) rounded down to 0.1 and at most `cap` (a perfect subset score would leave no room for one
    unlucky case)."""
    tasks = report["tasks"]
    floors = {
        task: {m: min(cap, math.floor(tasks[task]["metrics"][m]["score"] * 10 + 1e-9) / 10) for m in names}
        for task, names in metrics.items()
        if task in tasks
    }
    measured = "; ".join(
        f"{task} " + ", ".join(f"{m} {100 * tasks[task]['metrics'][m]['score']:.1f}%" for m in names)
        for task, names in floors.items()
    )
    return {"why": f"{why} Measured: {measured}.", "margin": margin, "floors": floors}


def write_floors(folder: Path, floors: dict[str, Any]) -> Path:
    path = Path(folder) / FLOORS_FILE
    path.write_text(json.dumps(floors, indent=2) + "\n")
    return path


def read_floors(path: Path) -> tuple[dict[str, dict[str, float]], float] | None:
    """(floors per task and metric, margin) from a floors file, None without one."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    floors = data["floors"]
    for task, metrics in floors.items():
        unknown = sorted(set(metrics) - set(METRICS.get(task, ())))
        if task not in METRICS or unknown:
            raise ValueError(f"{path}: no metric {unknown} in task {task!r}")
    return floors, float(data.get("margin", 0.0))


def check_floors(report: dict[str, Any], path: Path) -> tuple[list[str], list[str]]:
    """(one line per checked number, the lines that fail) of a ShapesBench report against `path`."""
    tasks = report["tasks"]
    floors = read_floors(path)
    lines, failures = [], []
    if floors is None:
        lines.append(f"no {path.name}: every task must beat chance")
        for task, summary in tasks.items():
            lines.append(f"{task} score {summary['score']:.3f} (chance {summary['chance']:.3f})")
            if summary["score"] <= summary["chance"]:
                failures.append(lines[-1])
        return lines, failures
    by_task, margin = floors
    for task, metrics in by_task.items():
        for metric, floor in metrics.items():
            score = tasks[task]["metrics"][metric]["score"]
            lines.append(f"{task} {metric}: {score:.3f} (floor {floor:.3f}, margin {margin:.3f})")
            if score < floor - margin:
                failures.append(lines[-1])
    return lines, failures
