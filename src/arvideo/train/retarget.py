"""Move a trained Lumos-1 model onto a new video tokenizer instead of training one from nothing.

A new tokenizer renumbers every visual code, so a model trained on the old codes reads the new
ones as noise. Only the rows that name codes are wrong, though (the visual rows of the input
embedding and of the output head); the blocks in between still know how the world looks and moves.
Encoding the same clips with both tokenizers pairs every new code with the old codes found at the
same latent positions (the two tokenizers must share the latent grid: the same temporal and
spatial compression). Each new code's rows start as the mean of those old codes' rows, weighted by
how often the pair occurs; a new code never seen starts at the mean over all codes seen. A short
fine-tune on the new codes (`checkpoint.init_from` of the folder written here) does the rest.

    arvideo retarget MODEL_DIR OUT_DIR --tokenizer NEW --videos DATA_DIR [--old-tokenizer OLD]
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import torch

from arvideo.data.folder import read_captions
from arvideo.errors import ArvideoError
from arvideo.files import atomic_write, check_writable
from arvideo.io import read_video
from arvideo.lumos.checkpoint import load_lumos, save_lumos
from arvideo.lumos.decoder import LumosDecoder
from arvideo.lumos.vocab import Vocab
from arvideo.pipelines.lumos import CONFIG_NAME, PipelineConfig, component_path, component_reference
from arvideo.progress import progress
from arvideo.tokenizers import load_tokenizer
from arvideo.tokenizers.base import VideoTokenizer

log = logging.getLogger(__name__)


def cooccurrence(old: VideoTokenizer, new: VideoTokenizer, videos: Iterable[torch.Tensor]) -> torch.Tensor:
    """Counts [new codes, old codes] of the pairs found at the same latent position of the same clip.

    `videos` yields uint8 [T, H, W, 3] frames that both tokenizers take.
    """
    old_grid = (old.temporal_compression, old.spatial_compression)
    new_grid = (new.temporal_compression, new.spatial_compression)
    if old_grid != new_grid:
        raise ArvideoError(
            f"the tokenizers must share the latent grid to pair their codes: the old one compresses "
            f"(time, space) by {old_grid}, the new one by {new_grid}"
        )
    counts = torch.zeros(new.codebook_size, old.codebook_size, dtype=torch.float64)
    with torch.inference_mode():
        for frames in videos:
            video = frames.permute(3, 0, 1, 2)[None]  # [1, 3, T, H, W]
            pairs = new.encode(video).flatten() * old.codebook_size + old.encode(video).flatten()
            counts.view(-1).index_add_(0, pairs, torch.ones(pairs.numel(), dtype=torch.float64))
    if counts.sum() == 0:
        raise ArvideoError("no clip was encoded: give at least one video")
    return counts


def retarget(model: LumosDecoder, counts: torch.Tensor) -> LumosDecoder:
    """A copy of `model` whose visual rows are the `counts`-weighted means of the old ones.

    `counts` is [new codes, old codes] (`cooccurrence`); with a different number of new codes the
    vocabulary grows or shrinks at its end, where the visual ids are (compact layout only).
    """
    vocab = model.vocab
    n_new, n_old = counts.shape
    if n_old != vocab.codebook_size:
        raise ArvideoError(
            f"the old tokenizer has {n_old} codes but the model's vocabulary {vocab.codebook_size}; "
            "name the tokenizer the model was trained with"
        )
    if n_new != n_old and vocab.layout != "compact":
        raise ArvideoError(
            f"the {vocab.layout} vocabulary has {n_old} visual codes; a tokenizer of {n_new} codes "
            "needs a compact-layout model"
        )
    seen = counts.sum(1, keepdim=True)
    weights = torch.where(seen > 0, counts / seen.clamp_min(1), counts.sum(0) / counts.sum())  # rows sum to 1
    new_vocab = Vocab.compact(vocab.text_size, n_new) if n_new != n_old else vocab
    out = LumosDecoder(dataclasses.replace(model.config, vocab=new_vocab))
    state = model.state_dict()
    start = vocab.visual_offset
    with torch.no_grad():
        old_embed, old_head = state.pop("embed.weight"), state.pop("head_visual.weight")
        embed = torch.cat([old_embed[:start], weights.to(old_embed) @ old_embed[start:]])
        state.update({"embed.weight": embed, "head_visual.weight": weights.to(old_head) @ old_head})
        out.load_state_dict(state)
    return out


def folder_clips(folder: str | Path, items: int, frames: int) -> list[torch.Tensor]:
    """The first `items` videos of a captioned folder that hold at least `frames` frames, cut to it."""
    clips = []
    for path, _ in read_captions(folder):
        video = read_video(path).frames
        if video.shape[0] >= frames:
            clips.append(video[:frames])
        if len(clips) == items:
            return clips
    raise ArvideoError(
        f"{folder} holds {len(clips)} videos of at least {frames} frames; {items} were asked for "
        "(lower --items or --frames)"
    )


def retarget_folder(
    model_dir: str | Path,
    out: str | Path,
    tokenizer: str,
    videos: str | Path,
    old_tokenizer: str | None = None,
    items: int = 512,
    frames: int = 17,
    overwrite: bool = False,
) -> dict[str, float]:
    """Write `out`: the model of `model_dir` moved onto `tokenizer`; returns how well the codes paired.

    The old tokenizer is `old_tokenizer`, else the one the model folder's arvideo.json names; the
    folder's arvideo.json (if any) is copied with its tokenizer replaced by the new one.
    """
    model_dir, out = Path(model_dir), Path(out)
    if not model_dir.is_dir():
        raise ArvideoError(f"model folder {str(model_dir)!r} does not exist")
    check_writable(out, overwrite)
    pipeline = PipelineConfig.read(model_dir) if (model_dir / CONFIG_NAME).is_file() else None
    if old_tokenizer is None and (pipeline is None or pipeline.tokenizer is None):
        raise ArvideoError(f"{model_dir} names no video tokenizer (arvideo.json); give the old one")
    old_name = component_path(old_tokenizer, pipeline and pipeline.tokenizer, model_dir, "tokenizer")
    old, new = load_tokenizer(old_name), load_tokenizer(tokenizer)
    model = load_lumos(model_dir)
    clips = folder_clips(videos, items, frames)
    counts = cooccurrence(old, new, progress(clips, desc="pair codes"))
    moved = retarget(model, counts)
    with atomic_write(out, overwrite=overwrite, is_dir=True) as tmp:
        save_lumos(moved, tmp, overwrite=True)
        if pipeline is not None:
            text = pipeline.text_tokenizer and component_path(None, pipeline.text_tokenizer, model_dir, "")
            pipeline = dataclasses.replace(
                pipeline,
                tokenizer=component_reference(tokenizer, out),
                text_tokenizer=text and component_reference(text, out),
            )
            (tmp / CONFIG_NAME).write_text(json.dumps(pipeline.to_dict(), indent=2) + "\n")
    seen = counts.sum(1) > 0
    stats = {
        "clips": len(clips),
        "new_codes_seen": float(seen.float().mean()),
        # how much of a new code's mass sits on its most frequent old partner (1: a pure renumbering)
        "purity": float(counts.max(1).values.sum() / counts.sum()),
    }
    log.info(
        "retargeted %s onto %s from %d clips: %.0f%% of the new codes seen, purity %.2f -> %s",
        model_dir, tokenizer, len(clips), 100 * stats["new_codes_seen"], stats["purity"], out,
    )  # fmt: skip
    return stats
