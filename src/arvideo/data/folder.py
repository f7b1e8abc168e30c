"""The captioned folder format: what `arvideo data shapes` writes and what a researcher brings.

    DIR/
      clips/000000.mp4 ...     videos (mp4, webm, gif, ...) or images (png, jpg): any layout works
      captions.csv             header `path,caption`; paths relative to DIR
      meta.jsonl               optional, one JSON object per item (the shapes world stores its
                               spec and per-frame ground truth here)

`read_captions` is all a consumer needs (the pre-tokenizer reads the list and then each file
with `arvideo.io.read_video`). `write_folder` writes the whole folder into a temporary sibling
and renames it at the end, so an interrupted run leaves no half-written dataset.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write, check_writable
from arvideo.io import DEFAULT_FPS, write_video
from arvideo.progress import progress

CAPTIONS_FILE = "captions.csv"
META_FILE = "meta.jsonl"
CLIPS_DIR = "clips"
HEADER = ("path", "caption")
PREVIEW_GAP = 2  # pixels of dark grey between tiles of the preview grid
PREVIEW_GAP_COLOUR = 48


@dataclass
class FolderItem:
    """One item to write: frames (T == 1 is stored as .png, else .mp4), caption, extra metadata."""

    video: torch.Tensor  # uint8 [T, H, W, 3]
    caption: str
    meta: dict[str, Any] = field(default_factory=dict)


def read_captions(folder: str | os.PathLike) -> list[tuple[Path, str]]:
    """(file path, caption) for every row of DIR/captions.csv, after checking each file exists."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArvideoError(f"dataset folder {folder} does not exist")
    table = folder / CAPTIONS_FILE
    if not table.is_file():
        raise ArvideoError(f"{folder} has no {CAPTIONS_FILE}; write one with the header `path,caption`")
    with open(table, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    header = tuple(c.strip() for c in rows[0]) if rows else ()
    if header[:2] != HEADER:
        raise ArvideoError(f"{table} must start with the header `path,caption`, got {','.join(header)!r}")
    items = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue  # blank line
        if len(row) < 2 or not row[1].strip():
            raise ArvideoError(f"{table} line {line}: empty caption for {row[0]!r}; every item needs one")
        path = folder / row[0].strip()
        if not path.is_file():
            raise ArvideoError(f"{table} line {line}: file {row[0].strip()!r} does not exist in {folder}")
        items.append((path, row[1].strip()))
    if not items:
        raise ArvideoError(f"{table} lists no items")
    return items


def tile(videos: list[torch.Tensor], cols: int | None = None) -> torch.Tensor:
    """Lay equal-sized videos [T, H, W, 3] out in a grid, row by row: [T, rows*(H+g)-g, cols*(W+g)-g, 3]."""
    T, H, W, _ = videos[0].shape
    cols = cols or math.ceil(math.sqrt(len(videos)))
    rows = math.ceil(len(videos) / cols)
    g = PREVIEW_GAP
    grid = torch.full((T, rows * (H + g) - g, cols * (W + g) - g, 3), PREVIEW_GAP_COLOUR, dtype=torch.uint8)
    for i, video in enumerate(videos):
        r, c = divmod(i, cols)
        grid[:, r * (H + g) : r * (H + g) + H, c * (W + g) : c * (W + g) + W] = video
    return grid


def write_folder(
    out: str | os.PathLike,
    items: Iterable[FolderItem],
    total: int | None = None,
    fps: float = DEFAULT_FPS,
    preview: str | os.PathLike | None = None,
    preview_count: int = 16,
    overwrite: bool = False,
) -> Path:
    """Write items as DIR/clips/NNNNNN.{mp4,png} + captions.csv + meta.jsonl, all or nothing.

    An existing empty DIR is filled; a non-empty one is replaced only with `overwrite`. `preview`
    (a .gif path, inside DIR or not) gets the first `preview_count` items tiled in a grid.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ArvideoError(f"{out} exists and is not a folder; choose another --out")
    replace = overwrite or (out.is_dir() and not any(out.iterdir()))  # an empty folder holds nothing to lose
    check_writable(out, replace)
    preview = Path(preview) if preview is not None else None
    preview_inside = preview is not None and preview.resolve().is_relative_to(out.resolve())
    if preview is not None:
        if preview.suffix.lower() != ".gif":
            raise ArvideoError(f"--preview must be a .gif file, got {preview.name!r}")
        if not preview_inside:
            check_writable(preview, overwrite)

    with atomic_write(out, overwrite=replace, is_dir=True) as tmp:
        (tmp / CLIPS_DIR).mkdir()
        shown: list[torch.Tensor] = []
        with (
            open(tmp / CAPTIONS_FILE, "w", newline="", encoding="utf-8") as captions,
            open(tmp / META_FILE, "w", encoding="utf-8") as meta,
        ):
            table = csv.writer(captions, lineterminator="\n")
            table.writerow(HEADER)
            for i, item in enumerate(progress(items, desc="writing clips", total=total)):
                rel = f"{CLIPS_DIR}/{i:06d}{'.png' if item.video.shape[0] == 1 else '.mp4'}"
                write_video(tmp / rel, item.video, fps)
                table.writerow((rel, item.caption))
                meta.write(json.dumps({"path": rel, "caption": item.caption, **item.meta}) + "\n")
                if preview is not None and len(shown) < preview_count:
                    shown.append(item.video)
        if not any((tmp / CLIPS_DIR).iterdir()):
            raise ArvideoError(f"nothing to write to {out}: no items given")
        if preview_inside:
            target = tmp / preview.resolve().relative_to(out.resolve())
            target.parent.mkdir(parents=True, exist_ok=True)
            write_video(target, tile(shown), fps)
    if preview is not None and not preview_inside:
        write_video(preview, tile(shown), fps, overwrite=overwrite)
    return out
