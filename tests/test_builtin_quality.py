"""The built-in Lumos model (`builtin:shapes`) still generates what its prompts ask for.

Runs ShapesBench's CI subset (`arvideo eval run --subset`: 36 cases) with the model's own
defaults (its arvideo.json) and seed 0, prints the table and every metric next to its floor (so
CI logs show the numbers), then asserts the floors of `quality_floors.json` in the model folder
(format: arvideo/eval/floors.py; the build's export writes it). Skipped when the model folder is
absent (a checkout in which the built-in has not been trained).
"""

from __future__ import annotations

import pytest

from arvideo.eval import evaluate_pipeline
from arvideo.pipelines import BUILTIN_DIR, BUILTIN_MODELS, load
from quality_floors import assert_floors

MODEL_DIR = BUILTIN_DIR / BUILTIN_MODELS["shapes"]

NOT_TRAINED = "built-in model not trained in this checkout: python -m arvideo.train.builtin"

pytestmark = pytest.mark.skipif(not MODEL_DIR.is_dir(), reason=NOT_TRAINED)


def test_builtin_model_meets_its_quality_floors(capsys):
    report = evaluate_pipeline(load("builtin:shapes"), "v1", subset=True)
    title = f"ShapesBench subset, {MODEL_DIR.name}, model defaults, seed 0"
    assert_floors(report, MODEL_DIR / "quality_floors.json", title, capsys)
