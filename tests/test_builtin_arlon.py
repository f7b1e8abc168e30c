"""The built-in ARLON (`builtin:arlon-shapes`) still makes what its prompts ask for, short and long.

1. ShapesBench text-to-video, the 16 t2v cases of the CI subset, ARLON with the folder's defaults
   (AR codes + the injected DiT, few Euler steps) and seed 0: every metric is printed next to its
   floor and the floors of `quality_floors.json` in the folder are asserted (format:
   arvideo/eval/floors.py).
2. `arvideo long` with the built-in: two prompts over 4 segments make one 65-frame 64x64 video.

Skipped when the folder is absent (a checkout in which `scripts/build_builtin_arlon.sh` has not run).
"""

from __future__ import annotations

import pytest

from arvideo.arlon.build import subset_report
from arvideo.cli import main as cli
from arvideo.io import read_video
from arvideo.pipelines import BUILTIN_DIR, BUILTIN_MODELS, load
from quality_floors import assert_floors

MODEL_DIR = BUILTIN_DIR / BUILTIN_MODELS["arlon-shapes"]

NOT_BUILT = "no built-in ARLON in this checkout: scripts/build_builtin_arlon.sh"

pytestmark = pytest.mark.skipif(not MODEL_DIR.is_dir(), reason=NOT_BUILT)


def test_builtin_arlon_meets_its_quality_floors(capsys):
    report = subset_report(load("builtin:arlon-shapes"))
    title = f"ShapesBench t2v subset, {MODEL_DIR.name}, ARLON with the folder's defaults, seed 0"
    assert_floors(report, MODEL_DIR / "quality_floors.json", title, capsys)


def test_long_video_with_the_builtin_arlon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prompts = ["a small red circle moves to the right", "a small red circle moves to the left"]
    assert cli(["-q", "long", *prompts, "--segments", "4", "--out", "long.mp4"]) == 0
    assert read_video(tmp_path / "long.mp4").frames.shape == (65, 64, 64, 3)
