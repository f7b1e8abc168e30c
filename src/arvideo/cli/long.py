"""`arvideo long`: a long video with ARLON, segment by segment, with progressive prompts.

Examples (CPU-sized, with the built-in ARLON model):
    arvideo long "a small red circle moves to the right" "a small red circle moves to the left" \\
        --segments 4 --out long.mp4                           # prompt 1 for segments 1-2, prompt 2 for 3-4
    arvideo long "a large blue star stays still" --segments 3 --steps 10 --seed 7 --out star.gif
    arvideo long "..." --segments 4 --no-ar --out baseline.mp4      # the DiT alone, same segment loop

With P prompts and N segments, segment k uses prompt floor(k * P / N). Every argument is checked
before the model runs; a bad one is reported on one line (exit 2) and nothing is written. The
output is written atomically and never replaces a file without --overwrite.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from arvideo.cli.values import optional_numbers
from arvideo.errors import ArvideoError

logger = logging.getLogger(__name__)

LONG_SUFFIXES = (".mp4", ".gif")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "long",
        help="generate a long video with ARLON, segment by segment, with progressive prompts",
        description="The AR model writes coarse codes for the whole video, then the DiT makes one segment "
        "at a time, each conditioned on the last frames of the one before. Unset options take the model's "
        "defaults (its arvideo.json).",
    )
    p.add_argument("prompts", nargs="+", metavar="PROMPT",
                   help="one or more prompts; they switch progressively over the segments")  # fmt: skip
    p.add_argument("--segments", help="number of segments (default: one per prompt)")
    p.add_argument("--out", default="long.mp4", help="output file, .mp4 or .gif (default long.mp4)")
    p.add_argument("--steps", help="Euler steps of the DiT per segment")
    p.add_argument("--cfg", help="DiT guidance scale on the text (1 = no guidance, faster)")
    p.add_argument("--ar-steps", help="parallel decoding steps per code frame of the AR model")
    p.add_argument("--ar-cfg", help="AR guidance scale on the text")
    p.add_argument("--seed", default="0", help="random seed: the same seed gives the same video (default 0)")
    p.add_argument("--model", default="builtin:arlon-shapes", help="builtin:NAME or an ARLON model folder")
    p.add_argument("--no-ar", action="store_true",
                   help="skip the AR stage: the DiT alone with the same segment loop (baseline)")  # fmt: skip
    p.add_argument("--decoding", default="parallel",
                   help="AR decoding: parallel (Lumos-1, per frame) or next_token (ARLON's)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run_long)


def run_long(args: argparse.Namespace) -> int:
    from arvideo.files import check_writable
    from arvideo.pipelines import load
    from arvideo.pipelines.arlon import ArlonPipeline

    out = Path(args.out)
    if out.suffix.lower() not in LONG_SUFFIXES:
        raise ArvideoError(f"cannot write {out.name!r}: use a {' or '.join(LONG_SUFFIXES)} file name")
    check_writable(out, args.overwrite)
    numbers = dict(segments=int, steps=int, cfg=float, ar_steps=int, ar_cfg=float, seed=int)
    options = optional_numbers(args, numbers)
    options.update(use_ar=not args.no_ar, decoding=args.decoding)
    pipe = load(args.model)
    if not isinstance(pipe, ArlonPipeline):
        raise ArvideoError(f"{args.model} is not an ARLON model; use e.g. --model builtin:arlon-shapes")
    request = pipe.check_inputs(args.prompts, **options)

    with LongBar() as bar:
        video = pipe(args.prompts, callback=bar, **options)
    video.save(out, overwrite=args.overwrite)
    logger.info("wrote %s (%d segments, %d frames of %dx%d)", out, request.layout.segments,
                *video.frames.shape[:3])  # fmt: skip
    return 0


class LongBar:
    """One progress bar for the AR codes, then one advancing with every finished segment."""

    def __init__(self):
        self.bar, self.stage = None, None

    def __call__(self, event) -> None:
        from tqdm.auto import tqdm

        from arvideo.progress import progress_enabled

        if event.stage != self.stage:
            self.close()
            self.stage = event.stage
            desc = "AR codes (frames)" if event.stage == "ar" else "segments"
            self.bar = tqdm(total=event.total, desc=desc, leave=False, disable=not progress_enabled(),
                            dynamic_ncols=True)  # fmt: skip
        self.bar.update(event.done - self.bar.n)
        if event.stage == "dit":
            logger.info("segment %d/%d done", event.done, event.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> LongBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
