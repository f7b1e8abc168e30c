"""What `arvideo train CONFIG` trains: one table from the config's `kind:` to the code that does it.

A kind names either a `Task` subclass, trained by the shared `Trainer` (docs/training.md), or a
function `run(config_path, *, resume, overwrite)` with a training loop of its own (the
tokenizers). Targets are `package.module:Name` strings imported on first use, so `arvideo train`
imports only what it runs. A config may also name a target directly (`kind: my.module:MyTask`).
Adding a kind is one line here.
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

from arvideo.errors import ArvideoError
from arvideo.train.config import load_yaml

KINDS: dict[str, str] = {
    "lumos": "arvideo.train.lumos_task:LumosTask",  # Lumos-1, AR-DF on token shards
    "video": "arvideo.tokenizers.train:train_from_config",  # the causal FSQ video tokenizer
    "bpe": "arvideo.tokenizers.train:train_from_config",  # the caption BPE
    "arlon_vae": "arvideo.arlon.tasks:VAETask",  # ARLON's video VAE, on frame shards
    "arlon_vq": "arvideo.arlon.tasks:VQTask",  # ARLON's latent VQ-VAEs (fine, coarse), on latent shards
    "arlon_ar": "arvideo.train.lumos_task:LumosTask",  # ARLON's AR stage: Lumos-1 on fine latent-VQ codes
    "arlon_dit": "arvideo.arlon.tasks:DiTTask",  # ARLON's DiT and its injection branch, on latent shards
}
DEFAULT_KIND = "lumos"  # a config without `kind:` (RunConfig's default)


def resolve(kind: str) -> Any:
    """The Task class or runner function that `kind` names (a KINDS key or `package.module:Name`)."""
    target = KINDS.get(kind, kind)
    if ":" not in target:
        raise ArvideoError(f"unknown `kind: {kind}`; use one of {', '.join(KINDS)} or `package.module:Class`")
    module_name, _, name = target.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ArvideoError(f"cannot load `{target}` for `kind: {kind}`: {err}") from err
    if not callable(found):
        raise ArvideoError(f"`{target}` (`kind: {kind}`) is neither a Task class nor a function")
    return found


def is_task(target: Any) -> bool:
    from arvideo.train.task import Task

    return inspect.isclass(target) and issubclass(target, Task)


def train(config_path: str | os.PathLike, resume: bool = False, overwrite: bool = False) -> None:
    """`arvideo train CONFIG`: run what the config's `kind` names (one process or under torchrun)."""
    kind = load_yaml(config_path).get("kind", DEFAULT_KIND)
    if not isinstance(kind, str):
        raise ArvideoError(f"`kind` in {config_path} must be a string, got {kind!r}")
    target = resolve(kind)
    if is_task(target):
        from arvideo.train.trainer import run

        run(config_path, resume=resume, overwrite=overwrite)
    else:
        target(config_path, resume=resume, overwrite=overwrite)
