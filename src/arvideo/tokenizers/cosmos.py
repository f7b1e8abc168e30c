"""Adapter for an NVIDIA Cosmos discrete video tokenizer folder (DV4x8x8, as used by Lumos-1).

Facts from reference lumos1.md §7:
- The folder holds TorchScript files `encoder.jit` and `decoder.jit` (`torch.jit.load`).
- The encoder takes a [-1, 1] video [B, 3, T, H, W] and returns a tuple whose first element is the
  FSQ indices [B, T', H/8, W/8] (then the 6-channel codes, then a dummy loss); a plain tensor
  output is accepted too when it is integer (indices) or has 6 channels (codes, indexed here).
  The decoder takes integer indices [B, T', h, w] and returns [B, 3, 1 + 4(T'-1), 8h, 8w] in [-1, 1].
- FSQ levels (8, 8, 8, 5, 5, 5) -> 64,000 codes; Lumos-1 puts code k at vocabulary id 65,536 + k
  (`LUMOS_VISUAL_ID_OFFSET`).
- Official preprocessing (`cosmos_preprocess`): pick the aspect-ratio bucket (multiples of 32 with
  area <= (target/32)^2, aspect <= 4) closest to the frame's aspect, halve with BOX filtering while
  the frame is >= 2x the bucket, BICUBIC-resize to cover it, centre-crop, scale to [-1, 1].
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from arvideo.errors import ArvideoError
from arvideo.tokenizers import base
from arvideo.tokenizers.fsq import FSQ

COSMOS_LEVELS = (8, 8, 8, 5, 5, 5)
COSMOS_CODEBOOK_SIZE = 64_000
LUMOS_VISUAL_ID_OFFSET = 65_536  # vocabulary id of Cosmos code 0 in Lumos-1 (after the Chameleon text ids)
BUCKET_UNIT = 32  # bucket sides are multiples of this many pixels
MAX_ASPECT = 4.0
COSMOS_FILES = ("encoder.jit", "decoder.jit")


def is_cosmos_folder(folder: str | Path) -> bool:
    return all((Path(folder) / name).is_file() for name in COSMOS_FILES)


def bucket_sizes(target_size: int) -> list[tuple[int, int]]:
    """Candidate (width, height) crops for a target size, in the order the official code lists them.

    The official list walks a staircase under the area limit n = (target/32)^2: starting from
    (n, 1) patches, it grows the height while the area still fits, otherwise shrinks the width;
    every visited pair with aspect ratio <= 4 is a bucket.
    """
    n = (target_size // BUCKET_UNIT) ** 2
    if n < 1:
        raise ArvideoError(f"target size must be >= {BUCKET_UNIT}, got {target_size}")
    buckets, wp, hp = [], n, 1
    while wp > 0:
        if max(wp, hp) / min(wp, hp) <= MAX_ASPECT:
            buckets.append((wp * BUCKET_UNIT, hp * BUCKET_UNIT))
        if (hp + 1) * wp <= n:
            hp += 1
        else:
            wp -= 1
    return buckets


def pick_bucket(width: int, height: int, target_size: int) -> tuple[int, int]:
    """The (width, height) bucket that keeps most of a width x height frame (ties: larger bucket)."""

    def kept(bucket: tuple[int, int]) -> float:
        sw, sh = bucket[0] / width, bucket[1] / height
        return min(sw, sh) / max(sw, sh)

    return max(bucket_sizes(target_size), key=lambda b: (kept(b), b))


def resize_center_crop(frame: Image.Image, width: int, height: int) -> Image.Image:
    """BOX-halve while >= 2x the crop, BICUBIC-resize to cover it, then crop the centre."""
    while frame.width >= 2 * width and frame.height >= 2 * height:
        frame = frame.resize((frame.width // 2, frame.height // 2), resample=Image.BOX)
    scale = max(width / frame.width, height / frame.height)
    frame = frame.resize((round(frame.width * scale), round(frame.height * scale)), resample=Image.BICUBIC)
    left, top = (frame.width - width) // 2, (frame.height - height) // 2
    return frame.crop((left, top, left + width, top + height))


def fit_frames(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] -> uint8 [T, height, width, 3] by `resize_center_crop` per frame."""
    if frames.shape[1:3] == (height, width):
        return frames
    out = [np.asarray(resize_center_crop(Image.fromarray(f), width, height)) for f in frames.numpy()]
    return torch.from_numpy(np.stack(out))


def cosmos_preprocess(frames: torch.Tensor, target_size: int = 352) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] -> [-1, 1] video [1, 3, T, h, w] in the bucket for `target_size`.

    Targets used by Lumos-1: 352 (256p, 16:9 -> 448x256), 528 (384p, 16:9 -> 672x384), 656.
    """
    width, height = pick_bucket(frames.shape[2], frames.shape[1], target_size)
    fitted = fit_frames(frames, width, height)  # [T, h, w, 3]
    return (fitted.permute(3, 0, 1, 2).float() / 255 * 2 - 1)[None]  # [1, 3, T, h, w]


class CosmosTokenizer(base.CompressionMixin):
    """A Cosmos DV tokenizer folder behind the `VideoTokenizer` API (ids = Cosmos FSQ indices)."""

    temporal_compression = 4
    spatial_compression = 8
    codebook_size = COSMOS_CODEBOOK_SIZE
    id_offset = LUMOS_VISUAL_ID_OFFSET

    def __init__(
        self, folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ):
        folder = Path(folder)
        if not is_cosmos_folder(folder):
            raise ArvideoError(
                f"{folder} is not a Cosmos tokenizer folder: it needs {' and '.join(COSMOS_FILES)}"
            )
        self.folder, self.device, self.dtype = folder, torch.device(device), dtype
        with warnings.catch_warnings():  # the official files are TorchScript, whose loader is deprecated
            warnings.filterwarnings(
                "ignore", message="`torch.jit.load` is deprecated", category=DeprecationWarning
            )
            self.encoder = (
                torch.jit.load(str(folder / "encoder.jit"), map_location=self.device).to(dtype).eval()
            )
            self.decoder = (
                torch.jit.load(str(folder / "decoder.jit"), map_location=self.device).to(dtype).eval()
            )
        self.fsq = FSQ(COSMOS_LEVELS)

    def preprocess(self, frames: torch.Tensor, target_size: int = 352) -> torch.Tensor:
        return cosmos_preprocess(frames, target_size)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """uint8 or [-1, 1] video [B, 3, T, H, W] -> Cosmos indices [B, T', H/8, W/8] (0..63,999)."""
        x = base.video_to_float(video, self.spatial_compression).to(self.device, self.dtype)
        out = self.encoder(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        if out.is_floating_point():  # 6-channel FSQ codes [B, 6, T', h, w] instead of indices
            assert out.shape[1] == len(COSMOS_LEVELS), (
                f"expected {len(COSMOS_LEVELS)}-channel codes, got {out.shape}"
            )
            out = self.fsq.codes_to_ids(out.float().movedim(1, -1))
        sc = self.spatial_compression
        expected = (x.shape[0], self.latent_frames(x.shape[2]), x.shape[3] // sc, x.shape[4] // sc)
        assert tuple(out.shape) == expected, (
            f"Cosmos encoder returned {tuple(out.shape)}, expected {expected}"
        )
        return out.long()

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Cosmos indices [B, T', h, w] -> video [B, 3, 1 + 4(T'-1), 8h, 8w] in [-1, 1] (fp32)."""
        ids = base.check_ids(ids, self.codebook_size).to(self.device)
        return self.decoder(ids).float().clamp(-1, 1)
