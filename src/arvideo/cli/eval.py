"""`arvideo eval ...`: score generated media with ShapesBench.

Example (CPU-sized, seconds):
    arvideo eval render-truth truth/ --subset          # ground truth, named by case id
    arvideo eval shapesbench truth/ --subset --report truth.json
    arvideo eval validate --subset                     # truth near 100%, broken media near chance
"""

from __future__ import annotations

import argparse
import logging
import time

from arvideo.eval import evaluate, format_table, load_suite, render_ground_truth, write_report
from arvideo.eval.validation import format_validation, validate
from arvideo.files import check_writable

logger = logging.getLogger(__name__)


def _suite_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default="v1", help="prompt suite version (default v1)")
    p.add_argument("--subset", action="store_true", help="only the CI subset (every 4th case of each task)")


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
    p.add_argument("--report", default=None, help="write the full JSON report (per case, per metric) here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report file")
    p.set_defaults(func=run_shapesbench)

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


def run_render_truth(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    out = render_ground_truth(suite, args.out_dir, args.subset, args.format, overwrite=args.overwrite)
    logger.info("wrote the ground truth of %d cases to %s", len(suite.select(args.subset)), out)
    return 0


def run_validate(args: argparse.Namespace) -> int:
    print(format_validation(validate(load_suite(args.suite), args.subset)))
    return 0
