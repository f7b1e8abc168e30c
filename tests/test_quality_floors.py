"""Quality floors from a model's own ShapesBench report (arvideo/eval/floors.py)."""

import json

import pytest

from arvideo.eval.floors import check_floors, floors_from_report, read_floors, write_floors


def report_of(scores: dict[str, dict[str, float]]) -> dict:
    """A report holding only what the floors read: tasks.<task>.metrics.<metric>.score."""
    return {"tasks": {t: {"metrics": {m: {"score": s} for m, s in ms.items()}} for t, ms in scores.items()}}


def test_floors_round_down_to_a_tenth_and_stop_at_the_cap(tmp_path):
    scores = {
        "t2v": {"colour": 1.0, "shape": 0.9, "motion": 0.55, "persistence": 0.868, "smoothness": 0.1},
        "t2i": {"colour": 0.3, "position": 0.7},
    }
    floors = floors_from_report(report_of(scores), why="test.")
    # Only the target metrics of the tasks the report has; 1.0 and 0.9 both give 0.9; 0.3 and 0.7
    # (3.0000000000000004 and 7.000000000000001 times ten in floats) stay 0.3 and 0.7.
    assert floors["floors"] == {
        "t2v": {"colour": 0.9, "shape": 0.9, "motion": 0.5, "persistence": 0.8},
        "t2i": {"colour": 0.3, "position": 0.7},
    }
    assert floors["margin"] == 0.1
    assert floors["why"] == (
        "test. Measured: t2v colour 100.0%, shape 90.0%, motion 55.0%, persistence 86.8%; "
        "t2i colour 30.0%, position 70.0%."
    )
    path = write_floors(tmp_path, floors)
    assert json.loads(path.read_text()) == floors
    assert read_floors(path) == (floors["floors"], 0.1)
    assert check_floors(report_of(scores), path)[1] == []  # the model passes its own floors
    scores["t2v"]["motion"] = 0.39  # below 0.5 - 0.1
    assert check_floors(report_of(scores), path)[1] == ["t2v motion: 0.390 (floor 0.500, margin 0.100)"]


def test_a_floors_file_naming_an_unknown_metric_is_refused(tmp_path):
    path = tmp_path / "quality_floors.json"
    path.write_text(json.dumps({"floors": {"t2i": {"motion": 0.5}}}))
    with pytest.raises(ValueError, match=r"no metric \['motion'\] in task 't2i'"):
        read_floors(path)
