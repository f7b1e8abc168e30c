"""ARLON DiT: zero-initialised semantic injection, uncertainty sampling, conditioning paths, overfit."""

import pytest
import torch

from arvideo.arlon.dit import ArlonDiT, DiTConfig, UncertaintySampling
from arvideo.arlon.flow import FlowLossConfig, flow_loss
from arvideo.errors import ArvideoError

SHAPE = (2, 4, 3, 4, 4)  # [B, C, T, H, W] latent


def tiny_dit(**kw) -> ArlonDiT:
    torch.manual_seed(0)
    base = {"hidden_size": 32, "depth": 4, "num_heads": 2, "text_vocab_size": 50, "max_text_len": 8}
    return ArlonDiT(DiTConfig(**{**base, **kw}))


@torch.no_grad()
def randomize(model: ArlonDiT, injection: bool) -> None:
    """Move weights off their init (adaLN-Zero makes a fresh output exactly 0); the injection optionally."""
    g = torch.Generator().manual_seed(1)
    inject = {id(p) for p in model.injection_parameters()}
    for p in model.parameters():
        if injection or id(p) not in inject:
            p.add_(0.2 * torch.randn(p.shape, generator=g))


def inputs(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randn(*SHAPE, generator=g),
        "timestep": torch.tensor([700.0, 250.0]),
        "text_ids": torch.randint(0, 50, (2, 5), generator=g),
        "coarse": torch.randn(*SHAPE, generator=g),
    }


def test_fresh_dit_predicts_zero_velocity():
    out = tiny_dit().eval()(**inputs())
    assert out.shape == SHAPE and torch.equal(out, torch.zeros(SHAPE))


@pytest.mark.parametrize("mode", ["residual", "temporal"])
@pytest.mark.parametrize("train", [False, True])
def test_zero_initialised_injection_leaves_the_output_unchanged(mode, train):
    dit = tiny_dit(injection_mode=mode)
    randomize(dit, injection=False)
    dit.train(train)
    kw = inputs()
    with torch.no_grad():
        injected = dit(**kw, generator=torch.Generator().manual_seed(0))
        no_coarse = dit(**{**kw, "coarse": None})
        plain = ArlonDiT(DiTConfig(**{**vars(dit.config), "injection": False})).train(train)
        missing, unexpected = plain.load_state_dict(dit.state_dict(), strict=False)
        assert not missing and unexpected  # only the injection branch is extra
        backbone_only = plain(**kw)
    assert injected.abs().max() > 0.1
    assert torch.equal(injected, no_coarse)
    assert torch.equal(injected, backbone_only)


@pytest.mark.parametrize("mode", ["residual", "temporal"])
@pytest.mark.parametrize("blocks, first", [((1,), 1), ((2, 3), 2), (None, 0)])
def test_injection_touches_only_the_configured_blocks(mode, blocks, first):
    dit = tiny_dit(inject_blocks=blocks, injection_mode=mode).eval()
    randomize(dit, injection=True)
    configured = set(range(2) if blocks is None else blocks)  # None: first half of 4 blocks
    assert {i for i, b in enumerate(dit.blocks) if b.inject is not None} == configured
    outputs: dict[str, list[torch.Tensor]] = {"with": [], "without": []}
    kw = inputs()
    for key, coarse in (("with", kw["coarse"]), ("without", None)):
        hooks = [b.register_forward_hook(lambda m, a, o, k=key: outputs[k].append(o)) for b in dit.blocks]
        with torch.no_grad():
            dit(**{**kw, "coarse": coarse})
        for h in hooks:
            h.remove()
    same = [torch.equal(a, b) for a, b in zip(outputs["with"], outputs["without"], strict=True)]
    assert same == [i < first for i in range(4)]


def test_injection_parameters_are_the_arlon_branch_only():
    dit = tiny_dit()
    n_inject = sum(p.numel() for p in dit.injection_parameters())
    plain = tiny_dit(injection=False)
    assert n_inject > 0 and plain.injection_parameters() == []
    assert sum(p.numel() for p in dit.parameters()) - n_inject == sum(p.numel() for p in plain.parameters())


def test_uncertainty_sampling_is_identity_in_eval_mode():
    us = UncertaintySampling((0.5, 1.0), "sample").eval()
    c = torch.randn(3, 2, 4, 8)
    assert us(c, torch.Generator().manual_seed(0)) is c


@pytest.mark.parametrize("alpha", [(0.5, 1.0), (0.8, 0.9)])
def test_uncertainty_sampling_perturbs_in_train_mode_within_the_alpha_range(alpha):
    """With a condition constant over tokens, eps = mean = c, so c~ = (sqrt(a) + sqrt(1-a)) c reveals a."""
    us = UncertaintySampling(alpha, "sample").train()
    g = torch.Generator().manual_seed(0)
    c = (torch.rand(64, 1, 1, 8, generator=g) + 0.5).expand(64, 3, 4, 8).contiguous()  # [B, T, S, D]
    out = us(c, torch.Generator().manual_seed(1))
    r = out / c  # [B, T, S, D], one ratio per sample
    assert torch.allclose(r, r[:, :1, :1, :1].expand_as(r), atol=1e-5)
    r = r[:, 0, 0, 0].double()
    a = ((r + (2 - r.square()).clamp_min(0).sqrt()) / 2).square()  # the root with a >= 1/2
    lo, hi = alpha
    assert (a >= lo - 1e-4).all() and (a <= hi + 1e-4).all()
    assert a.max() - a.min() > 0.5 * (hi - lo)  # drawn per sample, spread over the range

    noisy = torch.randn(4, 3, 4, 8, generator=g)
    perturbed = us(noisy, torch.Generator().manual_seed(2))
    assert not torch.allclose(perturbed, noisy)
    assert torch.equal(perturbed, us(noisy, torch.Generator().manual_seed(2)))  # seeded


def test_uncertainty_per_token_draws_one_alpha_per_token():
    us = UncertaintySampling((0.5, 1.0), "token").train()
    c = torch.ones(2, 3, 4, 8)
    r = us(c, torch.Generator().manual_seed(0))[..., 0]  # [B, T, S]
    assert r.unique().numel() > 12 and (r >= 1 - 1e-6).all() and (r <= 2**0.5 + 1e-6).all()


@torch.no_grad()
def test_dropped_text_equals_no_text_and_padding_is_ignored():
    dit = tiny_dit().eval()
    randomize(dit, injection=True)
    kw = inputs()
    drop = dit(**kw, drop_text=torch.tensor([True, False]))
    none = dit(**{**kw, "text_ids": None})
    full = dit(**kw)
    torch.testing.assert_close(drop[0], none[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(drop[1], full[1], rtol=0, atol=1e-5)
    assert not torch.allclose(full[0], none[0])
    padded = torch.cat([kw["text_ids"], torch.zeros(2, 3, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(2, 5, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(dit(**{**kw, "text_ids": padded}, text_mask=mask), full, rtol=0, atol=1e-5)
    with pytest.raises(ArvideoError, match="at most 8"):
        dit(**{**kw, "text_ids": torch.zeros(2, 9, dtype=torch.long)})


@torch.no_grad()
def test_replace_reference_frames_are_clean_context():
    """ "replace": reference frames overwrite the noisy input, so its values there do not matter."""
    dit = tiny_dit().eval()
    randomize(dit, injection=True)
    kw = inputs()
    ref = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(5))
    mask = torch.tensor([[True, False, False], [True, True, False]])
    other_x = kw["x"].clone()
    other_x[0, :, 0] = 9.0
    other_x[1, :, :2] = -9.0
    a = dit(**kw, reference=ref, reference_mask=mask)
    b = dit(**{**kw, "x": other_x}, reference=ref, reference_mask=mask)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(a, dit(**kw))


@torch.no_grad()
def test_concat_reference_frames_are_extra_channels():
    dit = tiny_dit(reference_mode="concat").eval()
    assert dit.patch_embed.in_features == 2 * 4 + 1
    randomize(dit, injection=True)
    kw = inputs()
    ref = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(5))
    mask = torch.tensor([[True, False, False], [False, False, False]])
    with_ref = dit(**kw, reference=ref, reference_mask=mask)
    without = dit(**kw)
    assert not torch.allclose(with_ref[0], without[0])
    torch.testing.assert_close(with_ref[1], without[1], rtol=0, atol=1e-6)  # no reference frames in row 1


def test_config_errors_name_the_field():
    with pytest.raises(ArvideoError, match="inject_blocks"):
        DiTConfig(depth=4, inject_blocks=(4,))
    with pytest.raises(ArvideoError, match="uncertainty_alpha"):
        DiTConfig(uncertainty_alpha=(0.9, 0.5))
    with pytest.raises(ArvideoError, match="injection_mode"):
        DiTConfig(injection_mode="controlnet")
    with pytest.raises(ArvideoError, match="num_heads"):
        DiTConfig(hidden_size=36, num_heads=8)
    assert DiTConfig(depth=6).injected == {0, 1, 2}
    with pytest.raises(ArvideoError, match="multiple of the DiT patch size 2"):
        tiny_dit(patch_size=2)(torch.zeros(1, 4, 1, 5, 4), torch.zeros(1))


@torch.no_grad()
def test_save_load_round_trip(tmp_path):
    dit = tiny_dit(inject_blocks=(0, 2), patch_size=2).eval()
    randomize(dit, injection=True)
    again = ArlonDiT.from_pretrained(dit.save_pretrained(tmp_path / "dit"))
    assert again.config == dit.config and again.config.inject_blocks == (0, 2)
    kw = inputs()
    assert torch.equal(again(**kw), dit(**kw))


def test_tiny_overfit_reduces_flow_loss_4x():
    """DiT + rectified flow on one latent batch: 120 Adam steps cut the loss (fixed eval noise) >= 4x."""
    dit = tiny_dit(depth=2)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(*SHAPE, generator=g)
    text = torch.randint(0, 50, (2, 5), generator=g)
    coarse = x0 + 0.5 * torch.randn(*SHAPE, generator=g)
    cfg = FlowLossConfig()

    def loss(generator: torch.Generator) -> torch.Tensor:
        return flow_loss(lambda x, t: dit(x, t, text, coarse=coarse, generator=generator), x0, cfg, generator)

    def eval_loss() -> float:
        dit.eval()
        with torch.no_grad():
            return sum(loss(torch.Generator().manual_seed(s)).item() for s in range(8)) / 8

    before = eval_loss()
    dit.train()
    opt = torch.optim.Adam(dit.parameters(), lr=3e-3)
    train_g = torch.Generator().manual_seed(1)
    for _ in range(120):
        opt.zero_grad()
        loss(train_g).backward()
        opt.step()
    after = eval_loss()
    assert after < before / 4, (before, after)
