"""Flag values that several commands parse the same way, each failing on one clear line."""

from __future__ import annotations

import argparse

from arvideo.errors import ArvideoError


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """The token-draw flags of Lumos-1 generation; an unset number takes the model's `arvideo.json`."""
    p.add_argument("--temperature", help="temperature of the token draw (0: the most likely token)")
    p.add_argument("--top-k", help="draw among the k most likely visual tokens only (0: among all)")
    p.add_argument("--history-ratio", help="fraction of every finished frame masked in the KV cache")
    p.add_argument("--decoding", default="parallel", choices=("parallel", "next_token"),
                   help="per-frame parallel masked decoding (Lumos-1) or one token at a time")  # fmt: skip


SAMPLING_NUMBERS = {"temperature": float, "top_k": int, "history_ratio": float}


def parse_size(text: str) -> tuple[int, int]:
    """`WIDTHxHEIGHT` -> (width, height), both positive."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ArvideoError(f"--size must look like WIDTHxHEIGHT (e.g. 64x64), got {text!r}") from None
    if width < 1 or height < 1:
        raise ArvideoError(f"--size must be positive, got {text!r}")
    return width, height


def optional_number(text: str | None, flag: str, kind: type):
    """An optional numeric flag (None when absent), parsed as `kind`."""
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ArvideoError(f"`{flag}` must be {what}, got {text!r}") from None


def optional_numbers(args: argparse.Namespace, kinds: dict[str, type]) -> dict:
    """The numeric flags named by their dest in `kinds` (dest -> type), each parsed or None."""
    return {
        name: optional_number(getattr(args, name), "--" + name.replace("_", "-"), kind)
        for name, kind in kinds.items()
    }
