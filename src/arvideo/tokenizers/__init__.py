"""Visual and text tokenizers, and the one place that turns a name or a folder into a tokenizer.

tok = load_tokenizer("builtin:shapes")          # or a model folder, a Cosmos DV folder, an ARLON folder
ids = tok.encode(video)                         # uint8 [B, 3, T, H, W] -> [B, T', H/8, W/8]
video = tok.decode(ids)                         # -> [B, 3, 1 + 4(T'-1), H, W] in [-1, 1]
text = load_text_tokenizer("builtin:shapes")    # or a tokenizer.json / Chameleon text_tokenizer.json
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from arvideo.errors import ArvideoError
from arvideo.tokenizers.base import VideoTokenizer
from arvideo.tokenizers.cosmos import (
    COSMOS_CODEBOOK_SIZE,
    LUMOS_VISUAL_ID_OFFSET,
    CosmosTokenizer,
    is_cosmos_folder,
)
from arvideo.tokenizers.fsq import FSQ, codebook_usage
from arvideo.tokenizers.text import TextTokenizer
from arvideo.tokenizers.video import MODEL_KIND, CausalTokenizerConfig, CausalVideoTokenizer

__all__ = [
    "COSMOS_CODEBOOK_SIZE",
    "FSQ",
    "LUMOS_VISUAL_ID_OFFSET",
    "CausalTokenizerConfig",
    "CausalVideoTokenizer",
    "CosmosTokenizer",
    "TextTokenizer",
    "VideoTokenizer",
    "builtin_path",
    "codebook_usage",
    "load_text_tokenizer",
    "load_tokenizer",
]

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin"
# builtin:NAME -> folder under arvideo/builtin
BUILTIN_VIDEO = {"shapes": "tokenizer-shapes"}
BUILTIN_TEXT = {"shapes": "text-shapes"}


def builtin_path(name: str, table: dict[str, str]) -> Path:
    """Folder of a built-in model `builtin:NAME`, with an error naming the ones that exist."""
    key = name.removeprefix("builtin:")
    if key not in table:
        raise ArvideoError(
            f"unknown built-in {name!r}; available: {', '.join('builtin:' + k for k in table)}"
        )
    folder = BUILTIN_DIR / table[key]
    if not folder.is_dir():
        raise ArvideoError(
            f"built-in {name!r} is missing from this install ({folder}); in a source checkout train it"
            f" with `arvideo train configs/{table[key]}.yaml` and copy its model folder there"
        )
    return folder


def load_tokenizer(name_or_path: str | Path, device: str | torch.device = "cpu") -> VideoTokenizer:
    """`builtin:NAME`, an arvideo tokenizer folder, a Cosmos DV folder, or an ARLON folder (its
    VAE + fine VQ-VAE, the AR stage's tokenizer) -> a `VideoTokenizer`."""
    if str(name_or_path).startswith("builtin:"):
        folder = builtin_path(str(name_or_path), BUILTIN_VIDEO)
    else:
        folder = Path(name_or_path)
        if not folder.is_dir():
            raise ArvideoError(f"tokenizer {name_or_path!r} is neither builtin:NAME nor an existing folder")
    if is_cosmos_folder(folder):
        return CosmosTokenizer(folder, device=device)
    config = folder / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("kind") == MODEL_KIND:
        return CausalVideoTokenizer.from_folder(folder).to(device)
    # imported here, not at the top: arvideo.arlon.tokenizer imports this package
    from arvideo.arlon.tokenizer import ArlonTokenizer, is_arlon_tokenizer_folder

    if is_arlon_tokenizer_folder(folder):
        return ArlonTokenizer.from_folder(folder, device)
    raise ArvideoError(
        f"{folder} is not a tokenizer folder: expected config.json (kind {MODEL_KIND!r}) + "
        f"model.safetensors, a Cosmos folder with encoder.jit + decoder.jit, or an ARLON folder "
        f"with vae/ + fine_vq/"
    )


def load_text_tokenizer(name_or_path: str | Path) -> TextTokenizer:
    """`builtin:NAME`, a tokenizer.json / text_tokenizer.json file, or a folder holding one."""
    if str(name_or_path).startswith("builtin:"):
        return TextTokenizer.from_file(builtin_path(str(name_or_path), BUILTIN_TEXT) / "tokenizer.json")
    path = Path(name_or_path)
    if path.is_dir():
        found = [path / n for n in ("tokenizer.json", "text_tokenizer.json") if (path / n).is_file()]
        if not found:
            raise ArvideoError(f"{path} holds no tokenizer.json or text_tokenizer.json")
        path = found[0]
    if not path.is_file():
        raise ArvideoError(f"text tokenizer {name_or_path!r} is neither builtin:NAME nor an existing file")
    return TextTokenizer.from_file(path)
