"""`arvideo train CONFIG`, `arvideo tokenize-data SRC_DIR OUT_DIR` and `arvideo retarget MODEL OUT`.

Examples (CPU-sized):
    arvideo data shapes --out data/shapes -n 2000
    arvideo tokenize-data data/shapes data/shapes-tok --tokenizer builtin:shapes --workers 2
    arvideo train configs/builtin-shapes.yaml             # --resume continues a killed run
    arvideo train configs/tokenizer-shapes.yaml           # the video tokenizer (kind: video)
    torchrun --standalone --nproc-per-node 2 -m arvideo train CONFIG   # parallel.mode: ddp or fsdp
    arvideo retarget MODEL_DIR runs/start --tokenizer NEW_TOKENIZER --videos data/shapes

The config's `kind` says what is trained (`lumos`, `video`, `bpe`, or `package.module:Class`;
the table is `arvideo.train.kinds.KINDS`); docs/training.md lists every config field.
"""

from __future__ import annotations

import argparse

from arvideo.cli.values import parse_size
from arvideo.errors import ArvideoError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train what a config file describes (its `kind:`: lumos, video, bpe, ...)",
        description="Train from a YAML config whose `kind:` says what: lumos (a Lumos-1 model, also under "
        "torchrun), video (the video tokenizer), bpe (the caption tokenizer), or package.module:Class "
        "(a Task of your own). See docs/training.md.",
    )
    p.add_argument("config", help="YAML run config (e.g. configs/builtin-shapes.yaml)")
    p.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint of the run in the config"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="start over even if the config's run folder holds a run"
    )
    p.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "tokenize-data",
        help="pre-tokenize a captioned folder into training shards",
        description="Encode every video/image listed in SRC_DIR/captions.csv and its caption into token "
        "shards in OUT_DIR. Bad or too-short files are skipped and listed in OUT_DIR/report.json; "
        "a rerun skips finished shards.",
    )
    p.add_argument(
        "src", metavar="SRC_DIR", help="folder with captions.csv (header path,caption) and the files"
    )
    p.add_argument("out", metavar="OUT_DIR", help="shard folder to write (or to continue)")
    p.add_argument("--tokenizer", default="builtin:shapes", help="video tokenizer: builtin:NAME or a folder")
    p.add_argument(
        "--text-tokenizer", default="builtin:shapes", help="caption tokenizer: builtin:NAME or a file"
    )
    p.add_argument(
        "--frames",
        type=int,
        default=17,
        help="pixel frames kept per video, 1 + k*4 (shorter videos are skipped)",
    )
    p.add_argument(
        "--size", default=None, help="resize and centre-crop frames to WIDTHxHEIGHT first, e.g. 64x64"
    )
    p.add_argument("--shard-size", type=int, default=256, help="items per shard (the unit of resumption)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    p.add_argument("--overwrite", action="store_true", help="discard OUT_DIR and start over")
    p.set_defaults(func=run_tokenize_data)

    p = subparsers.add_parser(
        "retarget",
        help="move a trained Lumos-1 model onto a new video tokenizer (a start for fine-tuning)",
        description="Encode videos of a captioned folder with the model's tokenizer and with the new one, "
        "and write OUT_DIR: the model whose visual embedding and head rows are the co-occurrence-weighted "
        "means of the old codes' rows. Fine-tune it on the new codes with checkpoint.init_from: OUT_DIR.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="Lumos-1 model folder trained on the old tokenizer")
    p.add_argument("out", metavar="OUT_DIR", help="model folder to write")
    p.add_argument("--tokenizer", required=True, help="the new video tokenizer: builtin:NAME or a folder")
    p.add_argument(
        "--videos", required=True, metavar="DIR", help="captioned folder of videos to pair codes on"
    )
    p.add_argument(
        "--old-tokenizer",
        default=None,
        help="the model's tokenizer (default: its arvideo.json's)",
    )
    p.add_argument("--items", type=int, default=512, help="videos to encode with both tokenizers")
    p.add_argument("--frames", type=int, default=17, help="pixel frames per video, 1 + k*4")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.set_defaults(func=run_retarget)


def run_train(args: argparse.Namespace) -> int:
    from arvideo.train.kinds import train

    train(args.config, resume=args.resume, overwrite=args.overwrite)
    return 0


def run_tokenize_data(args: argparse.Namespace) -> int:
    from arvideo.train.tokenize_data import tokenize_folder

    tokenize_folder(
        args.src,
        args.out,
        args.tokenizer,
        args.text_tokenizer,
        frames=args.frames,
        size=parse_size(args.size) if args.size else None,
        shard_size=args.shard_size,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    return 0


def run_retarget(args: argparse.Namespace) -> int:
    from arvideo.train.retarget import retarget_folder

    if args.items < 1 or args.frames < 1:
        raise ArvideoError(f"--items and --frames must be >= 1, got {args.items} and {args.frames}")
    retarget_folder(
        args.model,
        args.out,
        args.tokenizer,
        args.videos,
        old_tokenizer=args.old_tokenizer,
        items=args.items,
        frames=args.frames,
        overwrite=args.overwrite,
    )
    return 0
