"""The AR stage's tokenizer (VAE then fine latent VQ-VAE) and the ARLON shard codecs."""

import numpy as np
import pytest
import torch

from arlon_tiny import jitter, tiny_tokenizer
from arvideo.arlon.latent_vq import LatentVQ, LatentVQConfig
from arvideo.arlon.shards import FrameCodec, LatentCodec, item_frames, item_latent
from arvideo.arlon.tasks import VAE_PRESETS, VQ_PRESETS
from arvideo.arlon.tokenizer import FINE_VQ_DIR, VAE_DIR, ArlonTokenizer
from arvideo.arlon.vae import VAEConfig, VideoVAE
from arvideo.errors import ArvideoError
from arvideo.tokenizers import load_tokenizer
from arvideo.tokenizers.base import VideoTokenizer
from arvideo.train.data import TokenItem


@pytest.fixture(scope="module")
def tok():
    t = tiny_tokenizer()
    jitter(t.vae, seed=3, scale=0.02)  # no exact zeros anywhere: causality must not hold by accident
    return t


def video(frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, frames, 64, 64), generator=g, dtype=torch.uint8)


def test_follows_the_video_tokenizer_contract(tok):
    assert isinstance(tok, VideoTokenizer)
    assert (tok.temporal_compression, tok.spatial_compression, tok.codebook_size) == (4, 16, 64)
    ids = tok.encode(video(17))
    assert ids.shape == (1, 5, 4, 4) and ids.dtype == torch.int64
    assert 0 <= int(ids.min()) and int(ids.max()) < tok.codebook_size
    out = tok.decode(ids)
    assert out.shape == (1, 3, 17, 64, 64) and out.abs().max() <= 1
    assert tok.latent_frames(17) == 5 and tok.pixel_frames(5) == 17 and tok.latent_frames(1) == 1
    assert tok.encode(video(1)).shape == (1, 1, 4, 4)  # an image is a one-frame video
    # a frame count that does not fill its last group is padded with the last frame (T' = 1 + ceil)
    assert tok.encode(video(14)).shape == (1, 5, 4, 4)
    assert torch.equal(tok.encode(video(14)), tok.encode(torch.cat([video(14), video(14)[:, :, -1:].expand(
        -1, -1, 3, -1, -1)], dim=2)))  # fmt: skip


def test_a_fine_vq_that_compresses_time_gets_whole_code_frames():
    """8x in time (VAE 4x, fine VQ 2x): a clip is padded to the frames its code frames cover."""
    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(**VAE_PRESETS["tiny"]))
    fine = LatentVQ(LatentVQConfig(**{**VQ_PRESETS["tiny-fine"], "temporal_compression": 2}))
    tok = ArlonTokenizer(vae, fine)
    assert tok.temporal_compression == 8
    assert [tok.encode(video(t)).shape[1] for t in (1, 9, 14, 17)] == [1, 2, 3, 3]
    assert tok.encode_latent(video(9)).shape[2] == 3  # VAE latent frames: 1 + 2 x (2 - 1)
    assert tok.decode(tok.encode(video(9))).shape[2] == 9


def test_load_tokenizer_recognises_an_arlon_folder(tok, tmp_path):
    tok.vae.save_pretrained(tmp_path / VAE_DIR)
    tok.fine_vq.save_pretrained(tmp_path / FINE_VQ_DIR)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, ArlonTokenizer)
    assert torch.equal(loaded.encode(video(9)), tok.encode(video(9)))
    with pytest.raises(ArvideoError, match=r"or an ARLON folder with vae/ \+ fine_vq/"):
        load_tokenizer(tmp_path / VAE_DIR)  # one of the two models alone is no tokenizer


def test_codes_are_causal_in_time(tok):
    """Changing frames of group j never changes the codes of the latent frames before j."""
    base = video(17)
    codes = tok.encode(base)
    latent = tok.encode_latent(base)
    changed = base.clone()
    changed[:, :, 9:] = video(8, seed=1)  # frames 9..16: groups 3 and 4
    assert torch.equal(tok.encode(changed)[:, :3], codes[:, :3])
    assert torch.equal(tok.encode_latent(changed)[:, :, :3], latent[:, :, :3])
    assert not torch.equal(tok.encode_latent(changed)[:, :, 3:], latent[:, :, 3:])


def test_refuses_bad_sizes_and_foreign_ids(tok):
    with pytest.raises(ArvideoError, match="multiple of 16"):
        tok.encode(torch.zeros(1, 3, 5, 56, 64, dtype=torch.uint8))
    with pytest.raises(ArvideoError, match=r"\[0, 64\)"):
        tok.decode(torch.full((1, 2, 4, 4), 64))


def test_frame_and_latent_codecs_round_trip_exactly(tok):
    clip = video(9)
    packed = FrameCodec().encode(clip)[0].numpy()  # [T, H, 3W/4] int32
    assert packed.shape == (9, 64, 48) and packed.dtype == np.int32
    item = TokenItem("a", np.zeros(0, np.int32), packed, 8.0, (64, 64))
    assert torch.equal(item_frames(item), clip[0].permute(1, 2, 3, 0))

    codec = LatentCodec(tok.vae)
    bits = codec.encode(clip)[0].numpy()  # [C*T', h, w] int32
    assert bits.shape == (4 * 3, 8, 8)
    latent = item_latent(TokenItem("a", np.zeros(0, np.int32), bits, 8.0, (64, 64)), 4)
    assert torch.equal(latent, tok.encode_latent(clip)[0])  # float32 bits, no rounding
    with pytest.raises(ArvideoError, match="multiple of 5"):
        item_latent(TokenItem("a", np.zeros(0, np.int32), bits, 8.0, (64, 64)), 5)
