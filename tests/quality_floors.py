"""Asserting a shipped model folder's quality floors (format: arvideo/eval/floors.py), shared by the
built-in tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arvideo.eval import format_table
from arvideo.eval.floors import check_floors


def assert_floors(report: dict[str, Any], path: Path, title: str, capsys: Any) -> None:
    """Print the report's table and every checked number (shown in CI logs whether the test passes or
    fails), then fail if a metric is below its floor."""
    lines, failures = check_floors(report, path)
    with capsys.disabled():
        print(f"\n{title}")
        print(format_table(report))
        print("\n".join(lines))
    assert not failures, "below the floor: " + "; ".join(failures)
