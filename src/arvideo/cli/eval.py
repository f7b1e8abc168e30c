"""`arvideo eval ...`: score generated media with ShapesBench, or run it against a model.

Example (CPU-sized, seconds):
    arvideo eval render-truth truth/ --subset          # ground truth, named by case id
    arvideo eval shapesbench truth/ --subset --report truth.json
    arvideo eval validate --subset                     # truth near 100%, broken media near chance
    arvideo eval run --model builtin:shapes --subset --tasks t2i --out media/ --report run.json
"""

from __future__ import annotations

import argparse
import logging
import time

from arvideo.cli.values import SAMPLING_NUMBERS, add_sampling_args, optional_numbers
from arvideo.eval import (
    evaluate,
    evaluate_pipeline,
    format_table,
    load_suite,
    render_ground_truth,
    select_cases,
    write_report,
)
from arvideo.eval.validation import format_validation, validate
from arvideo.files import check_writable

logger = logging.getLogger(__name__)


def _suite_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default="v1", help="prompt suite version (default v1)")
    p.add_argument("--subset", action="store_true", help="only the CI subset (every 4th case of each task)")


def _report_args(p: argparse.ArgumentParser, overwrite_help: str) -> None:
    p.add_argument("--report", default=None, help="write the full JSON report (per case, per metric) here")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser("eval", help="score generated media (ShapesBench)")
    benches = ev.add_subparsers(dest="eval_command", metavar="BENCH", required=True)

    p = benches.add_parser(
        "shapesbench",
        help="score a folder of media named by case id against the prompt suite",
        description="Score MEDIA_DIR/<case id>.mp4|.webm|.gif|.png|.jpg; print a table and "
        "optionally write a JSON report.",
    )
    p.add_argument("media_dir", metavar="MEDIA_DIR", help="folder with one file per case, named by case id")
    _suite_args(p)
    _report_args(p, "replace an existing report file")
    p.set_defaults(func=run_shapesbench)

    p = benches.add_parser(
        "run",
        help="generate every case of the suite with a model, then score it like `shapesbench`",
        description="Generate each case with one seed (t2i: one frame; i2v: from the case's given first "
        "frame), print the `shapesbench` table and optionally write the JSON report and the media.",
    )
    p.add_argument("--model", default="builtin:shapes", help="builtin:NAME or a Lumos-1 model folder")
    _suite_args(p)
    p.add_argument("--tasks", default="t2i,t2v,i2v", help="comma-separated tasks to run (default all three)")
    p.add_argument("--steps", help="parallel decoding steps per frame (default: the model's)")
    p.add_argument("--cfg", help="guidance scale of images and videos (default: the model's)")
    add_sampling_args(p)
    p.add_argument("--seed", default="0", help="random seed of every case (default 0)")
    p.add_argument("--out", help="also write the media here as <case id>.png|.mp4 (a new folder)")
    _report_args(p, "replace an existing report file or media folder")
    p.set_defaults(func=run_model)

    p = benches.add_parser(
        "render-truth",
        help="write the suite's ground-truth media (and image-to-video first frames)",
        description="Write OUT_DIR/<case id>.png|.mp4, plus <case id>.first.png for image-to-video cases.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (must not exist, unless --overwrite)")
    _suite_args(p)
    p.add_argument("--format", default="mp4", choices=("mp4", "gif"), help="container for video cases")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run_render_truth)

    p = benches.add_parser(
        "validate",
        help="check the evaluator: ground truth near 100%%, noise/shuffled/wrong-prompt media near chance",
    )
    _suite_args(p)
    p.set_defaults(func=run_validate)


def run_shapesbench(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    if args.report:
        check_writable(args.report, args.overwrite)  # fail before scoring, not after
    start = time.perf_counter()
    report = evaluate(args.media_dir, suite, args.subset)
    print(format_table(report))
    if args.report:
        write_report(report, args.report, overwrite=args.overwrite)
        logger.info("report: %s", args.report)
    logger.info("scored %d cases in %.1f s", len(report["cases"]), time.perf_counter() - start)
    return 0


def run_model(args: argparse.Namespace) -> int:
    from arvideo.pipelines import load

    suite = load_suite(args.suite)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    select_cases(suite, args.subset, tasks)  # fail on a bad task before the model loads
    numbers = dict(steps=int, cfg=float, seed=int, **SAMPLING_NUMBERS)
    options = optional_numbers(args, numbers)
    for path in (args.report, args.out):
        if path:
            check_writable(path, args.overwrite)
    start = time.perf_counter()
    pipe = load(args.model)
    report = evaluate_pipeline(
        pipe,
        suite,
        subset=args.subset,
        tasks=tasks,
        decoding=args.decoding,
        out_dir=args.out,
        overwrite=args.overwrite,
        **options,
    )
    report = {"model": args.model, **report}
    print(format_table(report))
    if args.report:
        write_report(report, args.report, overwrite=args.overwrite)
        logger.info("report: %s", args.report)
    if args.out:
        logger.info("media: %s", args.out)
    logger.info("generated and scored %d cases in %.1f s", len(report["cases"]), time.perf_counter() - start)
    return 0


def run_render_truth(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    out = render_ground_truth(suite, args.out_dir, args.subset, args.format, overwrite=args.overwrite)
    logger.info("wrote the ground truth of %d cases to %s", len(suite.select(args.subset)), out)
    return 0


def run_validate(args: argparse.Namespace) -> int:
    print(format_validation(validate(load_suite(args.suite), args.subset)))
    return 0
