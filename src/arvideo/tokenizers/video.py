"""The built-in video tokenizer: a small causal 3-D conv autoencoder with an FSQ bottleneck.

Architecture choices (all set by `CausalTokenizerConfig`):
- Causal in time like Cosmos DV (reference lumos1.md §7): frame 0 is replicated `tc` times so it
  forms a latent frame alone, the rest is cut into groups of `tc` frames (the last group padded by
  repeating its last frame), and every temporal convolution only looks back. So the codes of
  latent frame j depend on pixel frames up to the end of group j, never later, and an image is a
  1-frame video.
- Temporal compression comes from space-time patchify (`tc x p x p` pixels -> channels), spatial
  compression from the patch plus stride-2 convolutions (`sc = p * 2**(levels - 1)`); the decoder
  mirrors it with sub-pixel (depth-to-space) upsampling.
- Pre-norm residual blocks with an RMS norm over channels at each position (norms with statistics
  over time would leak the future); the last conv of each block starts at zero, so every block
  starts as the identity.
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
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import nn

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.tokenizers import base
from arvideo.tokenizers.fsq import FSQ

MODEL_KIND = "arvideo-causal-fsq"  # `kind` in config.json, how load_tokenizer recognises the folder


@dataclass
class CausalTokenizerConfig:
    temporal_compression: int = 4  # pixel frames per latent frame after the first (1 = images only)
    spatial_compression: int = 8  # pixels per latent cell along H and W
    patch_size: int = 2  # space-to-depth factor before the first conv
    channels: tuple[int, ...] = (32, 64, 96)  # conv width per resolution level, finest first
    encoder_blocks: int = 1  # residual blocks per level in the encoder
    decoder_blocks: int = 2  # residual blocks per level in the decoder (decoding is the hard half)
    temporal_kernel: int = 2  # causal kernel along latent time inside residual blocks
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


class CausalConv3d(nn.Module):
    """k x k spatial conv with a causal temporal kernel: pads only the past (by repeating frame 0)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, temporal_kernel: int = 1, stride: int = 1):
        super().__init__()
        self.pad_t = temporal_kernel - 1
        self.conv = nn.Conv3d(
            cin,
            cout,
            (temporal_kernel, kernel, kernel),
            stride=(1, stride, stride),
            padding=(0, kernel // 2, kernel // 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_t:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.pad_t, -1, -1), x], dim=2)  # [B, C, T+kt-1, H, W]
        return self.conv(x)


class ChannelNorm(nn.Module):
    """RMS norm over channels at every (t, h, w): per position, so it never mixes frames (causal)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps) * self.weight


class ResBlock(nn.Module):
    def __init__(self, channels: int, temporal_kernel: int):
        super().__init__()
        self.norm = ChannelNorm(channels)
        self.conv1 = CausalConv3d(channels, channels, temporal_kernel=temporal_kernel)
        self.conv2 = CausalConv3d(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(self.norm(x)))))


class Upsample(nn.Module):
    """2x spatial sub-pixel upsampling: a conv makes 4 sub-pixels per channel, then depth-to-space."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = CausalConv3d(cin, 4 * cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self.conv(x), "b (c i j) t h w -> b c t (h i) (w j)", i=2, j=2)  # [B, C, T, 2H, 2W]


class Encoder(nn.Module):
    def __init__(self, cfg: CausalTokenizerConfig):
        super().__init__()
        ch = cfg.channels
        self.conv_in = CausalConv3d(3 * cfg.temporal_compression * cfg.patch_size**2, ch[0])
        layers: list[nn.Module] = []
        for i, c in enumerate(ch):
            layers += [ResBlock(c, cfg.temporal_kernel) for _ in range(cfg.encoder_blocks)]
            if i + 1 < len(ch):
                layers.append(CausalConv3d(c, ch[i + 1], stride=2))
        self.blocks = nn.Sequential(*layers)
        self.norm_out = ChannelNorm(ch[-1])
        self.conv_out = CausalConv3d(ch[-1], len(cfg.levels), kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patchified video [B, 3*tc*p*p, T', H/p, W/p] -> pre-quantisation latent [B, d, T', h, w]."""
        return self.conv_out(F.silu(self.norm_out(self.blocks(self.conv_in(x)))))


class Decoder(nn.Module):
    def __init__(self, cfg: CausalTokenizerConfig):
        super().__init__()
        ch = cfg.channels[::-1]
        self.conv_in = CausalConv3d(len(cfg.levels), ch[0], temporal_kernel=cfg.temporal_kernel)
        layers: list[nn.Module] = []
        for i, c in enumerate(ch):
            layers += [ResBlock(c, cfg.temporal_kernel) for _ in range(cfg.decoder_blocks)]
            if i + 1 < len(ch):
                layers.append(Upsample(c, ch[i + 1]))
        self.blocks = nn.Sequential(*layers)
        self.norm_out = ChannelNorm(ch[-1])
        self.conv_out = CausalConv3d(ch[-1], 3 * cfg.temporal_compression * cfg.patch_size**2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Codes [B, d, T', h, w] -> patchified video [B, 3*tc*p*p, T', H/p, W/p]."""
        return self.conv_out(F.silu(self.norm_out(self.blocks(self.conv_in(z)))))


class CausalVideoTokenizer(base.CompressionMixin, nn.Module):
    """Trainable causal FSQ video tokenizer; `encode`/`decode` implement `VideoTokenizer`."""

    def __init__(self, config: CausalTokenizerConfig | None = None):
        super().__init__()
        self.config = config or CausalTokenizerConfig()
        self.temporal_compression = self.config.temporal_compression
        self.spatial_compression = self.config.spatial_compression
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.fsq = FSQ(self.config.levels)
        self.codebook_size = self.fsq.codebook_size

    def init_weights(self, generator: torch.Generator) -> None:
        """All weights from one generator: He-uniform convs, zero biases; zero for the last conv of
        every residual block (each block starts as the identity) and for the decoder's output conv
        (the first reconstruction is flat mid-grey instead of noise the optimizer must first undo)."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, ResBlock):
                nn.init.zeros_(module.conv2.conv.weight)
        nn.init.zeros_(self.decoder.conv_out.conv.weight)

    # -- patchify --
    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, H, W] -> [B, 3*tc*p*p, T', H/p, W/p]: frame 0 alone, then groups of tc frames."""
        tc, p = self.temporal_compression, self.config.patch_size
        n_lat = self.latent_frames(x.shape[2])
        missing = self.pixel_frames(n_lat) - x.shape[2]  # the last group is completed by repetition
        first, last = x[:, :, :1], x[:, :, -1:]
        x = torch.cat([first.expand(-1, -1, tc - 1, -1, -1), x, last.expand(-1, -1, missing, -1, -1)], dim=2)
        return rearrange(x, "b c (t i) (h j) (w k) -> b (c i j k) t h w", i=tc, j=p, k=p)

    def _unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3*tc*p*p, T', h, w] -> [B, 3, 1 + tc*(T'-1), H, W], dropping frame 0's replicas."""
        tc, p = self.temporal_compression, self.config.patch_size
        x = rearrange(x, "b (c i j k) t h w -> b c (t i) (h j) (w k)", i=tc, j=p, k=p)  # [B, 3, tc*T', H, W]
        return x[:, :, tc - 1 :]

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
