"""ARLON (arXiv 2410.20502): AR coarse latent codes guiding a diffusion transformer.

Data flow at generation: text -> AR model -> fine latent-VQ codes -> coarse latent F
(`LatentVQ.decode`) -> DiT with semantic injection, rectified-flow Euler sampling
(`flow.euler_sample`) -> video-VAE latent -> `VideoVAE.decode` -> pixels.
See docs/arlon.md for every design choice and its status in the paper.
"""

from arvideo.arlon.dit import ArlonDiT, DiTConfig
from arvideo.arlon.flow import FlowLossConfig, FlowMatchEulerScheduler, euler_sample, flow_loss
from arvideo.arlon.latent_vq import LatentVQ, LatentVQConfig, coarse_vq_config, fine_vq_config, vq_loss
from arvideo.arlon.vae import VAEConfig, VideoVAE, vae_loss

__all__ = [
    "ArlonDiT",
    "DiTConfig",
    "FlowLossConfig",
    "FlowMatchEulerScheduler",
    "LatentVQ",
    "LatentVQConfig",
    "VAEConfig",
    "VideoVAE",
    "coarse_vq_config",
    "euler_sample",
    "fine_vq_config",
    "flow_loss",
    "vae_loss",
    "vq_loss",
]
