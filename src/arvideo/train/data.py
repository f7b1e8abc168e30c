"""Pre-tokenized shards, the length-bucketed sampler, and each rank's stream of training steps.

Shard folder layout (written by `arvideo tokenize-data`, see train/tokenize_data.py):

    tokenize.json        settings of the run that wrote the folder (tokenizers, frames, ...)
    shard-00000.npy      int32 [n_tokens]: per item its caption ids, then its visual ids in
                         [T', H', W'] order, back to back
    shard-00000.json     the shard's index, one list per column: id, offset, text_len,
                         grid [T', H', W'], fps, size [H, W]; plus the skipped source items;
                         written after the .npy, so its presence marks the shard as finished
    report.json          items written and items skipped, with reasons

Text and visual ids are stored apart, not serialized: the task's serializer builds the
sequence at load time, so one folder serves every vocabulary layout.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.train.config import DataConfig

logger = logging.getLogger(__name__)

META_FILE = "tokenize.json"
REPORT_FILE = "report.json"
FORMAT_VERSION = 1


@dataclass
class TokenItem:
    """One pre-tokenized image or video with its caption."""

    id: str  # source path relative to the data folder
    text: np.ndarray  # int32 [N]: caption token ids
    visual: np.ndarray  # int32 [T', H', W']: visual code ids
    fps: float  # frames per second of the source clip
    size: tuple[int, int]  # (height, width) in pixels of the tokenized frames

    @property
    def is_image(self) -> bool:
        return self.visual.shape[0] == 1


def shard_stem(index: int) -> str:
    return f"shard-{index:05d}"


def write_shard(
    folder: Path,
    index: int,
    items: list[TokenItem],
    skipped: list[dict[str, str]] | None = None,
    overwrite: bool = False,
) -> None:
    """Write one shard: tokens first, then the index whose presence marks the shard finished.

    `skipped` lists the shard's source items that were left out ({"id", "reason"}), so that the
    run's report can be rebuilt from the shards alone.
    """
    text_len = [len(item.text) for item in items]
    sizes = [len(item.text) + item.visual.size for item in items]
    offsets = (
        np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if items else np.zeros(0, np.int64)
    )
    tokens = (
        np.concatenate([np.concatenate([item.text.ravel(), item.visual.ravel()]) for item in items]).astype(
            np.int32
        )
        if items
        else np.zeros(0, np.int32)
    )
    stem = shard_stem(index)
    with atomic_write(folder / f"{stem}.npy", overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        np.save(fh, tokens, allow_pickle=False)
    index_data = {
        "id": [item.id for item in items],
        "offset": offsets.tolist(),
        "text_len": text_len,
        "grid": [list(item.visual.shape) for item in items],
        "fps": [float(item.fps) for item in items],
        "size": [list(item.size) for item in items],
        "skipped": skipped or [],
    }
    with atomic_write(folder / f"{stem}.json", overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(index_data))


def finished_shards(folder: Path) -> set[int]:
    """Indices of the shards whose index file exists (their tokens were written before it)."""
    return {int(p.stem.split("-")[1]) for p in folder.glob("shard-*.json")}


def _as_folders(folders: str | Path | list[str] | list[Path]) -> list[Path]:
    return [Path(f) for f in (folders if isinstance(folders, list) else [folders])]


def read_meta(folders: str | Path | list[str] | list[Path]) -> dict[str, Any]:
    """The tokenize.json settings shared by shard folders (they must agree on the tokenizers)."""
    folders = _as_folders(folders)
    metas = []
    for folder in folders:
        path = folder / META_FILE
        if not path.is_file():
            raise ArvideoError(
                f"{folder} is not a tokenized data folder (no {META_FILE}); "
                "create it with `arvideo tokenize-data`"
            )
        metas.append(json.loads(path.read_text()))
    for folder, meta in zip(folders[1:], metas[1:], strict=True):
        for key in ("tokenizer", "text_tokenizer"):
            if meta.get(key) != metas[0].get(key):
                raise ArvideoError(
                    f"{folder} was tokenized with {key} {meta.get(key)!r} but {folders[0]} "
                    f"with {metas[0].get(key)!r}; use folders made with the same tokenizers"
                )
    return metas[0]


class ShardDataset:
    """Token items of one or more shard folders, memory-mapped; item i is read on access."""

    def __init__(self, folders: str | Path | list[str] | list[Path]) -> None:
        folders = _as_folders(folders)
        self.meta = read_meta(folders)
        columns: dict[str, list[Any]] = {k: [] for k in ("id", "offset", "text_len", "grid", "fps", "size")}
        self._files: list[Path] = []
        shard_of: list[np.ndarray] = []
        for folder in folders:
            for path in sorted(folder.glob("shard-*.json")):
                index = json.loads(path.read_text())
                for key in columns:
                    columns[key].extend(index[key])
                shard_of.append(np.full(len(index["id"]), len(self._files), dtype=np.int64))
                self._files.append(path.with_suffix(".npy"))
        if not columns["id"]:
            raise ArvideoError(
                f"no tokenized items in {', '.join(map(str, folders))}; run `arvideo tokenize-data` first"
            )
        self.ids: list[str] = columns["id"]
        self.shard_of = np.concatenate(shard_of)  # [N]
        self.offset = np.asarray(columns["offset"], dtype=np.int64)  # [N]
        self.text_len = np.asarray(columns["text_len"], dtype=np.int64)  # [N]
        self.grid = np.asarray(columns["grid"], dtype=np.int64).reshape(-1, 3)  # [N, 3]: T', H', W'
        self.fps = np.asarray(columns["fps"], dtype=np.float64)  # [N]
        self.size = np.asarray(columns["size"], dtype=np.int64).reshape(-1, 2)  # [N, 2]: H, W
        # Bucketing key: caption + visual tokens. The serialized length adds a layout-dependent
        # number of special tokens per frame and row, which is the same ordering in practice.
        self.lengths = self.text_len + self.grid.prod(axis=1)  # [N]
        self.is_image = self.grid[:, 0] == 1  # [N]
        self._mmaps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _tokens(self, shard: int) -> np.ndarray:
        if shard not in self._mmaps:
            self._mmaps[shard] = np.load(self._files[shard], mmap_mode="r", allow_pickle=False)
        return self._mmaps[shard]

    def __getitem__(self, i: int) -> TokenItem:
        tokens = self._tokens(int(self.shard_of[i]))
        start, n_text = int(self.offset[i]), int(self.text_len[i])
        grid = tuple(int(g) for g in self.grid[i])
        visual = np.asarray(tokens[start + n_text : start + n_text + int(np.prod(grid))]).reshape(grid)
        return TokenItem(
            id=self.ids[i],
            text=np.asarray(tokens[start : start + n_text]),
            visual=visual,
            fps=float(self.fps[i]),
            size=(int(self.size[i, 0]), int(self.size[i, 1])),
        )


def bucketed_batches(
    indices: np.ndarray, lengths: np.ndarray, batch_size: int, window: int, rng: np.random.Generator
) -> np.ndarray:
    """One epoch of global batches [n_batches, batch_size] of item indices.

    Shuffle, sort by length inside windows of `window` batches (so each batch holds similar
    lengths and pads little), cut into batches, shuffle the batches. The remainder that does
    not fill a batch is dropped (a different remainder every epoch).
    """
    order = rng.permutation(indices)  # [N]
    window_id = np.arange(len(order)) // (window * batch_size)  # [N]
    order = order[np.lexsort((lengths[order], window_id))]  # by window, then by length
    n_batches = len(order) // batch_size
    batches = order[: n_batches * batch_size].reshape(n_batches, batch_size)  # [n_batches, batch_size]
    return batches[rng.permutation(n_batches)]


class _Stream:
    """Endless epochs of bucketed global batches over one subset (images or videos)."""

    def __init__(
        self,
        name: str,
        indices: np.ndarray,
        lengths: np.ndarray,
        batch_size: int,
        micro_batch_size: int,
        window: int,
        seed: int,
        rank: int,
        world_size: int,
    ) -> None:
        per_rank = micro_batch_size * world_size
        if batch_size % per_rank:
            raise ArvideoError(
                f"the {name} batch size ({batch_size}) must be a multiple of the micro-batch size "
                f"({micro_batch_size}) x {world_size} rank(s); change the data section of the config"
            )
        if len(indices) < batch_size:
            raise ArvideoError(
                f"only {len(indices)} {name}s in the shards, fewer than one batch of {batch_size}; "
                "lower the batch size or tokenize more data"
            )
        self.name, self.indices, self.lengths = name, indices, lengths
        self.batch_size, self.micro, self.window = batch_size, micro_batch_size, window
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.accumulation = batch_size // per_rank
        self.epoch, self.position = 0, 0
        self._batches = self._epoch_batches()

    def _epoch_batches(self) -> np.ndarray:
        # The same on every rank: only the seed, the stream and the epoch determine the order.
        rng = np.random.default_rng([self.seed, self.epoch, 0 if self.name == "video" else 1])
        return bucketed_batches(self.indices, self.lengths, self.batch_size, self.window, rng)

    def next_step(self) -> list[np.ndarray]:
        """This rank's micro-batches of the next global batch."""
        if self.position == len(self._batches):
            self.epoch, self.position = self.epoch + 1, 0
            self._batches = self._epoch_batches()
        batch = self._batches[self.position]
        self.position += 1
        mine = batch[self.rank :: self.world_size]  # rank-strided: every rank gets similar lengths
        return [mine[i * self.micro : (i + 1) * self.micro] for i in range(self.accumulation)]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._batches = self._epoch_batches()


class StepStream:
    """This rank's micro-batches for each optimizer step; a resumable position.

    Images (one latent frame) and videos form separate streams with their own batch sizes.
    When both exist, `video_steps_per_image_step` video steps are followed by one image step.
    """

    def __init__(self, dataset: ShardDataset, cfg: DataConfig, seed: int, rank: int = 0, world_size: int = 1):
        self.streams: dict[str, _Stream] = {}
        for name, mask, batch, micro in (
            ("video", ~dataset.is_image, cfg.batch_size, cfg.micro_batch_size),
            ("image", dataset.is_image, cfg.image_batch_size, cfg.image_micro_batch_size),
        ):
            if mask.any():
                self.streams[name] = _Stream(
                    name,
                    np.flatnonzero(mask),
                    dataset.lengths,
                    batch,
                    micro,
                    cfg.bucket_window,
                    seed,
                    rank,
                    world_size,
                )
        self.cycle = cfg.video_steps_per_image_step + 1
        self.steps = 0

    def next_kind(self) -> str:
        if len(self.streams) == 1:
            return next(iter(self.streams))
        return "image" if self.steps % self.cycle == self.cycle - 1 else "video"

    def next_step(self) -> list[np.ndarray]:
        """Item indices of this rank's micro-batches for the next optimizer step."""
        micro_batches = self.streams[self.next_kind()].next_step()
        self.steps += 1
        return micro_batches

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, **{name: s.state_dict() for name, s in self.streams.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        for name, stream in self.streams.items():
            stream.load_state_dict(state[name])


def eval_batches(
    dataset: ShardDataset, n_items: int, micro_batch_size: int, rank: int, world_size: int
) -> list[np.ndarray]:
    """This rank's validation micro-batches: the first `n_items` items, rank-strided.

    The item set does not depend on the number of ranks (up to rounding down to a multiple of
    it, so that every rank runs the same number of forward passes).
    """
    n = min(n_items, len(dataset)) // world_size * world_size
    if n == 0:
        raise ArvideoError(
            f"validation needs at least {world_size} items, the validation shards hold {len(dataset)}"
        )
    mine = np.arange(n)[rank::world_size]
    return [mine[i : i + micro_batch_size] for i in range(0, len(mine), micro_batch_size)]


def pad_sequences(
    seqs: list[np.ndarray] | list[torch.Tensor], pad_value: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D id sequences into ids [B, L] (int64) and their lengths [B]."""
    tensors = [torch.as_tensor(np.asarray(s), dtype=torch.long) for s in seqs]
    lengths = torch.tensor([len(t) for t in tensors])  # [B]
    ids = torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True, padding_value=pad_value)  # [B, L]
    return ids, lengths
