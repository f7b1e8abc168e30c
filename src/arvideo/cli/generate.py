"""`arvideo generate`: text-to-video, text-to-image, image-to-video and continuation (Lumos-1).

Examples (CPU-sized, with the built-in model):
    arvideo generate "a small red circle moves to the right"                  # out.mp4
    arvideo generate "a large blue star in the top left" --frames 1           # out.png
    arvideo generate "the square moves up" --image first.png --out i2v.mp4 --gif
    arvideo generate "PROMPT" --model LUMOS_FOLDER --tokenizer COSMOS_FOLDER \\
        --text-tokenizer text_tokenizer.json --size 448x256 --seconds 2        # a released checkpoint

Every argument is checked before the model runs; a bad one is reported on one line (exit 2) and
nothing is written. Outputs are written atomically and never replace a file without --overwrite.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from arvideo.cli.values import SAMPLING_NUMBERS, add_sampling_args, optional_numbers, parse_size
from arvideo.errors import ArvideoError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate a video or an image from a prompt (and optional first frames)",
        description="Generate with a Lumos-1 model: per-frame parallel decoding with a KV cache and CFG. "
        "Unset options take the model's defaults (its arvideo.json).",
    )
    p.add_argument("prompt", help='what the video shows, e.g. "a small red circle moves to the right"')
    p.add_argument(
        "--image", help="first frame (png/jpg) for image-to-video, or a video (1+4k frames) to extend"
    )
    p.add_argument("--frames", help="output length in frames: 1+4k for a 4x temporal tokenizer (1: an image)")
    p.add_argument("--seconds", help="output length in seconds, rounded up to whole latent frames")
    p.add_argument("--fps", help="frames per second of the output (and of the video header)")
    p.add_argument("--size", help="frame size WIDTHxHEIGHT, e.g. 64x64")
    p.add_argument("--steps", help="parallel decoding steps per frame")
    p.add_argument("--cfg", help="classifier-free guidance scale (1 = no guidance, faster)")
    p.add_argument("--seed", default="0", help="random seed: the same seed gives the same video (default 0)")
    add_sampling_args(p)
    p.add_argument(
        "--official-quirks", action="store_true",
        help="reproduce the released code's compounding remask temperature (see docs/generation.md)",
    )  # fmt: skip
    p.add_argument("--model", default="builtin:shapes", help="builtin:NAME or a Lumos-1 model folder")
    p.add_argument("--tokenizer", help="video tokenizer (default: the model's; a Cosmos folder for Lumos-1)")
    p.add_argument("--text-tokenizer", help="text tokenizer (default: the model's; text_tokenizer.json)")
    p.add_argument("--out", help="output file .mp4/.gif/.png (default out.mp4, or out.png for one frame)")
    p.add_argument("--gif", action="store_true", help="also write a GIF next to the output")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from arvideo.files import check_writable
    from arvideo.io import WRITE_SUFFIXES
    from arvideo.pipelines import load

    numbers = dict(frames=int, seconds=float, fps=int, steps=int, cfg=float, seed=int, **SAMPLING_NUMBERS)
    options = optional_numbers(args, numbers)
    options.update(size=parse_size(args.size) if args.size else None, official_quirks=args.official_quirks,
                   decoding=args.decoding)  # fmt: skip
    pipe = load(args.model, tokenizer=args.tokenizer, text_tokenizer=args.text_tokenizer)
    request = pipe.check_inputs(args.prompt, args.image, **options)

    out = Path(args.out or ("out.png" if request.frames == 1 else "out.mp4"))
    outputs = list(dict.fromkeys([out, out.with_suffix(".gif")] if args.gif else [out]))
    for path in outputs:
        if path.suffix.lower() not in WRITE_SUFFIXES:
            raise ArvideoError(f"cannot write {path.name!r}: use a {', '.join(WRITE_SUFFIXES)} file name")
        check_writable(path, args.overwrite)

    with StepBar() as bar:
        video = pipe(args.prompt, args.image, callback=bar, **options)
    for path in outputs:
        video.save(path, overwrite=args.overwrite)
        logger.info("wrote %s (%d frames of %dx%d)", path, *video.frames.shape[:3])
    return 0


class StepBar:
    """One progress bar per generated frame, advancing with its decoding steps."""

    def __init__(self):
        self.bar, self.frame = None, None

    def __call__(self, step) -> None:
        from tqdm.auto import tqdm

        from arvideo.progress import progress_enabled

        if step.frame != self.frame:
            self.close()
            self.frame = step.frame
            self.bar = tqdm(
                total=step.n_steps, desc=f"frame {step.frame + 1}/{step.n_frames}", leave=False,
                disable=not progress_enabled(), dynamic_ncols=True,
            )  # fmt: skip
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> StepBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
