"""The Lumos-1 training task: AR-DF (reference §4) on pre-tokenized shards.

Per micro-batch, on the CPU (`collate`, from the rank's generator): serialize each item's caption
and codes in the model's vocabulary layout, label everything from video_start on, apply CFG text
dropout per sample, right-pad, then AR-DF masking (tube by default). On the device (`loss`): one
forward of `LumosForTraining` — decoder plus the chunked visual-only cross-entropy — so DDP and
FSDP see every parameter used inside the wrapped module's forward.

Config: `model:` is a preset name (`tiny`, `small`) or a dict `{preset, vocab, <DecoderConfig
fields>}` (vocab: `compact`, sized from the shards' tokenizers, or `official`); with
`checkpoint.init_from` the architecture is that folder's instead. `task:` holds `LumosOptions`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

from arvideo.errors import ArvideoError
from arvideo.lumos.ardf import MaskKind, VisualLoss, ardf_mask, drop_text, visual_loss
from arvideo.lumos.checkpoint import config_to_hf, read_config, read_official_state, to_native, to_official
from arvideo.lumos.decoder import DecoderConfig, LumosDecoder
from arvideo.lumos.sequence import pad_batch, serialize, training_labels
from arvideo.lumos.vocab import Vocab
from arvideo.train.config import RunConfig, from_dict
from arvideo.train.data import TokenItem, read_meta
from arvideo.train.task import LossOutput, Task

# Named sizes; `model: {preset: ..., <field>: ...}` overrides single fields.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1),  # tests and smoke runs
    "small": dict(hidden_size=256, intermediate_size=704, num_hidden_layers=6, num_attention_heads=4,
                  num_key_value_heads=2),  # the shapes world on a CPU
}  # fmt: skip
PREFIX = "decoder."  # LumosForTraining holds the decoder under this name


@dataclass(kw_only=True)
class LumosOptions:
    """The `task:` section for `kind: lumos` (defaults: the reference's training scripts)."""

    mask: MaskKind = "tube"  # AR-DF masking: tube (official), random, frame, tube_decay
    min_mask_ratio: float = 0.7  # floor of the per-sample cosine mask ratio
    text_drop: float = 0.1  # CFG: probability of training a sample without its caption
    loss_chunk: int = 1024  # rows of visual logits computed at a time


class LumosForTraining(nn.Module):
    """The decoder and its AR-DF loss in one forward: what the parallel wrappers see."""

    def __init__(self, decoder: LumosDecoder, chunk: int) -> None:
        super().__init__()
        self.decoder, self.chunk = decoder, chunk

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> VisualLoss:
        hidden = self.decoder(input_ids)  # [B, L, d]
        return visual_loss(self.decoder, hidden, input_ids, labels, self.chunk)


def decoder_config(model: str | dict[str, Any], meta: dict[str, Any]) -> DecoderConfig:
    """DecoderConfig from the config's `model:` entry and the shards' tokenizer settings."""
    spec = {"preset": model} if isinstance(model, str) else dict(model)
    preset, layout = spec.pop("preset", "tiny"), spec.pop("vocab", "compact")
    if preset not in PRESETS:
        raise ArvideoError(f"unknown model preset {preset!r}; use one of {', '.join(PRESETS)}")
    fields = [f.name for f in dataclasses.fields(DecoderConfig) if f.name != "vocab"]
    for key in spec:
        if key not in fields:
            raise ArvideoError(
                f"unknown config key `model.{key}`; valid keys: preset, vocab, {', '.join(fields)}"
            )
    codebook = meta.get("codebook_size")
    if layout == "official":
        vocab = Vocab.official()
        if codebook != vocab.codebook_size:
            raise ArvideoError(
                f"the official vocabulary holds {vocab.codebook_size} visual codes, the shards' "
                f"tokenizer {codebook}; tokenize with the Cosmos tokenizer or use `vocab: compact`"
            )
    elif layout == "compact":
        if not (meta.get("text_vocab_size") and codebook):
            raise ArvideoError(
                "the shards' tokenize.json lacks text_vocab_size or codebook_size; "
                "re-run `arvideo tokenize-data`"
            )
        vocab = Vocab.compact(meta["text_vocab_size"], codebook)
    else:
        raise ArvideoError(f"`model.vocab` must be compact or official, got {layout!r}")
    tc, sc = meta.get("temporal_compression", 4), meta.get("spatial_compression", 8)
    spec = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    return DecoderConfig(**{**PRESETS[preset], "vocab": vocab, "rope_strides": (tc, sc, sc), **spec})


def header_timing(n_latent: int, fps: float, temporal_compression: int) -> tuple[int, int]:
    """(duration s, fps) written after video_start: (1, 1) for an image, as in the reference."""
    if n_latent == 1:
        return 1, 1
    fps_int = max(1, round(fps))
    pixel_frames = 1 + temporal_compression * (n_latent - 1)
    return max(1, round(pixel_frames / fps_int)), fps_int


class LumosTask(Task):
    """`kind: lumos`: a LumosDecoder trained with AR-DF on shards from `arvideo tokenize-data`."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.options = from_dict(LumosOptions, config.task, "task")
        self.meta = read_meta(config.data.shards)
        if config.checkpoint.init_from:  # fine-tuning: the architecture is the starting model's
            self.decoder_config = read_config(config.checkpoint.init_from)
            have, need = self.decoder_config.vocab.codebook_size, self.meta.get("codebook_size")
            if have != need:
                raise ArvideoError(
                    f"{config.checkpoint.init_from} has {have} visual codes, the shards' tokenizer {need}; "
                    "tokenize the data with the model's tokenizer"
                )
        else:
            self.decoder_config = decoder_config(config.model, self.meta)
        self.vocab = self.decoder_config.vocab
        tc = self.meta.get("temporal_compression", 4)
        self.max_frames = 1 + math.ceil((self.meta.get("frames", 1) - 1) / tc)  # latent frames of a clip

    def build_model(self) -> nn.Module:
        return LumosForTraining(LumosDecoder(self.decoder_config), self.options.loss_chunk)

    def blocks(self, model: nn.Module) -> list[nn.Module]:
        return list(model.decoder.layers)

    def collate(self, items: list[TokenItem], generator: torch.Generator) -> dict[str, torch.Tensor]:
        tc = self.meta.get("temporal_compression", 4)
        seqs, labels = [], []
        for item in items:  # one sequence per sample; everything inside is vectorised
            codes = torch.from_numpy(item.visual.astype(np.int64))  # [T', H', W']
            ids = serialize(
                self.vocab, item.text.tolist(), codes, *header_timing(codes.shape[0], item.fps, tc)
            )
            ids, lab = drop_text(
                ids, training_labels(self.vocab, ids), self.vocab, generator, self.options.text_drop
            )
            seqs.append(ids)
            labels.append(lab)
        ids, lab = pad_batch(self.vocab, seqs, labels)  # [B, L] each
        masked = ardf_mask(ids, lab, self.vocab, generator, self.options.mask, self.options.min_mask_ratio)
        return {"input_ids": masked.input_ids, "labels": masked.labels,
                "lengths": torch.tensor([len(s) for s in seqs])}  # fmt: skip

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        out = model(batch["input_ids"], batch["labels"])
        sums, counts = out.per_frame(self.max_frames)  # [F] each
        lengths = batch["lengths"].double()
        n_targets = out.token_loss.shape[0]
        return LossOutput(
            loss_sum=out.token_loss.sum(),
            n_targets=torch.tensor(n_targets),
            n_tokens=int(lengths.sum()),
            flops=self.flops(lengths, n_targets),
            metrics={f"loss_frame{f}": (sums[f], counts[f]) for f in range(self.max_frames)},
        )

    def flops(self, lengths: torch.Tensor, n_targets: int) -> float:
        """Forward + backward FLOPs: 6 per weight per token in the blocks, attention scores and
        values (12 * layers * d * L per token, the whole L x L as SDPA computes it), and the visual
        head on the target rows only."""
        c = self.decoder_config
        block = c.num_hidden_layers * (
            2 * c.hidden_size * c.num_attention_heads * c.head_dim  # q, o
            + 2 * c.hidden_size * c.num_key_value_heads * c.head_dim  # k, v
            + 3 * c.hidden_size * c.intermediate_size  # SwiGLU
        )
        attention = 12 * c.num_hidden_layers * c.hidden_size * float((lengths**2).sum())
        head = 6 * c.hidden_size * self.vocab.codebook_size * n_targets
        return 6 * block * float(lengths.sum()) + attention + head

    def model_config(self) -> dict[str, Any]:
        return config_to_hf(self.decoder_config, torch.float32)

    def save_model(self, state: dict[str, torch.Tensor], folder: Path) -> None:
        """The Lumos model folder (official key names), loadable with `lumos.checkpoint.load_lumos`."""
        native = {k.removeprefix(PREFIX): v.contiguous() for k, v in state.items()}
        (folder / "config.json").write_text(json.dumps(self.model_config(), indent=2) + "\n")
        save_file(to_official(native), str(folder / "model.safetensors"), metadata={"format": "pt"})

    def load_model(self, folder: Path) -> dict[str, torch.Tensor]:
        return {PREFIX + k: v for k, v in to_native(read_official_state(folder)).items()}
