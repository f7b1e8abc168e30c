"""The AR stage's video tokenizer: the video VAE followed by the fine latent VQ-VAE.

ARLON's AR model predicts the codes of a latent VQ-VAE that lives inside the continuous VAE
latent (reference §2-3). Wrapped as one `VideoTokenizer`, that pair looks to the rest of arvideo
like any discrete video tokenizer, so the Lumos-1 serializer, `Vocab.compact`, the sampler
(parallel per-frame or next-token decoding), `arvideo tokenize-data` and the Lumos training task
serve ARLON's AR stage unchanged:

    tok = ArlonTokenizer(vae, fine_vq)
    ids = tok.encode(video)      # uint8/float [B, 3, T, H, W] -> [B, T', H/16, W/16] fine codes
    video = tok.decode(ids)      # -> [B, 3, 1 + 4(T'-1), H, W] in [-1, 1]

encode = fine-VQ codes of the scaled VAE posterior mean; decode = fine-VQ decode (the coarse
latent F), unscale, VAE decode. Both models are causal in time, so the codes of latent frame j
only depend on pixel frames up to the end of group j.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from arvideo.arlon.latent_vq import LatentVQ
from arvideo.arlon.pretrained import stored_model_type
from arvideo.arlon.vae import VideoVAE
from arvideo.errors import ArvideoError
from arvideo.tokenizers import base

VAE_DIR = "vae"  # sub-folders of an ARLON folder holding the two models
FINE_VQ_DIR = "fine_vq"


def is_arlon_tokenizer_folder(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds an ARLON VAE in `vae/` and a latent VQ-VAE in `fine_vq/` (as an ARLON
    pipeline folder does), judged by their config.json `model_type`; lets `load_tokenizer` find it."""
    folder = Path(folder)
    return (
        stored_model_type(folder / VAE_DIR) == VideoVAE.model_type
        and stored_model_type(folder / FINE_VQ_DIR) == LatentVQ.model_type
    )


class ArlonTokenizer(base.CompressionMixin):
    """`VideoTokenizer` over fine latent-VQ codes: compression = VAE's x fine VQ's (4x16x16 by default)."""

    def __init__(self, vae: VideoVAE, fine_vq: LatentVQ):
        if vae.config.latent_channels != fine_vq.config.latent_channels:
            raise ArvideoError(
                f"the VAE has {vae.config.latent_channels} latent channels but the fine VQ-VAE expects "
                f"{fine_vq.config.latent_channels}; use the pair that was trained together"
            )
        self.vae, self.fine_vq = vae.eval(), fine_vq.eval()
        self.temporal_compression = vae.temporal_compression * fine_vq.temporal_compression
        self.spatial_compression = vae.spatial_compression * fine_vq.spatial_compression
        self.codebook_size = fine_vq.codebook_size

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> ArlonTokenizer:
        """An ARLON folder holding `vae/` and `fine_vq/` model folders."""
        folder = Path(folder)
        return cls(VideoVAE.from_pretrained(folder / VAE_DIR, device),
                   LatentVQ.from_pretrained(folder / FINE_VQ_DIR, device))  # fmt: skip

    @torch.no_grad()
    def encode_latent(self, video: torch.Tensor) -> torch.Tensor:
        """Video [B, 3, T, H, W] -> scaled VAE latent [B, C, T', H/8, W/8] (posterior mean).

        A frame count that does not fill the last code frame is padded by repeating the last frame,
        as the other tokenizers do, so the latent always holds whole code frames for the fine VQ:
        T' = 1 + vq_tc * (latent_frames(T) - 1), where vq_tc is the fine VQ's temporal compression.
        """
        x = base.video_to_float(video, self.spatial_compression)
        missing = self.pixel_frames(self.latent_frames(x.shape[2])) - x.shape[2]
        if missing:
            x = F.pad(x, (0, 0, 0, 0, 0, missing), mode="replicate")  # [B, 3, 1 + tc*k, H, W]
        p = next(self.vae.parameters())
        return self.vae.scale_latent(self.vae.encode(x.to(p.device, p.dtype)).mode())

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """uint8 or [-1, 1] float video [B, 3, T, H, W] -> fine codes [B, T', H/16, W/16] (int64)."""
        return self.fine_vq.encode(self.encode_latent(video))

    @torch.no_grad()
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Scaled VAE latent [B, C, T', h, w] -> video [B, 3, 1 + tc*(T'-1), 8h, 8w] in [-1, 1]."""
        return self.vae.decode(self.vae.unscale_latent(latent)).clamp(-1, 1)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Fine codes [B, T', H', W'] -> video [B, 3, 1 + tc*(T'-1), 16H', 16W'] in [-1, 1]."""
        ids = base.check_ids(ids, self.codebook_size).to(next(self.fine_vq.parameters()).device)
        return self.decode_latent(self.fine_vq.decode(ids))
