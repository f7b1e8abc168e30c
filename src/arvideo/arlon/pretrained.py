"""Model folders for the ARLON components: `config.json` + `model.safetensors`, HF style.

Every ARLON model (video VAE, latent VQ-VAEs, DiT) is an `nn.Module` built from one config
dataclass. `PretrainedModel` gives them `save_pretrained(path)` and `from_pretrained(path)`:
the folder is written atomically (nothing half-written, nothing overwritten unless asked) and
loading never unpickles. Config dataclasses hold tuples, never lists, so a JSON list always
reads back as a tuple.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(cls: type, data: dict[str, Any], source: str) -> Any:
    """Build a config dataclass from JSON data; unknown keys are an error, missing keys take defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ArvideoError(
            f"{source} has unknown {cls.__name__} keys {unknown}; it was written by another arvideo version "
            "or for another model type"
        )
    for name in sorted(names - set(data)):
        log.info("%s: %s missing, using the default", source, name)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ArvideoError(f"{path} not found; expected a model folder written by save_pretrained")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ArvideoError(f"{path} is not valid JSON ({err}); re-save the model folder") from err


def stored_model_type(folder: str | os.PathLike) -> str | None:
    """The `model_type` a model folder's config.json names; None when there is none to read, so
    callers can probe a folder without the errors `from_pretrained` gives."""
    try:
        data = json.loads((Path(folder) / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data.get("model_type") if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


class PretrainedModel(nn.Module):
    """Mixin for models built as `cls(config)`; subclasses set `config_class` and `model_type`."""

    config_class: ClassVar[type]
    model_type: ClassVar[str]
    config: Any

    def save_pretrained(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write `config.json` (with `model_type`) and `model.safetensors` into the folder `path`."""
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_write(path, overwrite=overwrite, is_dir=True) as tmp:
            write_json(tmp / CONFIG_NAME, {"model_type": self.model_type, **config_to_dict(self.config)})
            save_file(state, str(tmp / WEIGHTS_NAME))
        return Path(path)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> Self:
        """Load a folder written by `save_pretrained`; the weights must match the config exactly."""
        path = Path(path)
        data = read_json(path / CONFIG_NAME)
        model_type = data.pop("model_type", None)
        if model_type != cls.model_type:
            raise ArvideoError(f"{path} holds a {model_type!r} model, not {cls.model_type!r}; check the path")
        model = cls(config_from_dict(cls.config_class, data, str(path / CONFIG_NAME)))
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise ArvideoError(f"{weights} not found; the model folder is incomplete, re-save it")
        missing, unexpected = model.load_state_dict(load_file(str(weights), device=str(device)), strict=False)
        if missing or unexpected:
            raise ArvideoError(
                f"{weights} does not match {path / CONFIG_NAME}: missing {missing[:5]}, unexpected "
                f"{unexpected[:5]}; the folder mixes files from different models"
            )
        return model.to(device).eval()
