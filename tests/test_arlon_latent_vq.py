"""ARLON latent VQ-VAEs: codes, straight-through gradients, codebook updates, fine/coarse shapes."""

import pytest
import torch
import torch.nn.functional as F

from arvideo.arlon.latent_vq import (
    LatentVQ,
    LatentVQConfig,
    VectorQuantizer,
    coarse_vq_config,
    fine_vq_config,
    vq_loss,
)
from arvideo.errors import ArvideoError


def tiny_config(**kw) -> LatentVQConfig:
    base = {"channels": (16, 32), "norm_groups": 4, "codebook_size": 32, "code_dim": 4}
    return LatentVQConfig(**{**base, **kw})


def smooth_latents(seed: int = 0) -> torch.Tensor:
    """A fixed batch of learnable latents [4, 4, 5, 8, 8]: smooth fields in space and time."""
    g = torch.Generator().manual_seed(seed)
    lat = F.interpolate(torch.randn(4, 4, 2, 2, 2, generator=g), size=(5, 8, 8), mode="trilinear")
    return lat / lat.std()


@torch.no_grad()
@pytest.mark.parametrize("make, code_hw", [(fine_vq_config, 4), (coarse_vq_config, 2)])
def test_fine_and_coarse_decode_to_the_vae_latent_shape(make, code_hw):
    torch.manual_seed(0)
    vq = LatentVQ(make()).eval()
    latent = torch.randn(2, 4, 5, 8, 8)  # the VAE latent of two 64x64x17 clips
    ids = vq.encode(latent)
    assert ids.shape == (2, 5, code_hw, code_hw) and ids.dtype == torch.long
    assert 0 <= int(ids.min()) and int(ids.max()) < vq.codebook_size
    recon = vq.decode(ids)
    assert recon.shape == latent.shape
    out = vq(latent)
    assert torch.equal(out.ids, ids)
    torch.testing.assert_close(out.recon, recon, rtol=0, atol=1e-5)  # z + (zq - z) rounds, zq does not
    assert vq.code_shape(5, 8, 8) == (5, code_hw, code_hw)


def test_fine_is_finer_than_coarse():
    assert fine_vq_config().spatial_compression * 2 == coarse_vq_config().spatial_compression
    with pytest.raises(ArvideoError, match="latent height must be a multiple of 4"):
        LatentVQ(coarse_vq_config()).code_shape(5, 6, 8)


@torch.no_grad()
def test_codes_of_a_latent_frame_depend_only_on_earlier_frames():
    """Causal like the VAE: the AR model can treat code frame j as a function of latent frames <= j."""
    torch.manual_seed(0)
    vq = LatentVQ(tiny_config()).eval()
    a = torch.randn(1, 4, 5, 8, 8)
    b = a.clone()
    b[:, :, 3] = torch.randn(4, 8, 8)
    za, zb = vq._encode(a), vq._encode(b)
    assert torch.equal(za[:, :3], zb[:, :3]) and not torch.allclose(za[:, 3], zb[:, 3])


def test_straight_through_gradient_is_identity():
    torch.manual_seed(0)
    q = VectorQuantizer(tiny_config()).eval()
    z = torch.randn(10, 4, requires_grad=True)
    zq, ids, _ = q(z)
    torch.testing.assert_close(zq, q.codebook[ids], rtol=0, atol=1e-6)  # forward: the nearest code
    w = torch.randn(10, 4)
    (zq * w).sum().backward()
    assert torch.equal(z.grad, w)  # backward: straight through


def test_codes_are_the_nearest_rows_and_l2_mode_uses_cosine():
    torch.manual_seed(0)
    q = VectorQuantizer(tiny_config())
    z = torch.randn(50, 4)
    assert torch.equal(q.codes(z), torch.cdist(z, q.codebook).argmin(1))
    q2 = VectorQuantizer(tiny_config(l2_normalize=True))
    ids = q2.codes(z * 7.0)  # scale does not matter for cosine lookup
    assert torch.equal(ids, (F.normalize(z, dim=1) @ F.normalize(q2.codebook, dim=1).t()).argmax(1))
    torch.testing.assert_close(q2.embed(ids).norm(dim=1), torch.ones(50))


def test_ema_update_moves_used_codes_towards_their_vectors():
    q = VectorQuantizer(tiny_config(codebook_size=4, code_dim=2, ema_decay=0.5)).train()
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    q.embed_sum.copy_(q.codebook)
    z = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # both hit code 0
    q(z)
    assert 0.6 < q.codebook[0, 0] < 1.0  # pulled from 0 towards 1
    assert torch.allclose(q.codebook[1:], torch.tensor([[10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]), atol=0.05)


@pytest.mark.parametrize("update", ["ema", "grad"])
def test_dead_codes_restart_from_batch_vectors_only_with_a_generator(update):
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))

    def restarted(generator: torch.Generator | None) -> list[bool]:
        cfg = tiny_config(
            codebook_size=8, code_dim=2, ema_decay=0.0, dead_code_threshold=0.5, codebook_update=update
        )
        q = VectorQuantizer(cfg).train()
        with torch.no_grad():
            q.codebook.fill_(100.0)
            q.codebook[0] = 0.0
        q(z, generator)  # every vector hits code 0, so codes 1..7 are dead
        return [any(torch.equal(row, v) for v in z) for row in q.codebook[1:]]

    assert not any(restarted(None))
    assert all(restarted(torch.Generator().manual_seed(0)))  # each dead code now holds a batch vector


@pytest.mark.parametrize("update", ["ema", "grad"])
def test_training_reduces_reconstruction_loss(update):
    """40 Adam steps on a fixed batch cut the reconstruction MSE (eval mode, before vs after) by >= 2x."""
    torch.manual_seed(0)
    vq = LatentVQ(tiny_config(codebook_update=update))
    lat = smooth_latents()
    g = torch.Generator().manual_seed(0)

    def recon_mse() -> float:
        vq.eval()
        with torch.no_grad():
            return F.mse_loss(vq(lat).recon, lat).item()

    before = recon_mse()
    vq.train()
    opt = torch.optim.Adam(vq.parameters(), lr=3e-3)
    for _ in range(40):
        out = vq_loss(lat, vq(lat, g), vq.codebook_size)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    after = recon_mse()
    assert after < 0.5 * before, (before, after)
    assert out["perplexity"] > 4  # more than a handful of codes in use


@torch.no_grad()
def test_save_load_round_trip_keeps_codes_and_codebook_state(tmp_path):
    torch.manual_seed(0)
    vq = LatentVQ(tiny_config()).train()
    lat = smooth_latents()
    vq(lat)  # move the EMA buffers away from their init
    vq.eval()
    again = LatentVQ.from_pretrained(vq.save_pretrained(tmp_path / "fine"))
    assert again.config == vq.config
    assert torch.equal(again.encode(lat), vq.encode(lat))
    assert torch.equal(again.decode(vq.encode(lat)), vq.decode(vq.encode(lat)))
    assert torch.equal(again.quantizer.usage, vq.quantizer.usage)


def test_config_errors_name_the_field():
    with pytest.raises(ArvideoError, match="codebook_update"):
        tiny_config(codebook_update="kmeans")
    with pytest.raises(ArvideoError, match="ema_decay"):
        tiny_config(ema_decay=1.0)
