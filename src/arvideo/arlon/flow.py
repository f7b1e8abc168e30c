"""Rectified flow: the training loss and an Euler sampler with a diffusers-style scheduler.

Convention (OpenSora-1.2 / SD3): with sigma in [0, 1] (0 = data, 1 = noise),
    x_sigma = (1 - sigma) * x0 + sigma * noise,   velocity v = d x / d sigma = noise - x0,
and models take the timestep t = sigma * num_train_timesteps. Sampling integrates from sigma = 1
to 0 with Euler steps x <- x + (sigma_next - sigma) * v; a model that knows the exact velocity
of a straight path lands on x0 in any number of steps.

The scheduler follows the diffusers contract: `set_timesteps(n)`, loop over `.timesteps`,
`step(model_output, t, sample, generator=None)` -> next sample; its constructor arguments are
saved to `scheduler_config.json`. Models never import this file: the sampler calls a model
through a plain function `velocity_fn(x, t, drop_text) -> v`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Self

import torch

from arvideo.arlon.pretrained import config_from_dict, read_json, write_json
from arvideo.errors import ArvideoError
from arvideo.files import atomic_write

SCHEDULER_CONFIG_NAME = "scheduler_config.json"

VelocityFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]  # (x, t [B], drop_text) -> v


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """OpenSora/SD3 timestep shift s' = r s / (1 + (r - 1) s): r > 1 spends more steps at high noise."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Point on the straight path at sigma [B] (broadcast over the other axes)."""
    s = sigma.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * noise


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class FlowLossConfig:
    timestep_sampling: Literal["logit_normal", "uniform"] = "logit_normal"
    logit_mean: float = 0.0  # sigma = sigmoid(N(mean, std^2)) for logit_normal (SD3, OpenSora-1.2)
    logit_std: float = 1.0
    shift: float = 1.0  # timestep shift applied to the drawn sigmas (match the scheduler's)
    num_train_timesteps: int = 1000

    def __post_init__(self) -> None:
        if self.timestep_sampling not in ("logit_normal", "uniform"):
            raise ArvideoError(
                "FlowLossConfig.timestep_sampling must be 'logit_normal' or 'uniform', "
                f"got {self.timestep_sampling!r}"
            )
        if self.shift <= 0 or self.logit_std <= 0:
            raise ArvideoError(
                f"FlowLossConfig needs shift > 0 and logit_std > 0, got {self.shift}, {self.logit_std}"
            )


def sample_sigmas(
    n: int, config: FlowLossConfig, generator: torch.Generator | None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Training noise levels sigma [n] in (0, 1)."""
    if config.timestep_sampling == "uniform":
        sigmas = torch.rand(n, generator=generator, device=device)
    else:
        normal = torch.randn(n, generator=generator, device=device)
        sigmas = torch.sigmoid(config.logit_mean + config.logit_std * normal)
    return shift_sigmas(sigmas, config.shift)


def flow_loss(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    config: FlowLossConfig,
    generator: torch.Generator | None,
    frame_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rectified-flow MSE between model_fn(x_sigma, t) and the velocity noise - x0.

    x0 [B, C, T, H, W] clean latents; frame_mask [B, T] bool selects the frames that count
    (False for clean reference frames, which the model does not denoise).
    """
    b = x0.shape[0]
    sigma = sample_sigmas(b, config, generator, x0.device)  # [B]
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    pred = model_fn(interpolate(x0, noise, sigma), sigma * config.num_train_timesteps)
    err = (pred.float() - (noise - x0).float()).square()  # [B, C, T, H, W]
    if frame_mask is None:
        return err.mean()
    weight = frame_mask[:, None, :, None, None].expand_as(err).float()
    return (err * weight).sum() / weight.sum().clamp_min(1.0)


# ---------------------------------------------------------------------------------------------
# sampling


@dataclass
class FlowSchedulerConfig:
    """The scheduler's constructor arguments, as saved in scheduler_config.json."""

    num_train_timesteps: int = 1000
    shift: float = 1.0  # timestep shift (1 = none); OpenSora derives it from resolution and length

    def __post_init__(self) -> None:
        if self.num_train_timesteps < 1 or self.shift <= 0:
            raise ArvideoError(
                "scheduler needs num_train_timesteps >= 1 and shift > 0, "
                f"got {self.num_train_timesteps}, {self.shift}"
            )


class FlowMatchEulerScheduler:
    """Euler integration of a rectified flow from noise (sigma = 1) to data (sigma = 0)."""

    def __init__(self, num_train_timesteps: int = 1000, shift: float = 1.0):
        self.config = FlowSchedulerConfig(num_train_timesteps, shift)
        self.sigmas = torch.empty(0)
        self.timesteps = torch.empty(0)
        self._index = 0

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str = "cpu") -> None:
        """Prepare `num_inference_steps` Euler steps; `.timesteps` [n] are the values to pass to the model."""
        n = num_inference_steps
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ArvideoError(f"number of denoising steps must be an integer >= 1, got {n!r}")
        sigmas = torch.linspace(1.0, 0.0, num_inference_steps + 1, dtype=torch.float64)
        self.sigmas = shift_sigmas(sigmas, self.config.shift).float().to(device)  # [n+1], ends at exactly 0
        self.timesteps = self.sigmas[:-1] * self.config.num_train_timesteps  # [n]
        self._index = 0

    def _step_index(self, timestep: float | torch.Tensor) -> int:
        if len(self.timesteps) == 0:
            raise ArvideoError("call scheduler.set_timesteps(n) before scheduler.step(...)")
        as_index = isinstance(timestep, torch.Tensor) and not timestep.is_floating_point()
        if isinstance(timestep, int) or as_index:
            raise ArvideoError(
                "scheduler.step takes a timestep value from scheduler.timesteps, not an integer index; "
                "pass `t` from `for t in scheduler.timesteps`"
            )
        value = torch.as_tensor(timestep).to(self.timesteps).flatten()[0]
        if self._index < len(self.timesteps) and self.timesteps[self._index] == value:
            return self._index
        hits = (self.timesteps == value).nonzero()
        if len(hits) == 0:
            raise ArvideoError(f"timestep {float(value)} is not in scheduler.timesteps; pass a value from it")
        return int(hits[0])

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One Euler step from `timestep` to the next one; returns the next sample (same dtype as `sample`).

        Euler is deterministic, so `generator` is accepted for the common contract and unused.
        """
        i = self._step_index(timestep)
        ds = self.sigmas[i + 1] - self.sigmas[i]
        prev = sample.float() + ds * model_output.float()  # fp32 accumulation
        self._index = i + 1
        return prev.to(sample.dtype)

    def save_pretrained(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        with atomic_write(path, overwrite=overwrite, is_dir=True) as tmp:
            data = {"scheduler_type": "flow_match_euler", **asdict(self.config)}
            write_json(tmp / SCHEDULER_CONFIG_NAME, data)
        return Path(path)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> Self:
        data = read_json(Path(path) / SCHEDULER_CONFIG_NAME)
        if data.pop("scheduler_type", None) != "flow_match_euler":
            raise ArvideoError(f"{path} does not hold a flow_match_euler scheduler config")
        config = config_from_dict(FlowSchedulerConfig, data, str(Path(path) / SCHEDULER_CONFIG_NAME))
        return cls(**asdict(config))


def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: move from the text-dropped prediction past the conditional one."""
    return uncond + scale * (cond - uncond)


def euler_sample(
    velocity_fn: VelocityFn,
    noise: torch.Tensor,
    scheduler: FlowMatchEulerScheduler,
    num_steps: int,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integrate from `noise` (sigma = 1) to a clean sample with `num_steps` Euler steps.

    velocity_fn(x, t [B], drop_text) returns the model's velocity; with guidance_scale != 1 it is
    called twice per step (text kept, text dropped) and mixed by `guide`; at 1 only the
    conditional branch runs.
    """
    scheduler.set_timesteps(num_steps, device=noise.device)
    x = noise
    for t in scheduler.timesteps:
        tt = t.expand(x.shape[0])  # [B]
        v = velocity_fn(x, tt, False)
        if guidance_scale != 1.0:
            v = guide(v, velocity_fn(x, tt, True), guidance_scale)
        x = scheduler.step(v, t, x, generator=generator)
    return x
