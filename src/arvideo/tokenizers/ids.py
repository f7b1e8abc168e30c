"""Videos <-> token-id files, the Python side of `arvideo tokenize` / `arvideo detokenize`.

An ids file is a safetensors file with one int32 tensor `ids` [T', h, w] and string metadata:
the tokenizer that made it, the fps and the frame count of the source (decoding gives
`1 + tc*(T'-1)` frames, which `decode_video` trims back to the source's count).

    tok = load_tokenizer("builtin:shapes")
    ids = encode_video(tok, read_video("clip.mp4"))           # [T', h, w]
    save_ids("clip.ids.safetensors", ids, "builtin:shapes", fps=8.0, n_frames=17)
    ids, meta = load_ids("clip.ids.safetensors")
    decode_video(tok, ids, fps=meta["fps"], n_frames=meta["frames"]).save("back.mp4")
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.io import Video, from_model
from arvideo.tokenizers.base import VideoTokenizer

IDS_FORMAT = "arvideo-ids-v1"


def encode_video(tokenizer: VideoTokenizer, video: Video) -> torch.Tensor:
    """A `Video` (uint8 [T, H, W, 3]) -> ids [T', H/sc, W/sc]; the size must suit the tokenizer."""
    frames = video.frames.permute(3, 0, 1, 2)[None]  # [1, 3, T, H, W]
    return tokenizer.encode(frames)[0]


def decode_video(
    tokenizer: VideoTokenizer, ids: torch.Tensor, fps: float = 8.0, n_frames: int | None = None
) -> Video:
    """ids [T', h, w] -> `Video`, trimmed to `n_frames` when given (the source's frame count)."""
    x = tokenizer.decode(ids[None])[0]  # [3, 1 + tc*(T'-1), H, W]
    if n_frames is not None:
        if not 1 <= n_frames <= x.shape[1]:
            raise ArvideoError(
                f"n_frames must be in [1, {x.shape[1]}] for {ids.shape[0]} latent frames, got {n_frames}"
            )
        x = x[:, :n_frames]
    return Video(from_model(x), fps=fps)


def save_ids(
    path: str | Path, ids: torch.Tensor, tokenizer: str, fps: float, n_frames: int, overwrite: bool = False
) -> Path:
    """Write ids [T', h, w] and where they came from (tokenizer name, fps, source frame count)."""
    meta = {
        "format": IDS_FORMAT,
        "tokenizer": str(tokenizer),
        "fps": repr(float(fps)),
        "frames": str(n_frames),
    }
    with atomic_write(path, overwrite=overwrite) as tmp:
        save_file({"ids": ids.to(torch.int32).contiguous()}, str(tmp), metadata=meta)
    return Path(path)


def load_ids(path: str | Path) -> tuple[torch.Tensor, dict]:
    """Read an ids file: (ids int64 [T', h, w], {"tokenizer": str, "fps": float, "frames": int})."""
    path = Path(path)
    if not path.is_file():
        raise ArvideoError(f"ids file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ArvideoError(f"{path} is not an ids file written by `arvideo tokenize`: {err}") from None
    if meta.get("format") != IDS_FORMAT or "ids" not in tensors:
        raise ArvideoError(
            f"{path} is not an ids file written by `arvideo tokenize` (no {IDS_FORMAT} metadata)"
        )
    return tensors["ids"].long(), {
        "tokenizer": meta["tokenizer"],
        "fps": float(meta["fps"]),
        "frames": int(meta["frames"]),
    }
