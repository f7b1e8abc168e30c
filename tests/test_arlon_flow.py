"""Rectified flow: exact integration, the scheduler contract, CFG, timestep sampling, the loss."""

import pytest
import torch

from arvideo.arlon.flow import (
    FlowLossConfig,
    FlowMatchEulerScheduler,
    euler_sample,
    flow_loss,
    guide,
    interpolate,
    sample_sigmas,
)
from arvideo.errors import ArvideoError


def pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 3, 4, 4, generator=g), torch.randn(2, 4, 3, 4, 4, generator=g)


@pytest.mark.parametrize("steps", [1, 2, 5, 30])
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_exact_velocity_reaches_x0_in_any_number_of_steps(steps, shift):
    x0, noise = pair()
    scheduler = FlowMatchEulerScheduler(shift=shift)

    def true_velocity(x, t, drop_text):
        return noise - x0  # the straight path's velocity, the same at every point

    out = euler_sample(true_velocity, noise, scheduler, steps)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)
    if steps == 1:
        assert torch.equal(out, noise + (0.0 - 1.0) * (noise - x0))


def test_euler_steps_stay_on_the_straight_path():
    x0, noise = pair()
    scheduler = FlowMatchEulerScheduler(shift=2.0)
    scheduler.set_timesteps(4)
    x = noise
    for i, t in enumerate(scheduler.timesteps):
        x = scheduler.step(noise - x0, t, x)
        expected = interpolate(x0, noise, scheduler.sigmas[i + 1].expand(2))
        torch.testing.assert_close(x, expected, rtol=0, atol=1e-5)


def test_timesteps_run_from_pure_noise_to_clean():
    scheduler = FlowMatchEulerScheduler(num_train_timesteps=1000, shift=3.0)
    scheduler.set_timesteps(5)
    ts, sigmas = scheduler.timesteps, scheduler.sigmas
    assert len(ts) == 5 and len(sigmas) == 6
    assert ts[0] == 1000.0 and sigmas[-1] == 0.0
    assert (ts[1:] < ts[:-1]).all()
    plain = FlowMatchEulerScheduler()
    plain.set_timesteps(5)
    assert (sigmas[1:-1] > plain.sigmas[1:-1]).all()  # shift > 1 keeps more steps at high noise


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "5"])
def test_set_timesteps_rejects_bad_step_counts(bad):
    with pytest.raises(ArvideoError, match="denoising steps must be an integer >= 1"):
        FlowMatchEulerScheduler().set_timesteps(bad)


def test_step_rejects_misuse():
    scheduler = FlowMatchEulerScheduler()
    x = torch.zeros(1, 4)
    with pytest.raises(ArvideoError, match="set_timesteps"):
        scheduler.step(x, 1000.0, x)
    scheduler.set_timesteps(3)
    with pytest.raises(ArvideoError, match="not an integer index"):
        scheduler.step(x, 0, x)
    with pytest.raises(ArvideoError, match="not an integer index"):
        scheduler.step(x, torch.tensor(1), x)
    with pytest.raises(ArvideoError, match="not in scheduler.timesteps"):
        scheduler.step(x, 123.4, x)
    with pytest.raises(ArvideoError, match="shift > 0"):
        FlowMatchEulerScheduler(shift=0.0)


def test_step_keeps_dtype_and_accepts_timesteps_out_of_order():
    scheduler = FlowMatchEulerScheduler()
    scheduler.set_timesteps(4)
    x = torch.ones(3, dtype=torch.bfloat16)
    t2 = scheduler.timesteps[2]
    out = scheduler.step(torch.ones(3), t2, x)  # found by value, not by call count
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), torch.full((3,), 0.75))


def test_cfg_scale_one_is_the_conditional_branch_alone():
    x0, noise = pair()
    calls = []

    def velocity(x, t, drop_text):
        calls.append(drop_text)
        return (x - x0) / (t[:, None, None, None, None] / 1000) + (0.3 if drop_text else 0.0)

    out = euler_sample(velocity, noise, FlowMatchEulerScheduler(), 3, guidance_scale=1.0)
    assert calls == [False] * 3
    calls.clear()
    cond_only = euler_sample(lambda x, t, d: velocity(x, t, False), noise, FlowMatchEulerScheduler(), 3)
    assert torch.equal(out, cond_only)


def test_cfg_mixes_the_two_branches():
    noise = pair()[1]
    scale = 4.0

    def velocity(x, t, drop_text):
        return torch.full_like(x, 2.0 if drop_text else 1.0)

    out = euler_sample(velocity, noise, FlowMatchEulerScheduler(), 2, guidance_scale=scale)
    mixed = guide(torch.tensor(1.0), torch.tensor(2.0), scale)  # 2 + 4 * (1 - 2) = -2
    assert mixed == -2.0
    torch.testing.assert_close(out, noise - mixed)  # velocity -2 over sigma 1 -> 0


def test_scheduler_config_round_trip(tmp_path):
    scheduler = FlowMatchEulerScheduler(num_train_timesteps=500, shift=2.5)
    path = scheduler.save_pretrained(tmp_path / "scheduler")
    again = FlowMatchEulerScheduler.from_pretrained(path)
    assert again.config == scheduler.config
    scheduler.set_timesteps(7)
    again.set_timesteps(7)
    assert torch.equal(again.timesteps, scheduler.timesteps)


def test_training_sigmas_follow_the_configured_distribution():
    g = torch.Generator().manual_seed(0)
    uniform = sample_sigmas(20000, FlowLossConfig(timestep_sampling="uniform"), g)
    logit = sample_sigmas(20000, FlowLossConfig(), g)
    shifted = sample_sigmas(20000, FlowLossConfig(shift=3.0), g)
    for s in (uniform, logit, shifted):
        assert 0.0 < s.min() and s.max() < 1.0
    assert abs(uniform.mean() - 0.5) < 0.01 and abs(uniform.std() - 12**-0.5) < 0.01
    assert abs(logit.median() - 0.5) < 0.02 and logit.std() < uniform.std()  # mass near the middle
    assert shifted.median() > 0.7  # shift 3 maps the median 0.5 to 0.75
    with pytest.raises(ArvideoError, match="timestep_sampling"):
        FlowLossConfig(timestep_sampling="cosine")


def test_flow_loss_is_zero_for_the_true_velocity_and_respects_the_frame_mask():
    x0 = pair()[0]
    cfg = FlowLossConfig()

    def oracle(x, t):  # knows x0, so the velocity (x_t - x0) / sigma is exact
        return (x - x0) / (t / cfg.num_train_timesteps)[:, None, None, None, None]

    g = torch.Generator().manual_seed(0)
    assert flow_loss(oracle, x0, cfg, g) < 1e-8

    def wrong_on_frame_0(x, t):
        v = oracle(x, t)
        v[:, :, 0] += 5.0
        return v

    mask = torch.tensor([[False, True, True]] * 2)
    assert flow_loss(wrong_on_frame_0, x0, cfg, g, frame_mask=mask) < 1e-8
    assert flow_loss(wrong_on_frame_0, x0, cfg, g) > 1.0
    # normalised by the counted elements: an error of 1 everywhere counted gives a loss of 1
    torch.testing.assert_close(
        flow_loss(lambda x, t: wrong_on_frame_0(x, t) + 1.0, x0, cfg, g, mask), torch.tensor(1.0)
    )
