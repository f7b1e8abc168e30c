"""The pre-tokenizer: a captioned folder of videos/images -> token shards that training memory-maps.

    arvideo tokenize-data data/shapes data/shapes-tok --tokenizer builtin:shapes --workers 2

Rows of captions.csv are cut, in order, into shards of `shard_size` items; workers tokenize
whole shards in parallel. A shard is finished when its index file exists (see train/data.py),
so a rerun skips finished shards and redoes only interrupted ones. A video that cannot be read
or is shorter than `frames` is skipped and listed in report.json with the reason; it never
stops the run. Training on pre-tokenized data keeps the tokenizer out of the training loop.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arvideo.data.folder import read_captions
from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.io import read_video
from arvideo.progress import progress
from arvideo.tokenizers import load_text_tokenizer, load_tokenizer
from arvideo.tokenizers.cosmos import fit_frames
from arvideo.train.data import (
    FORMAT_VERSION,
    META_FILE,
    REPORT_FILE,
    TokenItem,
    finished_shards,
    shard_stem,
    write_shard,
)

logger = logging.getLogger(__name__)

# A tokenizer argument: a spec string for load_tokenizer / load_text_tokenizer, or a picklable
# zero-argument factory (used by tests, and by anyone with a tokenizer arvideo cannot name).
TokenizerSource = str | Callable[[], Any]


@dataclass(frozen=True)
class _Settings:
    root: Path
    out: Path
    frames: int
    size: tuple[int, int] | None  # (width, height) to resize + centre-crop to


def _factory(source: TokenizerSource, loader: Callable[[str], Any]) -> Callable[[], Any]:
    return functools.partial(loader, source) if isinstance(source, str) else source


def _name(source: TokenizerSource) -> str:
    if isinstance(source, str):
        return source
    return f"{source.__module__}.{getattr(source, '__qualname__', type(source).__qualname__)}"


class _ShardTokenizer:
    """Tokenizes whole shards; one per worker process, holding that process's tokenizers."""

    def __init__(
        self, video: Callable[[], Any], text: Callable[[], Any], settings: _Settings, threads: int
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.video, self.text, self.settings = video(), text(), settings

    def __call__(self, job: tuple[int, list[tuple[Path, str]]]) -> int:
        index, rows = job
        items, skipped = [], []
        for path, caption in rows:
            item = self.item(path, caption)
            if isinstance(item, str):
                skipped.append({"id": self.rel(path), "reason": item})
            else:
                items.append(item)
        write_shard(self.settings.out, index, items, skipped, overwrite=True)
        return index

    def rel(self, path: Path) -> str:
        return path.relative_to(self.settings.root).as_posix()

    @torch.no_grad()
    def item(self, path: Path, caption: str) -> TokenItem | str:
        """The token item, or the reason to skip it."""
        try:
            video = read_video(path)
        except Exception as err:  # anything that fails to decode is a bad file, never a failed run
            return f"unreadable: {err}"
        frames = video.frames  # [T, H, W, 3]
        if frames.shape[0] > 1:
            if frames.shape[0] < self.settings.frames:
                return f"too short: {frames.shape[0]} frames, need {self.settings.frames}"
            frames = frames[: self.settings.frames]
        if self.settings.size is not None:
            frames = fit_frames(frames, *self.settings.size)
        height, width = frames.shape[1:3]
        try:
            self.video.check_size(height, width)
        except ArvideoError as err:
            return f"bad size: {err}"
        ids = self.video.encode(frames.permute(3, 0, 1, 2)[None])[0]  # [T', H', W']
        text = np.asarray(self.text.encode(caption), dtype=np.int32)  # [N]
        return TokenItem(
            id=self.rel(path),
            text=text,
            visual=ids.cpu().numpy().astype(np.int32),
            fps=video.fps,
            size=(height, width),
        )


_worker: _ShardTokenizer | None = None


def _init_worker(*args: Any) -> None:
    global _worker
    _worker = _ShardTokenizer(*args)


def _run_in_worker(job: tuple[int, list[tuple[Path, str]]]) -> int:
    assert _worker is not None, "worker used before _init_worker"
    return _worker(job)


def tokenize_folder(
    src: str | Path,
    out: str | Path,
    tokenizer: TokenizerSource,
    text_tokenizer: TokenizerSource,
    *,
    frames: int = 17,
    size: tuple[int, int] | None = None,
    shard_size: int = 256,
    workers: int = 1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Pre-tokenize folder `src` (captions.csv + files) into shards in `out`; returns the report.

    `frames`: pixel frames kept per video (the first ones; must be 1 + k * temporal compression);
    images pass as one frame. `size`: (width, height) to resize and centre-crop to, else the
    files' own size must suit the tokenizer.
    """
    src, out = Path(src), Path(out)
    rows = read_captions(src)
    if shard_size < 1 or workers < 1:
        raise ArvideoError(f"--shard-size and --workers must be >= 1, got {shard_size} and {workers}")
    video_factory = _factory(tokenizer, load_tokenizer)
    text_factory = _factory(text_tokenizer, load_text_tokenizer)
    probe = video_factory()
    valid = probe.pixel_frames(probe.latent_frames(frames))
    if frames < 1 or valid != frames:
        lower = probe.pixel_frames(max(1, probe.latent_frames(frames) - 1))
        raise ArvideoError(
            f"--frames must be 1 + k*{probe.temporal_compression} for this tokenizer, got {frames}; "
            f"use {lower} or {valid}"
        )
    text_vocab_size = getattr(text_factory(), "vocab_size", None)
    listing = "\n".join(f"{path.relative_to(src).as_posix()}\t{caption}" for path, caption in rows)
    meta = {
        "format": FORMAT_VERSION,
        "tokenizer": _name(tokenizer),
        "text_tokenizer": _name(text_tokenizer),
        "codebook_size": probe.codebook_size,
        "temporal_compression": probe.temporal_compression,
        "spatial_compression": probe.spatial_compression,
        "text_vocab_size": text_vocab_size,
        "frames": frames,
        "size": list(size) if size else None,
        "shard_size": shard_size,
        "items": len(rows),
        "captions_sha256": hashlib.sha256(listing.encode()).hexdigest(),
    }
    _prepare_out(out, meta, overwrite)
    del probe

    jobs = [(i, rows[start : start + shard_size]) for i, start in enumerate(range(0, len(rows), shard_size))]
    done = finished_shards(out)
    todo = [job for job in jobs if job[0] not in done]
    if done:
        logger.info(
            "%d of %d shards already finished; tokenizing the other %d", len(done), len(jobs), len(todo)
        )
    settings = _Settings(root=src, out=out, frames=frames, size=size)
    init = (video_factory, text_factory, settings)
    if workers == 1 or len(todo) <= 1:
        run = _ShardTokenizer(*init, threads=0)
        for _ in progress(map(run, todo), desc="tokenizing shards", total=len(todo)):
            pass
    else:
        # spawn, not fork: forking a process that already ran torch kernels can deadlock OpenMP.
        context = multiprocessing.get_context("spawn")
        threads = max(1, torch.get_num_threads() // workers)
        with context.Pool(
            min(workers, len(todo)), initializer=_init_worker, initargs=(*init, threads)
        ) as pool:
            for _ in progress(
                pool.imap_unordered(_run_in_worker, todo), desc="tokenizing shards", total=len(todo)
            ):
                pass
    return _write_report(out, len(jobs))


def _prepare_out(out: Path, meta: dict[str, Any], overwrite: bool) -> None:
    """Start `out`, or check that a rerun continues the same job (same source and settings)."""
    meta_path = out / META_FILE
    if out.exists() and overwrite:
        shutil.rmtree(out)
    elif meta_path.is_file():
        old = json.loads(meta_path.read_text())
        changed = [k for k in meta if old.get(k) != meta[k]]
        if changed:
            raise ArvideoError(
                f"{out} was started with different {', '.join(changed)}; pass --overwrite to start "
                "over, or choose another OUT_DIR"
            )
        return
    elif out.exists() and any(out.iterdir()):
        raise ArvideoError(
            f"{out} is not empty and not a tokenized folder; choose a new OUT_DIR or pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(meta_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")


def _write_report(out: Path, n_shards: int) -> dict[str, Any]:
    written, skipped = 0, []
    for index in range(n_shards):
        shard = json.loads((out / f"{shard_stem(index)}.json").read_text())
        written += len(shard["id"])
        skipped += shard["skipped"]
    report = {"written": written, "skipped": skipped, "shards": n_shards}
    with atomic_write(out / REPORT_FILE, overwrite=True) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    logger.info(
        "tokenized %d items into %d shards in %s; skipped %d (listed in %s)",
        written,
        n_shards,
        out,
        len(skipped),
        out / REPORT_FILE,
    )
    return report
