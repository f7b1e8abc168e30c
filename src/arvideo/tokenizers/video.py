"""The built-in video tokenizer: a small causal 3-D conv autoencoder with an FSQ bottleneck.

Architecture choices (all set by `CausalTokenizerConfig`):
- The encoder and decoder are `conv_stack`'s: causal in time like Cosmos DV (reference lumos1.md
  §7), frame 0 coded alone, then groups of `tc` frames, so the codes of latent frame j depend on
  pixel frames up to the end of group j, never later, and an image is a 1-frame video; temporal
  compression from space-time patchify, spatial from the patch plus stride-2 convolutions
  (`sc = p * 2**(levels - 1)`).
- The last conv of each residual block starts at zero, so every block starts as the identity.
- FSQ levels give the codebook; ids are mixed-radix numbers (see `fsq.py`).

A model folder is `config.json` + `model.safetensors`; weights may be stored in fp16 and are
upcast on load.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.tokenizers import base
from arvideo.tokenizers.conv_stack import Decoder, Encoder, init_autoencoder, patchify, unpatchify
from arvideo.tokenizers.fsq import FSQ

MODEL_KIND = "arvideo-causal-fsq"  # `kind` in config.json, how load_tokenizer recognises the folder


@dataclass
class CausalTokenizerConfig:
    temporal_compression: int = 4  # pixel frames per latent frame after the first (1 = images only)
    spatial_compression: int = 8  # pixels per latent cell along H and W
    patch_size: int = 2  # space-to-depth factor before the first conv
    channels: tuple[int, ...] = (32, 64, 96)  # conv width per resolution level, finest first
    encoder_blocks: int = 1  # residual blocks per level in the encoder
    decoder_blocks: int = 2  # residual blocks per level in the decoder (builtin:shapes: 1 here, 2 encoder)
    temporal_kernel: int = 2  # causal kernel along latent time inside residual blocks
    # spatial kernel of the encoder's residual blocks: 1 keeps a code's receptive field near its cell
    # (18 px with the default levels), so a moving object changes only the codes around it
    encoder_kernel: int = 3
    levels: tuple[int, ...] = (8, 8, 8, 5)  # FSQ levels; the codebook has prod(levels) codes
    kind: str = field(default=MODEL_KIND)

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.levels = tuple(self.levels)
        expected = self.patch_size * 2 ** (len(self.channels) - 1)
        if expected != self.spatial_compression:
            raise ArvideoError(
                f"spatial_compression {self.spatial_compression} must equal patch_size * 2**(len(channels)-1)"
                f" = {expected}; change patch_size or the number of channel levels"
            )
        if self.temporal_compression < 1 or self.temporal_kernel < 1:
            raise ArvideoError("temporal_compression and temporal_kernel must be >= 1")

    @classmethod
    def from_dict(cls, d: dict) -> CausalTokenizerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ArvideoError(f"unknown tokenizer config fields {unknown}; known fields: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


class CausalVideoTokenizer(base.CompressionMixin, nn.Module):
    """Trainable causal FSQ video tokenizer; `encode`/`decode` implement `VideoTokenizer`."""

    def __init__(self, config: CausalTokenizerConfig | None = None):
        super().__init__()
        self.config = config or CausalTokenizerConfig()
        self.temporal_compression = self.config.temporal_compression
        self.spatial_compression = self.config.spatial_compression
        c, patch = self.config, 3 * self.config.temporal_compression * self.config.patch_size**2
        self.encoder = Encoder(
            patch, len(c.levels), c.channels, c.encoder_blocks, c.temporal_kernel, c.encoder_kernel
        )
        self.decoder = Decoder(len(c.levels), patch, c.channels, c.decoder_blocks, c.temporal_kernel)
        self.fsq = FSQ(self.config.levels)
        self.codebook_size = self.fsq.codebook_size

    def init_weights(self, generator: torch.Generator) -> None:
        init_autoencoder(self.encoder, self.decoder, generator)

    # -- patchify --
    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        return patchify(x, self.temporal_compression, self.config.patch_size)

    def _unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        return unpatchify(x, self.temporal_compression, self.config.patch_size)

    # -- training path --
    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[-1, 1] video [B, 3, T, H, W] -> (reconstruction [B, 3, 1+tc*(T'-1), H, W], ids [B, T', h, w],
        pre-quantisation latent [B, T', h, w, d] for the saturation penalty)."""
        z = self.encoder(self._patchify(video)).movedim(1, -1)  # [B, T', h, w, d]
        codes, ids = self.fsq(z)  # [B, T', h, w, d], [B, T', h, w]
        return self._unpatchify(self.decoder(codes.movedim(-1, 1))), ids, z

    # -- VideoTokenizer API --
    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """uint8 or [-1, 1] video [B, 3, T, H, W] -> ids [B, T', H/sc, W/sc]."""
        x = base.video_to_float(video, self.spatial_compression).to(self._device())
        z = self.encoder(self._patchify(x))  # [B, d, T', h, w]
        return self.fsq(z.movedim(1, -1))[1]

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, T', h, w] -> video [B, 3, 1 + tc*(T'-1), sc*h, sc*w] in [-1, 1]."""
        ids = base.check_ids(ids, self.codebook_size).to(self._device())
        codes = self.fsq.ids_to_codes(ids).movedim(-1, 1)  # [B, d, T', h, w]
        return self._unpatchify(self.decoder(codes)).clamp(-1, 1)

    def _device(self) -> torch.device:
        return self.decoder.conv_out.conv.weight.device

    # -- model folder --
    def save(self, folder: str | Path, overwrite: bool = False, dtype: torch.dtype = torch.float16) -> Path:
        """Write `config.json` + `model.safetensors` (weights in `dtype`) atomically."""
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        with atomic_write(folder, overwrite=overwrite, is_dir=True) as tmp:
            (tmp / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
            save_file(state, str(tmp / "model.safetensors"))
        return Path(folder)

    @classmethod
    def from_folder(cls, folder: str | Path) -> CausalVideoTokenizer:
        """Load a model folder; weights are upcast to fp32."""
        folder = Path(folder)
        for name in ("config.json", "model.safetensors"):
            if not (folder / name).is_file():
                raise ArvideoError(f"{folder} is not a tokenizer folder: {name} is missing")
        model = cls(CausalTokenizerConfig.from_dict(json.loads((folder / "config.json").read_text())))
        state = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ArvideoError(
                f"{folder}/model.safetensors does not match its config.json "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}); re-save the model"
            )
        return model.eval()

    def conv_macs(self, n_frames: int, height: int, width: int) -> dict[str, int]:
        """Multiply-accumulates of the encoder and decoder convs for one video (for the benchmark)."""
        n_lat = self.latent_frames(n_frames)
        h0, w0 = height // self.config.patch_size, width // self.config.patch_size
        counts = {}
        for name, part, x in (
            ("encode", self.encoder, torch.zeros(1, self.encoder.conv_in.conv.in_channels, n_lat, h0, w0)),
            (
                "decode",
                self.decoder,
                torch.zeros(1, len(self.config.levels), n_lat, *self._latent_hw(height, width)),
            ),
        ):
            total = 0

            def hook(mod: nn.Conv3d, _inp, out: torch.Tensor) -> None:
                nonlocal total
                total += out.numel() * mod.in_channels * math.prod(mod.kernel_size)

            handles = [m.register_forward_hook(hook) for m in part.modules() if isinstance(m, nn.Conv3d)]
            with torch.no_grad():
                part(x)
            for h in handles:
                h.remove()
            counts[name] = total
        return counts

    def _latent_hw(self, height: int, width: int) -> tuple[int, int]:
        return height // self.spatial_compression, width // self.spatial_compression
