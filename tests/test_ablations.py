"""benchmarks/ablations.py at toy scale: two trained variants plus the inference-only history variants."""

import json
import math

import pytest

from arvideo.train.builtin import BuildPlan, build
from benchmark_scripts import load_benchmark
from test_train_builtin import in_repo, tiny_plan  # noqa: F401  (fixture)


@pytest.fixture
def ablations():
    return load_benchmark("ablations")


def test_two_variants_and_history_rows(tmp_path, in_repo, ablations):  # noqa: F811
    plan: BuildPlan = tiny_plan(tmp_path)  # toy shards from the build chain, which stops there
    assert build(plan, quiet=True, stop_after="tokens") is None
    assert plan.tokens("val-images").is_dir() and not (tmp_path / "run").exists()

    args = ["--config", plan.config, "--out", str(tmp_path / "abl"), "--groups", "rope", "history",
            "--variants", "mm", "1d", "0.7", "0", "--seeds", "3", "--steps", "3", "--preset", "tiny",
            "--val-items", "4", "--cases", "3", "--sample-steps", "1"]  # fmt: skip
    report = ablations.main(args)
    rows = json.loads((tmp_path / "abl" / "results.json").read_text())
    assert [(r["group"], r["variant"]) for r in rows] == [
        ("rope", "mm"), ("history", "0.7"), ("history", "0"), ("rope", "1d")
    ]  # one run for the baseline (3 rows) and one for 1-D RoPE  # fmt: skip
    for row in rows:
        assert row["seed"] == 3 and row["steps"] == 3
        assert {"val_loss", "tube_loss", "val_loss_frame2", "shapesbench_t2v_motion"} <= row.keys()
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
    base, clean = rows[0], rows[2]
    assert base["val_loss"] == base["tube_loss"] == clean["val_loss"]  # tube is the baseline's own mask
    assert rows[3]["val_loss"] != base["val_loss"]
    assert "| rope | 1d | 3 | 3 |" in report and "| history | 0 | 3 | 3 |" in report

    again = ablations.main(args)  # finished runs are kept, not trained again
    assert again == report and json.loads((tmp_path / "abl" / "results.json").read_text()) == rows
