"""ARLON video VAE: causal shapes, causality, the KL term, latent scaling, model folders."""

import pytest
import torch

from arvideo.arlon.vae import DiagonalGaussian, VAEConfig, VideoVAE, vae_loss
from arvideo.errors import ArvideoError


def tiny_vae(**kw) -> VideoVAE:
    torch.manual_seed(0)
    return VideoVAE(VAEConfig(**{"channels": (8, 8), "decoder_blocks": 1, **kw})).eval()  # 4x4x4


def video(t: int, size: int, seed: int = 0, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, t, size, size, generator=g) * 2 - 1


@torch.no_grad()
def test_default_compression_is_4x8x8_on_64x64x17():
    vae = VideoVAE(VAEConfig(channels=(4, 4, 4))).eval()
    z = vae.encode(video(17, 64, batch=1)).mean
    assert z.shape == (1, 4, 5, 8, 8)
    assert vae.decode(z).shape == (1, 3, 17, 64, 64)
    assert (vae.temporal_compression, vae.spatial_compression) == (4, 8)
    assert vae.latent_frames(17) == 5 and vae.pixel_frames(5) == 17


@torch.no_grad()
def test_uint8_input_equals_float_input():
    vae = tiny_vae()
    frames = torch.randint(0, 256, (1, 3, 5, 16, 16), dtype=torch.uint8)
    a = vae.encode(frames).mean
    b = vae.encode(frames.float() / 127.5 - 1).mean
    assert torch.equal(a, b)


@torch.no_grad()
@pytest.mark.parametrize("frame", [0, 1, 4, 5, 8])
def test_encoder_is_causal_in_groups(frame):
    """Changing frame k changes its own group's latent and never an earlier group's."""
    vae = tiny_vae()
    x = video(9, 16)  # latent groups: {0}, {1..4}, {5..8}
    y = x.clone()
    y[:, :, frame] = -y[:, :, frame]
    za, zb = vae.encode(x).mean, vae.encode(y).mean
    group = (frame + 3) // 4
    assert torch.equal(za[:, :, :group], zb[:, :, :group])
    assert not torch.allclose(za[:, :, group], zb[:, :, group])


@torch.no_grad()
@pytest.mark.parametrize("latent", [1, 2])
def test_decoder_is_causal_in_groups(latent):
    vae = tiny_vae()
    z = vae.encode(video(9, 16)).mean
    z2 = z.clone()
    z2[:, :, latent] += 1.0
    first = vae.pixel_frames(latent)  # index of the first pixel frame of that latent's group
    a, b = vae.decode(z), vae.decode(z2)
    assert torch.equal(a[:, :, :first], b[:, :, :first])
    assert not torch.allclose(a[:, :, first], b[:, :, first])


def test_bad_shapes_name_the_nearest_valid_values():
    vae = tiny_vae()
    with pytest.raises(ArvideoError, match="1 \\+ 4\\*k frames, got 7; nearest valid: 5 or 9"):
        vae.encode(video(7, 16))
    with pytest.raises(ArvideoError, match="multiple of 4, got 18; nearest valid: 16 or 20"):
        vae.check_size(18, 16)
    with pytest.raises(ArvideoError, match="temporal_compression must be >= 1, got 0"):
        VAEConfig(temporal_compression=0)
    with pytest.raises(ArvideoError, match="positive channels"):
        VAEConfig(channels=())


def test_kl_matches_closed_form_and_vanishes_only_at_the_prior():
    g = torch.Generator().manual_seed(1)
    mean, logvar = torch.randn(3, 4, 2, 2, 2, generator=g), torch.randn(3, 4, 2, 2, 2, generator=g)
    kl = DiagonalGaussian(mean, logvar).kl()
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    oracle = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(kl, oracle)
    assert (kl > 0).all()
    assert torch.equal(DiagonalGaussian(torch.zeros(5), torch.zeros(5)).kl(), torch.zeros(5))


def test_sample_is_seeded_and_spread_by_logvar():
    post = DiagonalGaussian(torch.zeros(20000), torch.full((20000,), 2 * torch.log(torch.tensor(3.0))))
    a = post.sample(torch.Generator().manual_seed(0))
    b = post.sample(torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert abs(a.std().item() - 3.0) < 0.1  # std = exp(logvar / 2)
    assert torch.equal(post.mode(), post.mean)


def test_kl_weight_pulls_the_posterior_to_the_prior():
    """Same init, same data: training with a large KL weight ends with a much smaller KL than without."""
    x = video(5, 16, seed=3)
    kls = {}
    for weight in (0.0, 1.0):
        vae = tiny_vae(kl_weight=weight).train()
        opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(15):
            out = vae_loss(x, *vae(x, g), vae.config)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
        torch.testing.assert_close(out["loss"].detach(), out["recon"] + weight * out["kl"])
        kls[weight] = out["kl"].item()
    assert kls[1.0] < 0.5 * kls[0.0], kls


@torch.no_grad()
def test_latent_stats_make_scaled_latents_unit_and_round_trip():
    vae = tiny_vae()
    z = vae.encode(video(5, 16, batch=4)).mean * 3 + 1
    vae.set_latent_stats(z)
    s = vae.scale_latent(z)
    torch.testing.assert_close(s.mean(dim=(0, 2, 3, 4)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(s.std(dim=(0, 2, 3, 4)), torch.ones(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(vae.unscale_latent(s), z)


@torch.no_grad()
def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    vae = tiny_vae()
    x = video(5, 16)
    vae.set_latent_stats(vae.encode(x).mean)
    path = vae.save_pretrained(tmp_path / "vae")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    again = VideoVAE.from_pretrained(path)
    assert again.config == vae.config
    z = vae.encode(x).mean
    assert torch.equal(again.encode(x).mean, z)
    assert torch.equal(again.decode(z), vae.decode(z))
    assert torch.equal(again.scale_latent(z), vae.scale_latent(z))
    with pytest.raises(ArvideoError, match="already exists"):
        vae.save_pretrained(path)
    vae.save_pretrained(path, overwrite=True)


def test_loading_a_folder_of_another_model_type_fails_clearly(tmp_path):
    from arvideo.arlon.latent_vq import LatentVQ

    path = tiny_vae().save_pretrained(tmp_path / "vae")
    with pytest.raises(ArvideoError, match="'arlon_vae' model, not 'arlon_latent_vq'"):
        LatentVQ.from_pretrained(path)
    with pytest.raises(ArvideoError, match="not found"):
        VideoVAE.from_pretrained(tmp_path / "nowhere")


def test_vae_loss_weighs_errors_on_objects_more_than_on_the_background():
    """The same error on an object's pixels costs more than on as many background pixels (plain L1
    reconstructed the shapes world's small objects as grey blobs)."""
    target = -torch.ones(1, 3, 1, 32, 32)
    target[:, 0, :, 4:8, 4:8] = 1.0  # a 4x4 red object on black
    on_object, on_background = target.clone(), target.clone()
    on_object[:, :, :, 4:8, 4:8] -= 0.5
    on_background[:, :, :, 20:24, 20:24] += 0.5
    posterior = DiagonalGaussian(torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, 4, 1, 4, 4))
    config = VAEConfig()
    video = ((target + 1) * 127.5).round().to(torch.uint8)
    object_loss = vae_loss(video, on_object, posterior, config)["recon"]
    background_loss = vae_loss(video, on_background, posterior, config)["recon"]
    assert object_loss > 3 * background_loss
