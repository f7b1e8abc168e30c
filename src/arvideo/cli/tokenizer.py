"""`arvideo tokenize`, `arvideo detokenize` (training a tokenizer is `arvideo train CONFIG`).

Examples (CPU-sized):
    arvideo train configs/tokenizer-shapes.yaml                  # ~70 min on 2 cores; --resume to continue
    arvideo train configs/text-shapes.yaml                       # caption BPE, seconds
    arvideo tokenize clip.mp4 --tokenizer builtin:shapes --out clip.ids.safetensors
    arvideo detokenize clip.ids.safetensors --out back.mp4
    arvideo tokenize big.mp4 --size 64x64                        # resize + centre-crop first
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from arvideo.cli.values import parse_size
from arvideo.errors import ArvideoError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tokenize",
        help="turn a video or image into visual token ids",
        description="Encode VIDEO with a video tokenizer; write its ids (safetensors), fps and frame count.",
    )
    p.add_argument("video", help="input .mp4/.webm/.gif/.png/.jpg")
    p.add_argument(
        "--tokenizer", default="builtin:shapes", help="builtin:NAME, a tokenizer folder or a Cosmos folder"
    )
    p.add_argument(
        "--out", default=None, help="ids file to write (default: VIDEO with suffix .ids.safetensors)"
    )
    p.add_argument(
        "--size", default=None, help="resize and centre-crop frames to WIDTHxHEIGHT first, e.g. 64x64"
    )
    p.add_argument(
        "--target", type=int, default=352,
        help="Cosmos only, without --size: aspect-ratio bucket target (352 = 256p, 528 = 384p)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run_tokenize)

    p = subparsers.add_parser(
        "detokenize",
        help="turn a token-id file back into a video",
        description="Decode an ids file written by `arvideo tokenize` to .mp4/.gif/.png.",
    )
    p.add_argument("ids", help="ids file written by `arvideo tokenize`")
    p.add_argument("--out", required=True, help="output video (.mp4, .gif, or .png for one frame)")
    p.add_argument(
        "--tokenizer", default=None, help="tokenizer to decode with (default: the one that made IDS)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run_detokenize)


def run_tokenize(args: argparse.Namespace) -> int:
    from arvideo.files import check_writable
    from arvideo.io import Video, read_video
    from arvideo.tokenizers import CosmosTokenizer, load_tokenizer
    from arvideo.tokenizers.cosmos import fit_frames, pick_bucket
    from arvideo.tokenizers.ids import encode_video, save_ids

    out = Path(args.out) if args.out else Path(args.video).with_suffix(".ids.safetensors")
    check_writable(out, args.overwrite)
    tok = load_tokenizer(args.tokenizer)
    video = read_video(args.video)
    n_frames, height, width = video.frames.shape[:3]
    if args.size:
        size = parse_size(args.size)
    elif isinstance(tok, CosmosTokenizer):
        size = pick_bucket(width, height, args.target)
    else:
        size = (width, height)
    try:
        tok.check_size(size[1], size[0])
    except ArvideoError as err:
        raise ArvideoError(f"{err} (e.g. with --size WIDTHxHEIGHT)") from None
    video = Video(fit_frames(video.frames, *size), fps=video.fps)
    ids = encode_video(tok, video)
    save_ids(out, ids, args.tokenizer, fps=video.fps, n_frames=n_frames, overwrite=args.overwrite)
    logger.info(
        "%d frames of %dx%d -> ids %s written to %s", n_frames, size[0], size[1], tuple(ids.shape), out
    )
    return 0


def run_detokenize(args: argparse.Namespace) -> int:
    from arvideo.files import check_writable
    from arvideo.tokenizers import load_tokenizer
    from arvideo.tokenizers.ids import decode_video, load_ids

    check_writable(args.out, args.overwrite)
    ids, meta = load_ids(args.ids)
    tok = load_tokenizer(args.tokenizer or meta["tokenizer"])
    video = decode_video(
        tok, ids, fps=meta["fps"], n_frames=min(meta["frames"], tok.pixel_frames(ids.shape[0]))
    )
    video.save(args.out, overwrite=args.overwrite)
    logger.info("ids %s -> %d frames written to %s", tuple(ids.shape), video.frames.shape[0], args.out)
    return 0
