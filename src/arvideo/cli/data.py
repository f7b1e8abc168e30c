"""`arvideo data ...`: make datasets in the captioned folder format.

Example (CPU-sized, a few seconds):
    arvideo data shapes --out shapes_demo -n 16 --preview shapes_demo/preview.gif
    arvideo data shapes --out shapes_t2i -n 200 --images --seed 1
    arvideo data shapes --out my_prompts --prompts prompts.txt   # one caption per line
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from arvideo.data import shapes
from arvideo.data.folder import FolderItem, write_folder
from arvideo.errors import ArvideoError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="make datasets (the built-in shapes world)")
    areas = data.add_subparsers(dest="data_command", metavar="DATASET", required=True)
    p = areas.add_parser(
        "shapes",
        help="write captioned clips (or images) of the shapes world",
        description="Write DIR/clips/*.mp4 (or *.png), captions.csv and meta.jsonl (spec, per-frame truth).",
    )
    p.add_argument(
        "--out", required=True, help="output folder (must not exist or be empty, unless --overwrite)"
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("-n", type=int, help="number of random clips (or images) to write")
    what.add_argument(
        "--prompts",
        default=None,
        help="text file, one caption per line (# comments allowed): write one clip showing each",
    )
    p.add_argument("--images", action="store_true", help="one-frame images with positions, saved as png")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; clip i depends only on (seed, i)")
    p.add_argument("--size", type=int, default=shapes.DEFAULT_SIZE, help="frame width and height in pixels")
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        help=f"frames per clip (default {shapes.DEFAULT_FRAMES}; 1 for --images)",
    )
    p.add_argument(
        "--max-objects", type=int, default=2, choices=(1, 2), help="objects per clip: 1 or up to 2"
    )
    p.add_argument(
        "--min-objects", type=int, default=1, choices=(1, 2), help="at least this many objects per clip"
    )
    p.add_argument("--preview", default=None, help="also write a GIF grid of the first 16 clips to this path")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder and preview")
    p.set_defaults(func=run_shapes)


def prompt_specs(
    path: str, seed: int, kind: str, size: int, n_frames: int
) -> list[tuple[str, shapes.ClipSpec]]:
    """Every prompt of a prompt file with the spec that shows it; errors name the line."""
    file = Path(path)
    if not file.is_file():
        raise ArvideoError(f"prompt file {file} does not exist")
    specs = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        rng = np.random.default_rng([seed, len(specs)])
        try:
            specs.append((text, shapes.spec_from_prompt(text, rng, kind, size, n_frames)))
        except ArvideoError as err:
            raise ArvideoError(f"{file}:{number}: {err}") from None
    if not specs:
        raise ArvideoError(f"prompt file {file} has no prompts (one caption per line)")
    return specs


def run_shapes(args: argparse.Namespace) -> int:
    kind = "image" if args.images else "video"
    if args.n is not None and args.n < 1:
        raise ArvideoError(f"-n must be >= 1, got {args.n}")
    n_frames = shapes.check_settings(kind, args.size, args.frames, args.max_objects, args.min_objects)
    if kind == "video" and args.size % 2:
        raise ArvideoError(
            f"--size must be even for mp4 (H.264 yuv420p), got {args.size}; try {args.size + 1}"
        )
    start = time.perf_counter()
    if args.prompts:
        specs = prompt_specs(args.prompts, args.seed, kind, args.size, n_frames)
        clips = (shapes.Clip(spec, text, *shapes.render(spec)) for text, spec in specs)
        total = len(specs)
    else:
        clips = shapes.make_clips(
            args.n, args.seed, kind, args.size, n_frames, args.max_objects, args.min_objects
        )
        total = args.n
    items = (FolderItem(c.video, c.caption, c.meta()) for c in clips)
    out = write_folder(args.out, items, total=total, preview=args.preview, overwrite=args.overwrite)
    logger.info("wrote %d %ss to %s in %.1f s", total, kind, out, time.perf_counter() - start)
    if args.preview:
        logger.info("preview: %s", args.preview)
    return 0
