"""Continuous video VAE: the latent space the ARLON DiT denoises in.

ARLON runs its DiT on the latent of a frozen 3-D VAE (OpenSora-1.2's, 4 channels, 4x8x8
compression; reference §4). arvideo ships its own, small enough for CPU:
- the encoder and decoder of the built-in video tokenizer (`tokenizers.conv_stack`): causal in time
  (first frame alone, then groups of `temporal_compression` frames), so 17 frames -> 5 latent frames
  and long videos decode segment by segment, with time compressed by space-time patchify;
- KL-regularised (diagonal Gaussian posterior, standard-normal prior), so the latent stays smooth
  enough for diffusion;
- a per-channel shift/scale (`latent_shift`, `latent_scale`, measured after training with
  `set_latent_stats`) maps raw latents to roughly unit variance for the DiT, like OpenSora's
  per-channel normalisation.

Videos are float [B, 3, T, H, W] in [-1, 1] (uint8 is accepted and converted).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from arvideo.arlon.causal_conv import check_video_shape
from arvideo.arlon.pretrained import PretrainedModel
from arvideo.errors import ArvideoError
from arvideo.tokenizers.conv_stack import Decoder, Encoder, patchify, unpatchify
from arvideo.tokenizers.losses import reconstruction_loss

LOGVAR_RANGE = (-30.0, 20.0)  # keeps exp(logvar) finite in fp32 early in training


@dataclass
class VAEConfig:
    in_channels: int = 3
    latent_channels: int = 4
    temporal_compression: int = 4  # frames per latent frame after the first
    patch_size: int = 2  # tc x p x p pixels -> channels; spatial compression p * 2**(len(channels) - 1)
    channels: tuple[int, ...] = (32, 64, 96)  # conv width per resolution level, finest first
    encoder_blocks: int = 1  # residual blocks per level
    decoder_blocks: int = 2
    temporal_kernel: int = 2  # causal kernel along latent time inside residual blocks
    kl_weight: float = 1e-4  # mean per-element KL weight, against the reconstruction loss
    # reconstruction loss: the video tokenizer's (foreground-weighted L1 + L2, edge term). Plain mean L1
    # (l1 1, l2 0, edge 0, foreground 0) turned the shapes into grey blobs: objects cover ~5% of the pixels
    l1_weight: float = 0.0
    l2_weight: float = 1.0
    edge_weight: float = 0.2
    foreground_weight: float = 10.0
    latent_shift: tuple[float, ...] | None = None  # per-channel mean of raw latents (None: 0)
    latent_scale: tuple[float, ...] | None = None  # per-channel std of raw latents (None: 1)

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        for name in ("in_channels", "latent_channels", "temporal_compression", "patch_size"):
            if getattr(self, name) < 1:
                raise ArvideoError(f"VAEConfig.{name} must be >= 1, got {getattr(self, name)}")
        blocks = (self.encoder_blocks, self.decoder_blocks, self.temporal_kernel - 1)
        if not self.channels or min(self.channels) < 1 or min(blocks) < 0:
            raise ArvideoError(
                "VAEConfig needs positive channels and temporal_kernel, and blocks >= 0; got "
                f"channels={self.channels}, temporal_kernel={self.temporal_kernel}, "
                f"encoder_blocks={self.encoder_blocks}, decoder_blocks={self.decoder_blocks}"
            )
        for name in ("latent_shift", "latent_scale"):
            value = getattr(self, name)
            if value is not None and len(value) != self.latent_channels:
                raise ArvideoError(f"VAEConfig.{name} needs {self.latent_channels} values, got {len(value)}")

    @property
    def spatial_compression(self) -> int:
        return self.patch_size * 2 ** (len(self.channels) - 1)


@dataclass
class DiagonalGaussian:
    """Posterior q(z|x) = N(mean, exp(logvar)), per element; shapes [B, C, T', H', W']."""

    mean: torch.Tensor
    logvar: torch.Tensor

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """Reparameterised sample; pass the generator that owns this run's randomness."""
        m = self.mean
        eps = torch.randn(m.shape, generator=generator, device=m.device, dtype=m.dtype)
        return self.mean + torch.exp(0.5 * self.logvar) * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per element, same shape as `mean`."""
        return 0.5 * (self.mean.square() + self.logvar.exp() - 1.0 - self.logvar)


def to_float_video(video: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]; float input passes through unchanged."""
    if video.dtype == torch.uint8:
        return video.float() / 127.5 - 1.0
    return video


def vae_loss(
    video: torch.Tensor, recon: torch.Tensor, posterior: DiagonalGaussian, config: VAEConfig
) -> dict[str, torch.Tensor]:
    """Training objective from one forward's outputs: reconstruction loss + kl_weight * mean KL.

    A function of the outputs, not a method that runs the model, so a trainer calls the (possibly
    DDP/FSDP-wrapped) model exactly once and then this.
    """
    c = config
    target = to_float_video(video)
    weights = dict(l1=c.l1_weight, l2=c.l2_weight, edge=c.edge_weight, foreground=c.foreground_weight)
    rec = reconstruction_loss(recon, target, **weights)["loss"]
    kl = posterior.kl().mean()
    return {"loss": rec + c.kl_weight * kl, "recon": rec.detach(), "kl": kl.detach()}


class VideoVAE(PretrainedModel):
    """Causal KL video VAE: [B, 3, 1+tc*k, H, W] <-> [B, latent_channels, 1+k, H/sc, W/sc]."""

    config_class = VAEConfig
    model_type = "arlon_vae"

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = c = config
        patch = c.in_channels * c.temporal_compression * c.patch_size**2
        self.encoder = Encoder(patch, 2 * c.latent_channels, c.channels, c.encoder_blocks, c.temporal_kernel)
        self.decoder = Decoder(c.latent_channels, patch, c.channels, c.decoder_blocks, c.temporal_kernel)

    @property
    def temporal_compression(self) -> int:
        return self.config.temporal_compression

    @property
    def spatial_compression(self) -> int:
        return self.config.spatial_compression

    def latent_frames(self, n_frames: int) -> int:
        return 1 + (n_frames - 1) // self.temporal_compression

    def pixel_frames(self, n_latent: int) -> int:
        return 1 + self.temporal_compression * (n_latent - 1)

    def check_size(self, height: int, width: int) -> None:
        check_video_shape(1, height, width, self.temporal_compression, self.spatial_compression, "video")

    def encode(self, video: torch.Tensor) -> DiagonalGaussian:
        """video [B, 3, T, H, W] -> posterior over raw latents [B, C, 1+(T-1)/tc, H/sc, W/sc]."""
        _, _, t, h, w = video.shape
        check_video_shape(t, h, w, self.temporal_compression, self.spatial_compression, "video")
        x = patchify(to_float_video(video), self.temporal_compression, self.config.patch_size)
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # [B, C, T', H', W'] each
        return DiagonalGaussian(mean, logvar.clamp(*LOGVAR_RANGE))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent [B, C, T', H', W'] -> video [B, 3, 1+tc*(T'-1), H'*sc, W'*sc], unclamped."""
        return unpatchify(self.decoder(z), self.temporal_compression, self.config.patch_size)

    def forward(
        self, video: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, DiagonalGaussian]:
        """Training pass: encode, draw a latent with `generator`, decode; returns (recon, posterior)."""
        posterior = self.encode(video)
        return self.decode(posterior.sample(generator)), posterior

    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1, 1)
        c = self.config
        shift = torch.tensor(c.latent_shift or [0.0] * c.latent_channels, device=z.device, dtype=z.dtype)
        scale = torch.tensor(c.latent_scale or [1.0] * c.latent_channels, device=z.device, dtype=z.dtype)
        return shift.view(shape), scale.view(shape)

    def scale_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent -> the roughly unit-variance latent the DiT and latent VQ-VAEs work on."""
        shift, scale = self._stats(z)
        return (z - shift) / scale

    def unscale_latent(self, z: torch.Tensor) -> torch.Tensor:
        shift, scale = self._stats(z)
        return z * scale + shift

    def set_latent_stats(self, z: torch.Tensor) -> None:
        """Store per-channel mean/std of raw latents z [B, C, T', H', W'] in the config (saved with it)."""
        flat = z.detach().transpose(0, 1).flatten(1).double()  # [C, N]
        self.config.latent_shift = tuple(flat.mean(1).tolist())
        self.config.latent_scale = tuple(flat.std(1).clamp_min(1e-6).tolist())
