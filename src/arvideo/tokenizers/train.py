"""Training of the built-in tokenizers: the causal FSQ video tokenizer and the caption BPE.

`arvideo train CONFIG` with a config of kind `video` or `bpe` reads it (YAML or JSON) into
`VideoTrainConfig` or `BpeTrainConfig`. Video training renders shapes clips on the fly from a seeded
numpy Generator (no files), trains with L1 + L2 + an edge loss (L1 between the spatial gradients
of reconstruction and target, which keeps the flat shapes' borders sharp; no learned perceptual
network), shows progress and the loss, writes an atomic checkpoint every `checkpoint_every`
steps (model, optimizer, step, data RNG) and resumes from it exactly.

Run folder `out`: `checkpoint/` (latest training state), `model/` (the final model folder),
`metrics.json` (held-out PSNR and codebook usage of the final model).

    arvideo train configs/tokenizer-shapes.yaml           # -> runs/tokenizer-shapes/model
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.progress import progress
from arvideo.tokenizers import load_tokenizer
from arvideo.tokenizers.fsq import codebook_usage
from arvideo.tokenizers.losses import reconstruction_loss
from arvideo.tokenizers.video import CausalTokenizerConfig, CausalVideoTokenizer
from arvideo.train import optim
from arvideo.train.config import OptimConfig

log = logging.getLogger(__name__)


@dataclass
class VideoTrainConfig:
    """Every field of a video tokenizer training config (YAML/JSON keys have the same names).

    The built-in tokenizer's recipe, configs/tokenizer-shapes.yaml, sets every field it trains with.
    """

    kind: Literal["video"] = "video"
    out: str = "runs/tokenizer-shapes"  # run folder: checkpoint/, model/, metrics.json
    model: dict = field(default_factory=dict)  # CausalTokenizerConfig fields; omitted ones keep defaults
    seed: int = 0  # seeds weight init and the stream of training clips
    steps: int = 12000  # optimizer steps
    batch_size: int = 8  # clips per step
    size: int = 64  # frame side of the shapes clips, pixels
    clip_frames: int = 17  # frames rendered per clip (the world's default clip)
    window: int = 9  # frames per training sample, a random window of the clip (1 + tc*k keeps it exact)
    max_objects: int = 2  # objects per clip (1 or 2)
    lr: float = 1e-3  # peak AdamW learning rate (2e-3 diverged at batch 4-8)
    warmup: int = 200  # linear warmup steps
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max global gradient norm
    l1_weight: float = 0.0  # weight of the mean absolute pixel error
    l2_weight: float = 1.0  # weight of the mean squared pixel error
    edge_weight: float = 0.2  # weight of the L1 error of horizontal and vertical pixel differences
    foreground_weight: float = 10.0  # extra L1/L2 weight of pixels away from their frame's median colour
    saturation_weight: float = 1.0  # weight of FSQ.saturation: keeps latents where tanh still has a gradient
    bf16: bool = True  # bfloat16 autocast for the convs (CPU AMX/AVX512-BF16 or GPU); FSQ stays fp32
    compile: bool = False  # torch.compile the forward: ~3x faster CPU steps after a 1-3 min compile
    threads: int = 1  # torch CPU threads (keep small on a shared machine)
    log_every: int = 100  # steps between log lines
    checkpoint_every: int = 500  # steps between checkpoints
    eval_every: int = 1000  # steps between held-out PSNR checks (0 = only at the end)
    eval_clips: int = 32  # held-out clips for PSNR and codebook usage
    eval_seed: int = 1_000_003  # seed of the held-out clips (a stream never used in training)
    save_dtype: Literal["float16", "float32"] = "float16"  # storage dtype of the final weights
    init_from: str | None = None  # builtin:NAME or tokenizer folder whose weights start the run (same model)
    train_encoder: bool = True  # false: encoder and codes frozen, only the decoder learns (models trained
    #                             on the init_from tokenizer's tokens stay valid)

    def model_config(self) -> CausalTokenizerConfig:
        return CausalTokenizerConfig.from_dict(self.model)


@dataclass
class BpeTrainConfig:
    """A byte-level BPE trained on shapes captions (see `arvideo.tokenizers.text`)."""

    kind: Literal["bpe"] = "bpe"
    out: str = "runs/text-shapes"  # folder that receives tokenizer.json
    vocab_size: int = 512  # largest vocabulary incl. the 256 bytes and <s> (merges stop once words are whole)
    n_captions: int = 5000  # captions drawn from the shapes world (videos and images)
    seed: int = 0  # seed of the caption stream


def load_train_config(path: str | Path) -> VideoTrainConfig | BpeTrainConfig:
    """Read a YAML or JSON training config; unknown keys are errors, not silently ignored."""
    path = Path(path)
    if not path.is_file():
        raise ArvideoError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}  # YAML is a superset of JSON
    except yaml.YAMLError as err:
        raise ArvideoError(f"{path} is not valid YAML/JSON: {err}") from None
    if not isinstance(raw, dict):
        raise ArvideoError(f"{path} must hold a mapping of config fields")
    kinds = {"video": VideoTrainConfig, "bpe": BpeTrainConfig}
    cls = kinds.get(raw.get("kind", "video"))
    if cls is None:
        raise ArvideoError(f"{path}: kind must be one of {sorted(kinds)}, got {raw['kind']!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ArvideoError(f"{path}: unknown fields {unknown}; known fields are {sorted(known)}")
    return cls(**raw)


# ---------------------------------------------------------------------------------------------
# data


def shapes_batch(rng: np.random.Generator, n: int, cfg: VideoTrainConfig) -> torch.Tensor:
    """n shapes clips, each cut to a random window of `cfg.window` frames: uint8 [n, 3, window, S, S]."""
    from arvideo.data.shapes import make_clip

    clips = []
    for _ in range(n):
        video = make_clip(
            rng, "video", size=cfg.size, n_frames=cfg.clip_frames, max_objects=cfg.max_objects
        ).video
        start = int(rng.integers(0, cfg.clip_frames - cfg.window + 1))
        clips.append(video[start : start + cfg.window])  # [window, S, S, 3]
    return torch.stack(clips).permute(0, 4, 1, 2, 3).contiguous()  # [n, 3, window, S, S]


def heldout_clips(cfg: VideoTrainConfig, n: int | None = None) -> torch.Tensor:
    """Full-length held-out clips from `eval_seed`: uint8 [n, 3, clip_frames, S, S]."""
    from arvideo.data.shapes import make_clip

    rng = np.random.default_rng(cfg.eval_seed)
    videos = [
        make_clip(rng, "video", size=cfg.size, n_frames=cfg.clip_frames, max_objects=cfg.max_objects).video
        for _ in range(n or cfg.eval_clips)
    ]
    return torch.stack(videos).permute(0, 4, 1, 2, 3).contiguous()  # [n, 3, T, S, S]


# ---------------------------------------------------------------------------------------------
# losses and metrics


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 (rounded)."""
    return ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-video PSNR in dB between uint8 videos [B, ...] (peak 255)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)  # [B]
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


@torch.no_grad()
def evaluate_reconstruction(tokenizer, videos: torch.Tensor, batch_size: int = 8) -> dict[str, float]:
    """Round-trip uint8 videos [N, 3, T, H, W] through a tokenizer: mean/min PSNR and codebook usage."""
    scores, all_ids = [], []
    for i in range(0, len(videos), batch_size):
        x = videos[i : i + batch_size]
        ids = tokenizer.encode(x)
        recon = to_uint8(tokenizer.decode(ids)[:, :, : x.shape[2]])
        scores.append(psnr(recon, x))
        all_ids.append(ids.reshape(-1))
    scores_t = torch.cat(scores)
    usage = codebook_usage(torch.cat(all_ids), tokenizer.codebook_size)
    return {"psnr": float(scores_t.mean()), "psnr_min": float(scores_t.min()), **usage}


# ---------------------------------------------------------------------------------------------
# checkpoints: folders of safetensors + JSON, never pickles


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = opt.state_dict()
    tensors = {f"{i}.{k}": v for i, s in state["state"].items() for k, v in s.items()}
    return tensors, {"param_groups": state["param_groups"]}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    folder: Path, model, opt, step: int, rng: np.random.Generator, cfg: VideoTrainConfig
) -> None:
    opt_tensors, opt_meta = _optimizer_tensors(opt)
    with atomic_write(folder, overwrite=True, is_dir=True) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        state = {
            "step": step,
            "rng": rng.bit_generator.state,
            "optimizer": opt_meta,
            "config": dataclasses.asdict(cfg),
        }
        (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")


def load_checkpoint(folder: Path, model, opt, cfg: VideoTrainConfig) -> tuple[int, np.random.Generator]:
    state = json.loads((folder / "state.json").read_text())
    if state["config"]["model"] != cfg.model:
        raise ArvideoError(
            f"the checkpoint in {folder} was trained with model {state['config']['model']}, the config now "
            f"says {cfg.model}; restore the config or start a new run folder"
        )
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    _load_optimizer(opt, load_file(str(folder / "optimizer.safetensors")), state["optimizer"])
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    return state["step"], rng


# ---------------------------------------------------------------------------------------------
# training


def start_from(model: CausalVideoTokenizer, name_or_path: str) -> None:
    """Copy the weights of a trained tokenizer of the same architecture into `model`."""
    source = load_tokenizer(name_or_path)
    if not isinstance(source, CausalVideoTokenizer) or source.config != model.config:
        raise ArvideoError(
            f"init_from {name_or_path!r} is not a tokenizer with this config's model {model.config.to_dict()}"
        )
    model.load_state_dict(source.state_dict())


def lr_at(step: int, cfg: VideoTrainConfig) -> float:
    """The trainer's warmup + cosine schedule (train/optim.py), down to lr * min_lr_ratio."""
    schedule = OptimConfig(lr=cfg.lr, min_lr=cfg.lr * cfg.min_lr_ratio, warmup_steps=cfg.warmup)
    return optim.lr_at(step, schedule, cfg.steps)


def train_video_tokenizer(cfg: VideoTrainConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Train (or resume) a causal FSQ tokenizer on shapes clips; returns the final model folder."""
    out = Path(cfg.out)
    ckpt_dir, model_dir = out / "checkpoint", out / "model"
    if resume and not (ckpt_dir / "state.json").is_file():
        raise ArvideoError(
            f"nothing to resume: {ckpt_dir} has no checkpoint; drop --resume to start a new run"
        )
    if not resume and not overwrite and (ckpt_dir.exists() or model_dir.exists()):
        raise ArvideoError(
            f"{out} already holds a run; pass --resume to continue it or --overwrite to start over"
        )
    if cfg.window > cfg.clip_frames or cfg.window < 1:
        raise ArvideoError(f"window must be in [1, clip_frames={cfg.clip_frames}], got {cfg.window}")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)

    model = CausalVideoTokenizer(cfg.model_config())
    model.init_weights(torch.Generator().manual_seed(cfg.seed))
    if cfg.init_from:
        start_from(model, cfg.init_from)
    model.encoder.requires_grad_(cfg.train_encoder)
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    step, rng = 0, np.random.default_rng(cfg.seed)
    if resume:
        step, rng = load_checkpoint(ckpt_dir, model, opt, cfg)
        log.info("resumed %s at step %d", ckpt_dir, step)
    log.info(
        "tokenizer: %.2fM parameters (%.2fM trained), codebook %d, %d steps",
        sum(p.numel() for p in model.parameters()) / 1e6, sum(p.numel() for p in trained) / 1e6,
        model.codebook_size, cfg.steps,
    )  # fmt: skip

    heldout = heldout_clips(cfg)
    forward = torch.compile(model) if cfg.compile else model
    t0, clips_seen = time.perf_counter(), 0
    model.train()
    start, last_saved = step, step
    try:
        for step in progress(range(start, cfg.steps), desc="train tokenizer", total=cfg.steps - start):
            x = shapes_batch(rng, cfg.batch_size, cfg).float() / 127.5 - 1  # [B, 3, window, S, S]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                recon, _, latent = forward(x)
            parts = reconstruction_loss(
                recon[:, :, : x.shape[2]],
                x,
                l1=cfg.l1_weight,
                l2=cfg.l2_weight,
                edge=cfg.edge_weight,
                foreground=cfg.foreground_weight,
            )
            parts["saturation"] = model.fsq.saturation(latent)
            parts["loss"] = parts["loss"] + cfg.saturation_weight * parts["saturation"]
            if not torch.isfinite(parts["loss"]):
                raise ArvideoError(
                    f"loss became {parts['loss'].item()} at step {step}; lower lr or grad_clip"
                )
            opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            torch.nn.utils.clip_grad_norm_(trained, cfg.grad_clip)
            opt.step()
            clips_seen += cfg.batch_size
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                rate = clips_seen / (time.perf_counter() - t0)
                log.info(
                    "step %d/%d loss %.4f l1 %.4f l2 %.5f edge %.4f saturation %.4f lr %.2e %.1f clips/s",
                    done, cfg.steps, parts["loss"].item(), parts["l1"].item(), parts["l2"].item(),
                    parts["edge"].item(), parts["saturation"].item(), lr_at(step, cfg), rate,
                )  # fmt: skip
            if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                save_checkpoint(ckpt_dir, model, opt, done, rng, cfg)
                last_saved = done
            if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
                _log_eval(model, heldout, done)
    except KeyboardInterrupt:
        log.info(
            "interrupted: the last checkpoint (step %d) is in %s; continue with --resume",
            last_saved,
            ckpt_dir,
        )
        raise
    save_checkpoint(ckpt_dir, model, opt, cfg.steps, rng, cfg)
    metrics = _log_eval(model, heldout, cfg.steps)
    model.save(model_dir, overwrite=True, dtype=getattr(torch, cfg.save_dtype))
    with atomic_write(out / "metrics.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("model saved to %s", model_dir)
    return model_dir


def _log_eval(model: CausalVideoTokenizer, heldout: torch.Tensor, step: int) -> dict[str, float]:
    model.eval()
    metrics = evaluate_reconstruction(model, heldout)
    model.train()
    log.info(
        "eval step %d: held-out PSNR %.2f dB (min %.2f), codes used %d (%.1f%%), perplexity %.0f",
        step, metrics["psnr"], metrics["psnr_min"], metrics["codes_used"], 100 * metrics["fraction_used"],
        metrics["perplexity"],
    )  # fmt: skip
    return metrics


def train_from_config(path: str | Path, resume: bool = False, overwrite: bool = False) -> Path:
    """Entry point of `arvideo train CONFIG` for tokenizer kinds: dispatch on the config's `kind`."""
    cfg = load_train_config(path)
    if isinstance(cfg, BpeTrainConfig):
        from arvideo.tokenizers.text import train_shapes_bpe

        return train_shapes_bpe(cfg, overwrite=overwrite or resume)
    return train_video_tokenizer(cfg, resume=resume, overwrite=overwrite)
