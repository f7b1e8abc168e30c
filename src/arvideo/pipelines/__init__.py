"""Ready-to-use generation: `arvideo.load(...)` gives a pipeline, calling it gives a `Video`.

    pipe = arvideo.load("builtin:shapes")              # or a model folder
    pipe("a small red circle moves to the right", seed=0).save("out.mp4")

Heavy modules are imported on first use, so `import arvideo` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from arvideo.errors import ArvideoError

if TYPE_CHECKING:
    import torch

    from arvideo.pipelines.arlon import ArlonPipeline
    from arvideo.pipelines.lumos import LumosPipeline

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin"
BUILTIN_MODELS = {"shapes": "lumos-shapes", "arlon-shapes": "arlon-shapes"}  # builtin:NAME -> folder
BUILTIN_RECIPES = {  # builtin:NAME -> the command that builds it from a source checkout
    "shapes": "python -m arvideo.train.builtin",  # docs/training.md §7
    "arlon-shapes": "scripts/build_builtin_arlon.sh",  # docs/arlon.md, training recipe
}


def model_folder(name_or_path: str | os.PathLike) -> Path:
    """`builtin:NAME` -> its folder in the package; anything else is taken as a path."""
    name = str(name_or_path)
    if not name.startswith("builtin:"):
        return Path(name_or_path)
    key = name.removeprefix("builtin:")
    if key not in BUILTIN_MODELS:
        raise ArvideoError(
            f"unknown built-in model {name!r}; available: {', '.join('builtin:' + k for k in BUILTIN_MODELS)}"
        )
    folder = BUILTIN_DIR / BUILTIN_MODELS[key]
    if not any((folder / name).is_file() for name in ("config.json", "arvideo.json")):
        raise ArvideoError(
            f"the built-in model {name!r} is not in this install ({folder} is missing); build it with "
            f"`{BUILTIN_RECIPES[key]}` in a source checkout, or pass a trained model folder with "
            f"--model PATH / load(PATH)"
        )
    return folder


def load(
    model: str | os.PathLike = "builtin:shapes",
    tokenizer=None,
    text_tokenizer=None,
    device: str | torch.device = "cpu",
) -> LumosPipeline | ArlonPipeline:
    """A generation pipeline for `builtin:NAME` or a model folder (Lumos-1, or ARLON for long videos).

    `tokenizer` / `text_tokenizer` (a name, a path or a loaded tokenizer) override the ones the
    folder's arvideo.json names; a released Lumos-1 folder needs both (Cosmos DV4x8x8 folder,
    Chameleon text_tokenizer.json).
    """
    from arvideo.pipelines.arlon import ArlonPipeline, is_arlon_folder
    from arvideo.pipelines.lumos import LumosPipeline

    folder = model_folder(model)
    if is_arlon_folder(folder):
        return ArlonPipeline.from_folder(folder, device)
    return LumosPipeline.from_folder(folder, tokenizer, text_tokenizer, device)
