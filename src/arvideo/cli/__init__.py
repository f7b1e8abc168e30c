"""The `arvideo` command line.

Each area registers its own subcommands from a module in this package (`register(subparsers)`),
so this file only knows the list of areas. User errors (`ArvideoError`) become one line on
stderr and exit code 2; anything else is a bug and keeps its traceback.

Example (CPU-sized):
    arvideo data shapes --out /tmp/shapes -n 200
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from arvideo import __version__
from arvideo.errors import ArvideoError
from arvideo.progress import set_progress

# Areas, in the order they appear in `arvideo --help`. Each module defines `register(subparsers)`.
AREAS: list[str] = [
    "arvideo.cli.data",
    "arvideo.cli.tokenizer",
    "arvideo.cli.train",
    "arvideo.cli.generate",
    "arvideo.cli.long",
    "arvideo.cli.eval",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arvideo", description="Autoregressive video generation: Lumos-1 and ARLON."
    )
    parser.add_argument("--version", action="version", version=f"arvideo {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for area in AREAS:
        importlib.import_module(area).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    if args.quiet:
        set_progress(False)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    try:
        return args.func(args) or 0
    except ArvideoError as err:
        print(f"arvideo: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("arvideo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
