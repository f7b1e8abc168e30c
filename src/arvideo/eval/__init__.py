"""ShapesBench: scores generated media against the prompts of a fixed suite of the shapes world.

    from arvideo.eval import evaluate, evaluate_pipeline, load_suite, score_case, render_ground_truth
    report = evaluate("my_media/", suite="v1", subset=False)     # files named <case id>.mp4/.png
    entry = score_case(load_suite("v1").cases[0], frames_uint8)  # one case, in memory
    report = evaluate_pipeline(arvideo.load("builtin:shapes"), subset=True)  # generate, then score

`suite` holds the versioned prompt suites, `detector` the weight-free object detector,
`metrics` the per-case scores, aggregation and chance levels, `shapesbench` the runner and
report, `run` the generation of every case by a model. docs/shapesbench.md explains the
metrics and their validation.
"""

from arvideo.eval.metrics import chance_levels, score_case
from arvideo.eval.run import evaluate_pipeline, select_cases
from arvideo.eval.shapesbench import evaluate, format_table, score_suite, write_report
from arvideo.eval.suite import Case, Suite, first_frame, load_suite, render_ground_truth

__all__ = [
    "Case",
    "Suite",
    "chance_levels",
    "evaluate",
    "evaluate_pipeline",
    "first_frame",
    "format_table",
    "load_suite",
    "render_ground_truth",
    "score_case",
    "score_suite",
    "select_cases",
    "write_report",
]
