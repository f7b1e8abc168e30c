"""The built-in Lumos model (`builtin:shapes`) still generates what its prompts ask for.

Runs ShapesBench's CI subset (`arvideo eval run --subset`: 36 cases) with the model's own
defaults (its arvideo.json) and seed 0, prints the table and every metric next to its floor (so
CI logs show the numbers), then asserts the floors of `quality_floors.json` in the model folder:

    {"margin": 0.05, "floors": {"t2v": {"colour": 0.9, "motion": 0.6, ...},
                                "t2i": {"position": 0.7, ...}, "i2v": {"fidelity": 0.9, ...}}}

`floors` maps a task (t2i, t2v, i2v) to metric names as the report's `tasks.<task>.metrics`
spells them (`arvideo.eval.metrics.METRICS`: colour, shape, size, position, background,
motion, persistence, smoothness, fidelity) and a floor in [0, 1]; tasks and metrics left out are
not checked. A metric passes when its score is >= floor - margin (margin: optional, default 0;
room for other CPUs' float rounding, since the same seed gives the same media on one machine).
Without the file, every task must still beat its chance level. Skipped when the model folder
is absent (a checkout in which the built-in has not been trained).
"""

from __future__ import annotations

import json

import pytest

from arvideo.eval import evaluate_pipeline, format_table
from arvideo.eval.metrics import METRICS
from arvideo.pipelines import BUILTIN_DIR, BUILTIN_MODELS, load

MODEL_DIR = BUILTIN_DIR / BUILTIN_MODELS["shapes"]
FLOORS_FILE = MODEL_DIR / "quality_floors.json"

NOT_TRAINED = "built-in model not trained in this checkout: python -m arvideo.train.builtin"

pytestmark = pytest.mark.skipif(not MODEL_DIR.is_dir(), reason=NOT_TRAINED)


def read_floors() -> tuple[dict[str, dict[str, float]], float] | None:
    """(floors per task and metric, margin) from the floors file, None without one."""
    if not FLOORS_FILE.is_file():
        return None
    data = json.loads(FLOORS_FILE.read_text())
    floors = data["floors"]
    for task, metrics in floors.items():
        unknown = sorted(set(metrics) - set(METRICS.get(task, ())))
        assert task in METRICS and not unknown, f"{FLOORS_FILE}: no metric {unknown} in task {task!r}"
    return floors, float(data.get("margin", 0.0))


def test_builtin_model_meets_its_quality_floors(capsys):
    floors = read_floors()
    report = evaluate_pipeline(load("builtin:shapes"), "v1", subset=True)
    tasks = report["tasks"]
    failures, lines = [], []
    if floors is None:
        lines.append(f"no {FLOORS_FILE.name}: every task must beat chance")
        for task, summary in tasks.items():
            lines.append(f"{task} score {summary['score']:.3f} (chance {summary['chance']:.3f})")
            if summary["score"] <= summary["chance"]:
                failures.append(lines[-1])
    else:
        by_task, margin = floors
        for task, metrics in by_task.items():
            for metric, floor in metrics.items():
                score = tasks[task]["metrics"][metric]["score"]
                lines.append(f"{task} {metric}: {score:.3f} (floor {floor:.3f}, margin {margin:.3f})")
                if score < floor - margin:
                    failures.append(lines[-1])
    with capsys.disabled():  # shown in CI logs whether the test passes or fails
        print(f"\nShapesBench subset, {MODEL_DIR.name}, model defaults, seed 0")
        print(format_table(report))
        print("\n".join(lines))
    assert not failures, "below the floor: " + "; ".join(failures)
