"""Training tasks of the ARLON stages for the generic trainer (`arvideo train CONFIG`).

| `kind:` | trains | data (`arlon.shards`) | loss |
| --- | --- | --- | --- |
| `arlon_vae` | `VideoVAE` | frames; random windows of `task.window` frames | recon (as the tokenizer) + KL |
| `arlon_vq` | `LatentVQ` (`model.preset` fine or coarse) | latents | MSE(F, X) + commitment |
| `arlon_dit` | `ArlonDiT` | latents + captions | rectified flow on the non-reference frames |
| `lumos` | the AR stage, a `LumosDecoder` | codes (fine latent-VQ codes) | AR-DF, unchanged |

ARLON's DiT recipe (reference §1, §5) is two `arlon_dit` runs: first the DiT alone
(`model.injection: false`, every weight trains); then `task.base` names that model, the backbone
is frozen and only `ArlonDiT.injection_parameters()` train, on coarse latents F reconstructed by
the frozen `task.coarse_vq` (so the DiT learns to treat F as a noisy hint). Both runs drop the
caption with probability `task.text_drop` (for CFG) and give a random share of the samples clean
reference frames (`task.reference_prob`, up to `task.max_reference` leading latent frames, which
the loss skips), as the long-video loop does for every segment after the first.

Randomness: `collate` draws everything from the rank's generator (windows, text dropout,
reference masks) plus one seed per micro-batch, from which `loss` makes the device generator for
the noise, the timesteps and uncertainty sampling; so a batch fixes its loss and resume is exact.
Every model folder is the `PretrainedModel` one (config.json with `model_type` + safetensors).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from arvideo.arlon import causal_conv
from arvideo.arlon.dit import ArlonDiT, DiTConfig
from arvideo.arlon.flow import FlowLossConfig, flow_loss
from arvideo.arlon.latent_vq import LatentVQ, LatentVQConfig, coarse_vq_config, fine_vq_config, vq_loss
from arvideo.arlon.pretrained import PretrainedModel, config_from_dict, config_to_dict
from arvideo.arlon.shards import FrameSource, LatentSource, check_shards, item_frames, item_latent
from arvideo.arlon.vae import VAEConfig, VideoVAE, vae_loss
from arvideo.errors import ArvideoError
from arvideo.tokenizers import conv_stack
from arvideo.train.config import RunConfig, from_dict
from arvideo.train.data import ShardDataset, TokenItem, pad_sequences, read_meta
from arvideo.train.task import LossOutput, Task

SEED_RANGE = 2**62  # per-micro-batch seeds for the device generator

# Named sizes per model; `model: {preset: NAME, <field>: value}` overrides single fields.
VAE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(channels=(8, 8, 8), decoder_blocks=1),  # tests and smoke runs
    "small": {},  # VAEConfig defaults: the built-in tokenizer's stack, 1.57 M parameters
}
VQ_PRESETS: dict[str, dict[str, Any]] = {
    "tiny-fine": dict(channels=(8, 16), norm_groups=4, codebook_size=64, code_dim=4),
    "tiny-coarse": dict(channels=(8, 16, 16), norm_groups=4, codebook_size=32, code_dim=4),
    "fine": config_to_dict(fine_vq_config()),  # 1x2x2 over the latent: the AR model's codes
    "coarse": config_to_dict(coarse_vq_config()),  # 1x4x4: the DiT's training condition
}
DIT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=32, depth=2, num_heads=2),
    # 5.35 M parameters, 0.34 M of them injection; 1x2x2 patches as OpenSora's STDiT: a third of the step
    # time of 1x1x1 patches at d=96 on this CPU (0.66 vs 1.45 s per batch of 32 clips, one thread)
    "small": dict(hidden_size=160, depth=6, num_heads=5, patch_size=2),
}


def build_config(
    cls: type,
    model: str | dict[str, Any],
    presets: dict[str, dict[str, Any]],
    base: dict[str, Any] | None = None,
) -> Any:
    """A model config from the run's `model:` entry: a preset name, or {preset, <fields>}.

    `base` (a model folder's config) replaces the preset; the entry's fields still override it.
    """
    spec = {"preset": model} if isinstance(model, str) else dict(model)
    preset = spec.pop("preset", None)
    if base is not None:
        if preset is not None:
            raise ArvideoError("`model.preset` and `task.base` both set the architecture; keep one")
        values = dict(base)
    else:
        preset = preset or next(iter(presets))
        if preset not in presets:
            raise ArvideoError(f"unknown model preset {preset!r}; use one of {', '.join(presets)}")
        values = dict(presets[preset])
    fields = [f.name for f in dataclasses.fields(cls)]
    for key in spec:
        if key not in fields:
            raise ArvideoError(f"unknown config key `model.{key}`; valid keys: preset, {', '.join(fields)}")
    return config_from_dict(cls, {**config_to_dict(cls()), **values, **spec}, "the run config's `model:`")


def forward_flops(fn: Callable[[], Any]) -> float:
    """FLOPs of one forward (counted by torch), times 3 for forward + backward."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return 3.0 * counter.get_total_flops()


def batch_seed(generator: torch.Generator) -> torch.Tensor:
    """A seed for the device generator `loss` builds: the micro-batch's randomness comes from the rank's."""
    return torch.randint(SEED_RANGE, (), generator=generator)


def device_generator(seed: torch.Tensor) -> torch.Generator:
    return torch.Generator(seed.device).manual_seed(int(seed))


class ArlonTask(Task):
    """What the three ARLON tasks share: a `PretrainedModel` built from one config dataclass."""

    model_class: ClassVar[type[PretrainedModel]]
    kind: ClassVar[str]

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.meta = read_meta(config.data.shards)
        self.model_cfg: Any = None  # set by the subclass
        self.flops_per_item = 0.0  # set by build_model (measured once on the first item's shape)

    def first_item(self) -> TokenItem:
        return ShardDataset(self.config.data.shards)[0]

    def model_config(self) -> dict[str, Any]:
        return {"model_type": self.model_class.model_type, **config_to_dict(self.model_cfg)}


# ---------------------------------------------------------------------------------------------
# video VAE


@dataclass(kw_only=True)
class VAEOptions:
    """The `task:` section for `kind: arlon_vae`."""

    window: int = 9  # pixel frames per sample, a random window of the clip (1 + tc*k); 0: the whole clip


class VAETask(ArlonTask):
    """`kind: arlon_vae`: the causal KL video VAE on frame shards."""

    model_class = VideoVAE
    kind = "arlon_vae"

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        check_shards(self.meta, FrameSource, self.kind)
        self.options = from_dict(VAEOptions, config.task, "task")
        self.model_cfg = build_config(VAEConfig, config.model, VAE_PRESETS)
        w, tc = self.options.window, self.model_cfg.temporal_compression
        if w < 0 or (w and (w - 1) % tc) or w > self.meta["frames"]:
            raise ArvideoError(
                f"`task.window` must be 0 (whole clips) or 1 + {tc}k frames, at most the shards' "
                f"{self.meta['frames']}; got {w}"
            )

    def build_model(self) -> nn.Module:
        model = VideoVAE(self.model_cfg)
        conv_stack.init_autoencoder(model.encoder, model.decoder)  # as the video tokenizer starts
        frames = self.window(item_frames(self.first_item()), torch.Generator())  # [T, H, W, 3]
        x = frames.permute(3, 0, 1, 2)[None]  # [1, 3, T, H, W]
        self.flops_per_item = forward_flops(lambda: model(x, torch.Generator().manual_seed(0)))
        return model

    def blocks(self, model: nn.Module) -> list[nn.Module]:
        return [m for m in model.modules() if isinstance(m, conv_stack.ResBlock)]

    def window(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random window of `task.window` frames (the whole clip for 0)."""
        w = self.options.window or len(frames)
        start = int(torch.randint(len(frames) - w + 1, (), generator=generator))
        return frames[start : start + w]

    def collate(self, items: list[TokenItem], generator: torch.Generator) -> dict[str, torch.Tensor]:
        video = torch.stack([self.window(item_frames(it), generator) for it in items])  # [B, T, H, W, 3]
        return {"video": video.permute(0, 4, 1, 2, 3).contiguous(), "seed": batch_seed(generator)}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        video = batch["video"]  # uint8 [B, 3, T, H, W]
        recon, posterior = model(video, device_generator(batch["seed"]))
        parts = vae_loss(video, recon, posterior, self.model_cfg)
        b = video.shape[0]
        return LossOutput(
            loss_sum=parts["loss"] * b, n_targets=torch.tensor(b), n_tokens=b * video.shape[2],
            flops=self.flops_per_item * b,
            metrics={name: (parts[name] * b, torch.tensor(b)) for name in ("recon", "kl")},
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# latent VQ-VAEs


@dataclass(kw_only=True)
class VQOptions:
    """The `task:` section for `kind: arlon_vq`."""

    restart_dead_codes: bool = True  # codes unused for a while restart from random encoder outputs


class VQTask(ArlonTask):
    """`kind: arlon_vq`: a latent VQ-VAE (fine or coarse) on latent shards."""

    model_class = LatentVQ
    kind = "arlon_vq"

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        check_shards(self.meta, LatentSource, self.kind)
        self.options = from_dict(VQOptions, config.task, "task")
        self.model_cfg = build_config(LatentVQConfig, config.model, VQ_PRESETS)

    def build_model(self) -> nn.Module:
        model = LatentVQ(self.model_cfg)
        latent = item_latent(self.first_item(), self.model_cfg.latent_channels)[None]  # [1, C, T, h, w]
        self.flops_per_item = forward_flops(lambda: model.eval()(latent))
        return model.train()

    def blocks(self, model: nn.Module) -> list[nn.Module]:
        return [m for m in model.modules() if isinstance(m, causal_conv.ResBlock)]

    def collate(self, items: list[TokenItem], generator: torch.Generator) -> dict[str, torch.Tensor]:
        latent = torch.stack([item_latent(it, self.model_cfg.latent_channels) for it in items])
        return {"latent": latent, "seed": batch_seed(generator)}  # latent [B, C, T, h, w]

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        latent = batch["latent"]
        restart = device_generator(batch["seed"]) if self.options.restart_dead_codes else None
        parts = vq_loss(latent, model(latent, restart), self.model_cfg.codebook_size)
        b = latent.shape[0]
        return LossOutput(
            loss_sum=parts["loss"] * b, n_targets=torch.tensor(b), n_tokens=b * latent.shape[2],
            flops=self.flops_per_item * b,
            metrics={name: (parts[name] * b, torch.tensor(b)) for name in ("recon", "vq", "perplexity")},
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# DiT


@dataclass(kw_only=True)
class DiTOptions:
    """The `task:` section for `kind: arlon_dit`."""

    base: str | None = None  # DiT folder to start from; its backbone is frozen, the injection branch trains
    coarse_vq: str | None = None  # latent VQ-VAE folder whose reconstructions are the condition F
    text_drop: float = 0.1  # probability of training a sample without its caption (for CFG)
    reference_prob: float = 0.5  # probability that a sample starts with clean reference frames
    max_reference: int = 1  # reference frames drawn uniformly from 1..max_reference latent frames
    timestep_sampling: Literal["logit_normal", "uniform"] = "logit_normal"  # training noise levels
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 1.0  # timestep shift; match the scheduler's


class DiTTask(ArlonTask):
    """`kind: arlon_dit`: the DiT alone, or its ARLON injection branch on a frozen backbone."""

    model_class = ArlonDiT
    kind = "arlon_dit"

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        check_shards(self.meta, LatentSource, self.kind)
        o = self.options = from_dict(DiTOptions, config.task, "task")
        self.flow = FlowLossConfig(o.timestep_sampling, o.logit_mean, o.logit_std, o.shift)
        self.base = ArlonDiT.from_pretrained(o.base) if o.base else None
        self.model_cfg = build_config(
            DiTConfig, config.model, DIT_PRESETS,
            base=None if self.base is None else config_to_dict(self.base.config),
        )  # fmt: skip
        c = self.model_cfg
        checks = [
            (0 <= o.text_drop <= 1 and 0 <= o.reference_prob <= 1,
             f"`task.text_drop` and `task.reference_prob` must be in [0, 1], "
             f"got {o.text_drop} and {o.reference_prob}"),
            (o.max_reference >= 1, f"`task.max_reference` must be >= 1, got {o.max_reference}"),
            (c.injection == (o.coarse_vq is not None),
             "`task.coarse_vq` is needed exactly when `model.injection` is true (it makes the condition F)"),
            (self.base is None or (c.injection and not self.base.config.injection),
             "`task.base` must be a DiT trained without injection, and this run must turn injection on"),
            ((self.meta.get("text_vocab_size") or 0) <= c.text_vocab_size,
             f"the shards' text vocabulary ({self.meta.get('text_vocab_size')}) is larger than "
             f"`model.text_vocab_size` ({c.text_vocab_size})"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ArvideoError(message)
        self.coarse_vq = LatentVQ.from_pretrained(o.coarse_vq) if o.coarse_vq else None
        if self.coarse_vq is not None and self.coarse_vq.config.latent_channels != c.latent_channels:
            raise ArvideoError(
                f"`task.coarse_vq` works on {self.coarse_vq.config.latent_channels} latent channels, "
                f"the DiT on {c.latent_channels}"
            )

    def build_model(self) -> nn.Module:
        model = ArlonDiT(self.model_cfg)
        if self.base is not None:
            self._load_backbone(model)
        batch = self.collate([self.first_item()], torch.Generator().manual_seed(0))
        self.flops_per_item = forward_flops(lambda: self._velocity(model.eval(), batch, batch["latent"],
                                                                   torch.zeros(1), None))  # fmt: skip
        return model.train()

    def _load_backbone(self, model: ArlonDiT) -> None:
        """The base DiT's weights into everything but the injection branch, which alone trains."""
        branch = {id(p) for p in model.injection_parameters()}
        names = {n for n, p in model.named_parameters() if id(p) in branch}
        missing, unexpected = model.load_state_dict(self.base.state_dict(), strict=False)
        if unexpected or set(missing) - names:
            raise ArvideoError(
                f"`task.base` does not fit the model: missing {sorted(set(missing) - names)[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        for p in model.parameters():
            p.requires_grad_(id(p) in branch)

    def blocks(self, model: nn.Module) -> list[nn.Module]:
        return list(model.blocks)

    @torch.no_grad()
    def collate(self, items: list[TokenItem], generator: torch.Generator) -> dict[str, torch.Tensor]:
        c, o = self.model_cfg, self.options
        latent = torch.stack([item_latent(it, c.latent_channels) for it in items])  # [B, C, T, h, w]
        b, t = latent.shape[0], latent.shape[2]
        too_long = [len(it.text) for it in items if len(it.text) > c.max_text_len]
        if too_long:
            raise ArvideoError(
                f"a caption has {too_long[0]} tokens, the DiT takes at most {c.max_text_len}; "
                "raise `model.max_text_len`"
            )
        text, lengths = pad_sequences([np.array(it.text) for it in items], pad_value=0)  # [B, L], [B]
        n_ref = torch.randint(1, min(o.max_reference, t - 1) + 1, (b,), generator=generator)  # [B]
        n_ref = n_ref * (torch.rand(b, generator=generator) < o.reference_prob)
        batch = {
            "latent": latent,
            "text_ids": text,
            "text_mask": torch.arange(text.shape[1])[None] < lengths[:, None],  # [B, L]
            "drop_text": torch.rand(b, generator=generator) < o.text_drop,  # [B]
            "reference_mask": torch.arange(t)[None] < n_ref[:, None],  # [B, T]
            "seed": batch_seed(generator),
        }
        if self.coarse_vq is not None:  # the condition F: the frozen coarse VQ-VAE's reconstruction
            batch["coarse"] = self.coarse_vq.decode(self.coarse_vq.encode(latent))
        return batch

    @staticmethod
    def _velocity(
        model: nn.Module,
        batch: dict[str, torch.Tensor],
        x: torch.Tensor,
        t: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return model(x, t, batch["text_ids"], batch["text_mask"], coarse=batch.get("coarse"),
                     reference=batch["latent"], reference_mask=batch["reference_mask"],
                     drop_text=batch["drop_text"], generator=generator)  # fmt: skip

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        x0, targets = batch["latent"], ~batch["reference_mask"]  # [B, C, T, h, w], [B, T]
        generator = device_generator(batch["seed"])
        mean = flow_loss(lambda x, t: self._velocity(model, batch, x, t, generator), x0, self.flow,
                         generator, frame_mask=targets)  # fmt: skip
        n = targets.sum() * (x0.shape[1] * x0.shape[3] * x0.shape[4])  # target latent values
        b = x0.shape[0]
        return LossOutput(loss_sum=mean * n, n_targets=n, n_tokens=b * x0[0, 0].numel(),
                          flops=self.flops_per_item * b)  # fmt: skip
