"""Quality floors of a shipped model folder (`quality_floors.json`), shared by the built-in tests.

    {"margin": 0.1, "floors": {"t2v": {"colour": 0.8, "motion": 0.3, ...}, "t2i": {...}}}

`floors` maps a task (t2i, t2v, i2v) to metric names as a ShapesBench report's
`tasks.<task>.metrics` spells them (`arvideo.eval.metrics.METRICS`) and a floor in [0, 1]; tasks
and metrics left out are not checked. A metric passes when its score is >= floor - margin
(margin: optional, default 0; room for other CPUs' float rounding, since the same seed gives the
same media on one machine). Without the file, every task must still beat its chance level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from arvideo.eval import format_table
from arvideo.eval.metrics import METRICS


def read_floors(path: Path) -> tuple[dict[str, dict[str, float]], float] | None:
    """(floors per task and metric, margin) from a floors file, None without one."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    floors = data["floors"]
    for task, metrics in floors.items():
        unknown = sorted(set(metrics) - set(METRICS.get(task, ())))
        assert task in METRICS and not unknown, f"{path}: no metric {unknown} in task {task!r}"
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


def assert_floors(report: dict[str, Any], path: Path, title: str, capsys: Any) -> None:
    """Print the report's table and every checked number (shown in CI logs whether the test passes or
    fails), then fail if a metric is below its floor."""
    lines, failures = check_floors(report, path)
    with capsys.disabled():
        print(f"\n{title}")
        print(format_table(report))
        print("\n".join(lines))
    assert not failures, "below the floor: " + "; ".join(failures)
