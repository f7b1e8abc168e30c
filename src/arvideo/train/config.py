"""Run configuration: plain dataclasses, one YAML file per run.

Every field carries its documentation in `metadata["doc"]`; `config_reference()` turns them into
the table in docs/training.md (a test keeps the two equal). Loading rejects unknown keys, naming
the key and the valid ones, and coerces YAML's spellings (`3e-4` is a string to PyYAML) into
the declared type, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from arvideo.errors import ArvideoError


def _doc(text: str, **kwargs: Any) -> Any:
    return field(metadata={"doc": text}, **kwargs)


@dataclass(kw_only=True, slots=True)
class DataConfig:
    """Which pre-tokenized shards to train on and how to batch them."""

    shards: str | list[str] = _doc("folder(s) written by `arvideo tokenize-data`; several are concatenated")
    batch_size: int = _doc("videos per optimizer step, summed over all ranks (the global batch)", default=8)
    micro_batch_size: int = _doc(
        "videos per forward pass on one rank; accumulation = batch_size / (micro_batch_size * ranks)",
        default=8,
    )
    image_batch_size: int = _doc("images per optimizer step, summed over all ranks", default=32)
    image_micro_batch_size: int = _doc("images per forward pass on one rank", default=32)
    video_steps_per_image_step: int = _doc(
        "when the shards hold both images (1 latent frame) and videos: this many video steps, then "
        "one image step (the reference alternates 1:1)",
        default=1,
    )
    bucket_window: int = _doc(
        "length bucketing: items are sorted by length within windows of this many global batches",
        default=50,
    )


@dataclass(kw_only=True, slots=True)
class OptimConfig:
    """AdamW with linear warmup and a half-cosine decay; defaults are the Lumos-1 reference's."""

    lr: float = _doc("peak learning rate, reached at the end of warmup", default=3e-4)
    min_lr: float = _doc("learning rate at the last step (min_lr == lr gives a constant LR)", default=3e-5)
    warmup_steps: int = _doc("linear warmup from 0 to lr over this many optimizer steps", default=100)
    betas: tuple[float, float] = _doc("AdamW betas", default=(0.9, 0.95))
    eps: float = _doc("AdamW epsilon", default=1e-8)
    weight_decay: float = _doc(
        "AdamW weight decay, applied to all parameters as in the reference", default=0.1
    )
    grad_clip: float = _doc("clip the global gradient norm to this value (0 disables clipping)", default=4.0)


@dataclass(kw_only=True, slots=True)
class ParallelConfig:
    """How the single-device model is wrapped (see train/parallelize.py for the order)."""

    mode: Literal["single", "ddp", "fsdp"] = _doc(
        "single process, DistributedDataParallel, or FSDP2 (fully_shard per block, then the root); "
        "ddp and fsdp need torchrun",
        default="single",
    )
    activation_checkpointing: bool = _doc("recompute each block's activations in backward", default=False)
    compile: bool = _doc("torch.compile each block (slow to start; rarely pays on CPU)", default=False)


@dataclass(kw_only=True, slots=True)
class CheckpointConfig:
    """When checkpoints are written and how many are kept."""

    every: int = _doc(
        "write a checkpoint every this many steps (and always after the last step)", default=500
    )
    keep: int = _doc("keep the newest this many checkpoints, delete older ones", default=3)
    init_from: str | None = _doc(
        "model folder (config.json + model.safetensors) to start from instead of a fresh init", default=None
    )


@dataclass(kw_only=True, slots=True)
class EvalConfig:
    """Periodic evaluation: validation loss on held-out shards, plus the task's own evaluation."""

    every: int = _doc("evaluate every this many steps (0 disables evaluation)", default=500)
    shards: str | list[str] | None = _doc("held-out shard folder(s) for validation loss", default=None)
    items: int = _doc("validation items: the first ones of eval.shards, split over ranks", default=64)
    seed: int = _doc("seed of the validation generator, so validation losses are comparable", default=1234)


@dataclass(kw_only=True, slots=True)
class LogConfig:
    """Metrics logging (rank 0 only): log.csv in out_dir, TensorBoard if installed."""

    every: int = _doc("write a metrics row every this many steps", default=1)
    tensorboard: bool = _doc(
        "also write TensorBoard events when the tensorboard package is installed", default=True
    )
    peak_flops: float | None = _doc(
        "peak FLOP/s of one device for MFU; null measures a matmul at startup", default=None
    )


@dataclass(kw_only=True, slots=True)
class RunConfig:
    """One training run."""

    out_dir: str = _doc("run folder: checkpoints/, log.csv, eval.csv, config.yaml")
    steps: int = _doc("optimizer steps in the whole run")
    kind: str = _doc(
        "what is trained: `lumos`, or `package.module:Class` for a Task of your own", default="lumos"
    )
    model: str | dict[str, Any] = _doc(
        "model preset name, or a dict of model config fields (read by the task)", default="tiny"
    )
    task: dict[str, Any] = _doc(
        "task options, validated by the task (e.g. masking for lumos)", default_factory=dict
    )
    seed: int = _doc("seed for init, data order and per-rank generators (rank r uses seed + r)", default=0)
    precision: Literal["fp32", "bf16", "auto"] = _doc(
        "fp32, bf16 autocast over fp32 master weights, or auto: bf16 where a bf16 matmul measured"
        " at start-up is faster than fp32 (GPUs, CPUs with AMX/AVX512-BF16), else fp32",
        default="fp32",
    )
    data: DataConfig = _doc("training data")
    optim: OptimConfig = _doc("optimizer and LR schedule", default_factory=OptimConfig)
    parallel: ParallelConfig = _doc("parallelism and memory", default_factory=ParallelConfig)
    checkpoint: CheckpointConfig = _doc("checkpointing", default_factory=CheckpointConfig)
    eval: EvalConfig = _doc("evaluation", default_factory=EvalConfig)
    log: LogConfig = _doc("logging", default_factory=LogConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, f"`steps` must be >= 1, got {self.steps}"),
            (
                self.optim.warmup_steps >= 0,
                f"`optim.warmup_steps` must be >= 0, got {self.optim.warmup_steps}",
            ),
            (
                self.optim.min_lr <= self.optim.lr,
                f"`optim.min_lr` ({self.optim.min_lr}) must be <= `optim.lr` ({self.optim.lr})",
            ),
            (self.checkpoint.every >= 1, f"`checkpoint.every` must be >= 1, got {self.checkpoint.every}"),
            (self.checkpoint.keep >= 1, f"`checkpoint.keep` must be >= 1, got {self.checkpoint.keep}"),
            (self.log.every >= 1, f"`log.every` must be >= 1, got {self.log.every}"),
            (self.eval.every >= 0, f"`eval.every` must be >= 0, got {self.eval.every}"),
        ]
        d = self.data
        for name in (
            "batch_size",
            "micro_batch_size",
            "image_batch_size",
            "image_micro_batch_size",
            "video_steps_per_image_step",
            "bucket_window",
        ):
            checks.append((getattr(d, name) >= 1, f"`data.{name}` must be >= 1, got {getattr(d, name)}"))
        for ok, message in checks:
            if not ok:
                raise ArvideoError(message)


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass `cls` from a plain dict, rejecting unknown keys and wrong types.

    Public so that tasks validate their own `task:` options the same way.
    """
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        raise ArvideoError(f"`{where or 'config'}` must be a mapping of keys to values, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ArvideoError(
            f"unknown config key `{prefix}{unknown[0]}`; valid keys{' in ' + where if where else ''}: "
            f"{', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    missing = [
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        doc = fields[missing[0]].metadata.get("doc")
        raise ArvideoError(f"config key `{prefix}{missing[0]}` is required" + (f" ({doc})" if doc else ""))
    values = {name: _coerce(value, hints[name], f"{prefix}{name}") for name, value in data.items()}
    return cls(**values)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against type `tp`, converting the spellings YAML leaves as strings."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except ArvideoError as err:
                errors.append(str(err))
        raise ArvideoError(errors[-1])
    if origin is Literal:
        if value not in args:
            raise ArvideoError(f"`{where}` must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ArvideoError(f"`{where}` must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is list:
        if not isinstance(value, list):
            raise ArvideoError(f"`{where}` must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ArvideoError(f"`{where}` must be a mapping, got {value!r}")
        return dict(value)
    if tp is float and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (bool, str) and isinstance(value, tp):
        return value
    raise ArvideoError(f"`{where}` must be {getattr(tp, '__name__', tp)}, got {value!r}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ArvideoError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ArvideoError(f"{path} is not valid YAML: {err}".replace("\n", " ")) from err
    if not isinstance(data, dict):
        raise ArvideoError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
    return data


def load_config(path: str | Path) -> RunConfig:
    """Load and validate a run config from YAML."""
    return from_dict(RunConfig, load_yaml(path))


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain data (tuples become lists), for config.yaml in the run folder."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " or ".join(f"`{a}`" for a in typing.get_args(tp))
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("None", "null").replace(" | ", " or ")


def config_reference(cls: type = RunConfig, where: str = "") -> str:
    """Markdown table of every config field: key, type, default, meaning."""
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"] if not where else []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{where}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            rows.append(f"| `{key}` | section | | {f.metadata['doc']} |")
            rows.extend(config_reference(hints[f.name], f"{key}.").splitlines())
            continue
        if f.default is not dataclasses.MISSING:
            default = f"`{json.dumps(f.default)}`"
        elif f.default_factory is not dataclasses.MISSING:
            default = f"`{json.dumps(f.default_factory())}`"
        else:
            default = "required"
        rows.append(f"| `{key}` | {_type_name(hints[f.name])} | {default} | {f.metadata['doc']} |")
    return "\n".join(rows)
